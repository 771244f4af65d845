"""Many networks of one architecture trained as one network (HFTA's horizontal fusion).

The members' channels lie side by side: member m owns channels [m*C, (m+1)*C) of every layer.
A convolution with M times the channels and M times the groups then convolves each member with
its own weights, BatchNorm over M*C channels keeps each member's own batch and running
statistics, and a linear layer becomes one batched matmul. The fused network is an ordinary
module, so it runs under autocast, channels-last and torch.compile as a solo network does, and
its activations keep one layout from input to logits.

Why not ``vmap`` over stacked weights (the engine's first form): its batching rules move the
member dimension into the channels and back around every layer (a copy per layer), its weights
were stacked afresh at every forward, and under autocast its rules and autocast's casts disagreed
on an H100 (torch 2.11: float32 biases in bf16 convolutions, pytorch/pytorch#192161), which cost
explicit casts and float32 copies around every norm. Measured there it trained slower fused than
solo for three of five backbones (results/benchmarks/train_throughput_gpu.csv).

Each member keeps its own module and stock optimizer (timm's AdamW with its no-decay split, its
own learning rate and schedule): its parameters and buffers are views of its slice of the fused
ones, so its optimizer updates the fused weights in place and nothing is copied per step; after a
backward each member is handed its slice of the fused gradient. A member that stops or diverges
leaves the stack, which is fused again from those that remain.

A layer that mixes channels in another way (a channel shuffle, a concatenation along channels)
would break the layout: a check on a small input when an architecture is first fused finds that,
and such a stack runs its members one after another through the same loop. A stack of one calls
its module directly.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

#: How the engine fuses; speed measurements of another form do not choose this one's options.
FUSION = "channels"


class Stack:
    """Members (modules of one architecture) evaluated together; member order is kept."""

    def __init__(self, models: list, compile_model: bool = False, channels_last: bool = False, relayout: bool = True):
        self.models = list(models)
        self.compile_model, self.channels_last = compile_model, channels_last
        self.direct = len(self.models) == 1
        self.fused = None if self.direct else fuse(self.models, channels_last)
        #: how the members run, as records say: one network, side by side, or one after another
        self.how = "solo" if self.direct else FUSION if self.fused is not None else "sequential"
        module = self.models[0] if self.fused is None else self.fused
        # a solo network on a GPU always ran channels-last; on a CPU where the measurement chose it
        # (relayout=False: a member of a fused stack evaluated alone, whose tensors must stay views)
        self._solo_nhwc = self.direct and relayout and (channels_last or next(module.parameters()).is_cuda)
        if self._solo_nhwc:
            module.to(memory_format=torch.channels_last)       # (in place: the optimizer keeps its tensors)
        self._module = torch.compile(module) if compile_model else module  # speed only: the same function
        self._starts = [{n: b.clone() for n, b in m.named_buffers() if b.dim() == 0} for m in self.models]
        self._grads = [dict(m.named_parameters()) for m in self.models]

    def __len__(self):
        return len(self.models)

    @property
    def buffers(self) -> dict:
        """The members' buffers, each as (members, ...) (views of the fused ones where fused)."""
        own = [dict(m.named_buffers()) for m in self.models]
        if self.fused is None:
            return {n: torch.stack([o[n] for o in own]) for n in own[0]}
        return {n: b.view(len(self), *own[0][n].shape) for n, b in self.fused.named_buffers() if b.dim()}

    def _forward(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        """x: (members, batch, C, H, W) -> logits (members, batch, classes)."""
        if self.direct:
            return self._module.train(train)(_layout(x[0], self._solo_nhwc)).unsqueeze(0)
        if self.fused is None:  # members one after another
            return torch.stack([m.train(train)(_layout(xi, x.is_cuda or self.channels_last)) for m, xi in zip(self.models, x)])
        logits = self._module.train(train)(_layout(_side_by_side(x), self.channels_last))
        return _apart(logits, len(self))

    def train_forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (members, batch, C, H, W), a batch per member -> logits (members, batch, classes)."""
        return self._forward(x, True)

    @torch.no_grad()
    def eval_forward(self, x: torch.Tensor, shared: bool) -> torch.Tensor:
        """x: one batch for every member (shared) or a batch per member -> (members, batch, classes)."""
        return self._forward(x.expand(len(self), *x.shape) if shared else x, False)

    def zero_grad(self) -> None:
        if self.fused is not None:
            self.fused.zero_grad(set_to_none=True)

    def hand_gradients(self) -> None:
        """Give each member its slice of the fused gradient (views: nothing is copied)."""
        if self.fused is None:
            return
        for n, p in self.fused.named_parameters():
            if p.grad is not None:
                for own, g in zip(self._grads, p.grad.view(len(self), *self._grads[0][n].shape)):
                    own[n].grad = g

    def write_back(self, members=None) -> None:
        """Bring the members' own counters (BatchNorm's batches tracked) up to date (all members, or
        the positions given); every other tensor of a member is a view of the fused one."""
        if self.fused is None:
            return
        counters = {n: b for n, b in self.fused.named_buffers() if b.dim() == 0}
        with torch.no_grad():
            for i in range(len(self)) if members is None else members:
                for n, b in self.models[i].named_buffers():
                    if n in self._starts[i]:
                        b.copy_(self._starts[i][n] + counters[n])

    def state(self, i: int) -> dict:
        """Member i's state dict as it is now (a copy)."""
        self.write_back([i])
        return {n: t.detach().clone() for n, t in self.models[i].state_dict().items()}

    def keep(self, positions: list[int]) -> "Stack":
        """The stack of the members at ``positions`` (their weights and statistics carried over)."""
        self.write_back()
        return Stack([self.models[i] for i in positions], self.compile_model, self.channels_last)


class Unfusable(ValueError):
    """A layer that holds weights but is none of the kinds fused here."""


def fuse(models: list, channels_last: bool = False) -> nn.Module | None:
    """One network computing every member side by side, with the members' tensors made views of its
    own; None (members untouched) where the architecture does not fuse."""
    try:
        fused = _fused_copy(models)
    except Unfusable:
        return None
    if channels_last:
        fused.to(memory_format=torch.channels_last)
    if not _computes_the_members(fused, models):
        return None
    members = len(models)
    with torch.no_grad():
        for i, model in enumerate(models):
            own = dict(model.named_parameters())
            for n, p in fused.named_parameters():
                own[n].data = p.view(members, *own[n].shape)[i]
            for name, module in model.named_modules():
                for n, b in module.named_buffers(recurse=False):
                    full = fused.get_buffer(f"{name}.{n}" if name else n)
                    if full.dim():  # running statistics: a view; counters stay the member's
                        module._buffers[n] = full.view(members, *b.shape)[i]
    return fused


_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _fused_copy(models: list) -> nn.Module:
    members = len(models)
    fused = copy.deepcopy(models[0])
    own = [dict(m.named_modules()) for m in models]
    for name, module in list(fused.named_modules()):
        parts = [o[name] for o in own]
        if isinstance(module, _CONVS):
            module.in_channels, module.out_channels = module.in_channels * members, module.out_channels * members
            module.groups *= members
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.num_features *= members
        elif isinstance(module, nn.GroupNorm):
            module.num_groups, module.num_channels = module.num_groups * members, module.num_channels * members
        elif isinstance(module, nn.Linear):
            _replace(fused, name, _Linears(parts))
            continue
        elif _is_drop_path(module):
            _replace(fused, name, _DropPaths(members, module.drop_prob, getattr(module, "scale_by_keep", True)))
            continue
        elif any(True for _ in module.parameters(recurse=False)) or any(True for _ in module.buffers(recurse=False)):
            raise Unfusable(f"{name}: {type(module).__name__}")
        else:
            continue
        with torch.no_grad():
            for n, _ in list(module.named_parameters(recurse=False)):
                setattr(module, n, nn.Parameter(torch.cat([getattr(p, n) for p in parts])))
            for n, t in list(module.named_buffers(recurse=False)):
                module._buffers[n] = torch.zeros_like(t) if t.dim() == 0 else torch.cat([getattr(p, n) for p in parts])
    return fused


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, new)


def _is_drop_path(module) -> bool:
    return type(module).__name__ == "DropPath" and hasattr(module, "drop_prob")


class _Linears(nn.Module):
    """M linear layers on (..., M * in) features side by side -> (..., M * out)."""

    def __init__(self, parts: list):
        super().__init__()
        self.members, self.in_features, self.out_features = len(parts), parts[0].in_features, parts[0].out_features
        with torch.no_grad():
            self.weight = nn.Parameter(torch.stack([p.weight for p in parts]))  # (M, out, in)
            self.bias = nn.Parameter(torch.stack([p.bias for p in parts])) if parts[0].bias is not None else None

    def forward(self, x):
        lead = x.shape[:-1]
        x = x.reshape(-1, self.members, self.in_features).transpose(0, 1)  # (M, rows, in)
        w = self.weight.transpose(1, 2)
        y = torch.bmm(x, w) if self.bias is None else torch.baddbmm(self.bias.unsqueeze(1), x, w)
        return y.transpose(0, 1).reshape(*lead, self.members * self.out_features)


class _DropPaths(nn.Module):
    """Stochastic depth with its own draw per sample and member (as M separate networks would)."""

    def __init__(self, members: int, drop_prob: float, scale_by_keep: bool = True):
        super().__init__()
        self.members, self.drop_prob, self.scale_by_keep = members, drop_prob, scale_by_keep

    def forward(self, x):
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = 1 - self.drop_prob
        mask = x.new_empty(x.shape[0], self.members, *(1,) * (x.dim() - 2)).bernoulli_(keep)
        if keep > 0 and self.scale_by_keep:
            mask.div_(keep)
        return x * mask.repeat_interleave(x.shape[1] // self.members, 1)


_checked: dict = {}


@torch.no_grad()
def _computes_the_members(fused: nn.Module, models: list) -> bool:
    """Whether the fused network computes each member (first and last, eval mode, a small random
    input), checked once per architecture: a layer mixing channels gives differences of the order
    of the outputs, round-off (TF32 on a GPU included) a thousandth of them."""
    signature = (type(models[0]).__qualname__, tuple((n, tuple(p.shape)) for n, p in models[0].named_parameters()))
    if signature not in _checked:
        first = next(m for m in models[0].modules() if isinstance(m, _CONVS + (nn.Linear,)))
        channels = first.in_channels if isinstance(first, _CONVS) else first.in_features
        probe = next(models[0].parameters())
        shape = (2, channels, 64, 64) if isinstance(first, _CONVS) else (2, channels)
        x = torch.randn(len(models), *shape, device=probe.device, dtype=probe.dtype)
        modes = [m.training for m in models] + [fused.training]
        try:
            with torch.autocast(probe.device.type, enabled=False):
                out = _apart(fused.eval()(_side_by_side(x)), len(models))
                ok = True
                for i in (0, len(models) - 1):
                    solo = models[i].eval()(x[i])
                    ok &= bool((out[i] - solo).abs().max() <= 0.01 * solo.abs().max() + 1e-6)
        except torch.OutOfMemoryError:
            raise  # says nothing of the architecture: the group is split as for any other out-of-memory
        except RuntimeError as err:  # shapes that do not fit the layout: this architecture does not fuse
            if not _layout_mismatch(err):
                raise
            ok, why = False, f"{type(err).__name__}: {str(err)[:160]}"
        else:
            why = "matches its members" if ok else "differs from its members (a layer mixes channels)"
        finally:
            for m, mode in zip(models + [fused], modes):
                m.train(mode)
        _checked[signature] = ok
        import logging

        logging.getLogger(__name__).log(logging.INFO if ok else logging.WARNING, "fusion check, %s: %s; %s",
                                        type(models[0]).__name__, why,
                                        "fused" if ok else "its members run one after another")
    return _checked[signature]


def _layout_mismatch(err: RuntimeError) -> bool:
    """An error that a layer not fitting the side-by-side layout gives (channels or shapes disagree)."""
    text = str(err)
    return any(s in text for s in ("size", "shape", "channels", "Expected", "expected", "match", "dimension"))


def _side_by_side(x: torch.Tensor) -> torch.Tensor:
    """(members, batch, C, ...) -> (batch, members * C, ...): each member's input in its channels."""
    return x.transpose(0, 1).reshape(x.shape[1], x.shape[0] * x.shape[2], *x.shape[3:])


def _apart(y: torch.Tensor, members: int) -> torch.Tensor:
    """(batch, members * K) -> (members, batch, K): the fused network's output per member."""
    return y.view(y.shape[0], members, -1).transpose(0, 1)


def _layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x
