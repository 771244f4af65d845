"""Many networks of one architecture run as one: weights stacked, the forward vmapped (HFTA's idea).

A convolution over stacked weights becomes one grouped convolution, BatchNorm normalises each
member by its own batch statistics and updates its own running statistics, a linear layer
becomes one batched matmul: the members' kernels are launched once for all of them.

Why the members keep their own parameters (stacked at every forward) instead of being stacked
once with ``torch.func.stack_module_state``: each member then keeps the stock optimizer and
schedule a solo run uses (timm's AdamW with its no-decay split, its own learning rate), and a
member that stops early or diverges simply leaves the stack. The price is one copy of the
weights per forward (a few MB per member). BatchNorm buffers, which only the forward writes,
are held stacked while training and read back per member when it is checkpointed.

A stack of one calls its module directly: vmap over a single member would only add dispatch.
``channels_last`` lays a stack's images and convolution weights out channels-last per member
(on a GPU a solo module always runs channels-last); whether that, or ``torch.compile``, pays for
the stacked forward is measured per backbone by benchmarks/train_throughput.py --variants.
"""
from __future__ import annotations

import copy
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch.func import functional_call, vmap
from torch.overrides import TorchFunctionMode

from backbone_bench import paths

#: Fused images/s per backbone and speed option, measured on a GPU (train_throughput.py --variants).
VARIANTS_CSV = paths.REPO_ROOT / "results" / "benchmarks" / "train_throughput_gpu_variants.csv"
MIN_GAIN = 1.05  # an option is used only where it measured at least this much faster than the plain stack


def speed_options(backbone: str, device_type: str, compile_model: bool = False) -> dict:
    """How a group of ``backbone`` runs on this device: torch.compile and channels-last stacks where
    the committed GPU measurement found them at least MIN_GAIN faster for this backbone
    (``compile_model``, the --compile flag, picks among compiled variants); plain stacks where
    nothing was measured. Speed only: every option computes the same function."""
    plain = dict(compiled=compile_model, channels_last=False, speed_from="default")
    measured = _measured().get(backbone, {}) if device_type == "cuda" else {}
    base = measured.get((False, False))
    candidates = {k: v for k, v in measured.items() if k[0] or not compile_model}
    if base is None or not candidates:
        return plain
    (compiled, channels_last), rate = max(candidates.items(), key=lambda kv: kv[1])
    source = f"measured ({VARIANTS_CSV.name})"
    if rate < MIN_GAIN * base and not compile_model:
        return dict(plain, speed_from=source)  # no option paid enough
    return dict(compiled=compiled, channels_last=channels_last, speed_from=source)


@lru_cache(maxsize=1)
def _measured() -> dict:
    """{backbone: {(compiled, channels_last): fused images/s}} of the committed measurement, if any."""
    if not VARIANTS_CSV.exists():
        return {}
    import pandas as pd

    table = pd.read_csv(VARIANTS_CSV)
    out: dict = {}
    for r in table[table["status"] == "ok"].itertuples():
        out.setdefault(r.backbone, {})[(bool(r.compiled), bool(r.channels_last))] = float(r.fused_images_per_s)
    return out


class Stack:
    """Members (modules of one architecture) evaluated together; member order is kept."""

    def __init__(self, models: list, compile_model: bool = False, channels_last: bool = False):
        self.models = list(models)
        self.compile_model, self.channels_last = compile_model, channels_last
        self.direct = len(self.models) == 1
        # structure only (weights come per call); a stack of one needs none
        self.skeleton = None if self.direct else copy.deepcopy(self.models[0]).to("meta")
        self.param_names = [n for n, _ in self.models[0].named_parameters()]
        norms = [name for name, m in self.models[0].named_modules() if isinstance(m, _NORMS)]
        self.norm_params = {n for n in self.param_names if n.rpartition(".")[0] in norms}
        self.buffers = {} if self.direct else {n: torch.stack([dict(m.named_buffers())[n] for m in self.models])
                                               for n, _ in self.models[0].named_buffers()}
        # randomness="different": dropout and drop-path draw their own masks per member
        self._stacked = vmap(self._one, in_dims=(0, 0, 0), randomness="different")   # a batch per member
        self._shared = vmap(self._one, in_dims=(0, 0, None), randomness="different")  # one batch for all
        self._train, self._module = self._stacked, self.models[0]
        if self.direct and next(self._module.parameters()).is_cuda:  # as solo runs always ran on a GPU
            self._module.to(memory_format=torch.channels_last)       # (in place: the optimizer keeps its tensors)
        if compile_model:  # speed only: the same function
            self._train = torch.compile(self._stacked)
            self._module = torch.compile(self._module)

    def __len__(self):
        return len(self.models)

    def _one(self, params, buffers, x):
        with torch.autocast(x.device.type, enabled=False), _Float32Norms():
            return functional_call(self.skeleton, (params, buffers), (x,))

    def params(self, dtype=None) -> dict:
        """The members' parameters stacked; with ``dtype``, all but the norms' cast to it, as autocast
        would cast them for a convolution or a matmul (the gradient reaches the float32 originals)."""
        members = [dict(m.named_parameters()) for m in self.models]
        stacked = {n: torch.stack([p[n] for p in members]) for n in self.param_names}
        if dtype is not None:
            stacked = {n: p if n in self.norm_params else p.to(dtype) for n, p in stacked.items()}
        if self.channels_last:
            stacked = {n: _per_member_nhwc(p) for n, p in stacked.items()}
        return stacked

    def _images(self, x: torch.Tensor, dtype=None) -> torch.Tensor:
        x = x if dtype is None else x.to(dtype)
        return _per_member_nhwc(x) if self.channels_last else x

    def train_forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (members, batch, C, H, W), a batch per member -> logits (members, batch, classes)."""
        if self.direct:
            return self._module.train()(_layout(x[0])).unsqueeze(0)
        self.skeleton.train()
        dtype = _autocast_dtype(x)
        return self._train(self.params(dtype), self.buffers, self._images(x, dtype))

    @torch.no_grad()
    def eval_forward(self, x: torch.Tensor, shared: bool) -> torch.Tensor:
        """x: one batch for every member (shared) or a batch per member -> (members, batch, classes)."""
        if self.direct:
            return self._module.eval()(_layout(x if shared else x[0])).unsqueeze(0)
        self.skeleton.eval()
        dtype = _autocast_dtype(x)
        params = {n: p.detach() for n, p in self.params(dtype).items()}
        if shared:
            x = x if dtype is None else x.to(dtype)
            return self._shared(params, self.buffers, _layout(x) if self.channels_last else x)
        return self._stacked(params, self.buffers, self._images(x, dtype))

    def state(self, i: int) -> dict:
        """Member i's state dict as it is now (a copy)."""
        if self.direct:
            return {n: t.detach().clone() for n, t in self.models[0].state_dict().items()}
        state = {n: p.detach().clone() for n, p in self.models[i].named_parameters()}
        return state | {n: b[i].clone() for n, b in self.buffers.items()}

    def write_back(self) -> None:
        """Copy the stacked buffers into the members' own modules."""
        if self.direct:
            return
        with torch.no_grad():
            for i, model in enumerate(self.models):
                for n, b in model.named_buffers():
                    b.copy_(self.buffers[n][i])

    def keep(self, positions: list[int]) -> "Stack":
        """The stack of the members at ``positions`` (their running statistics carried over)."""
        self.write_back()
        return Stack([self.models[i] for i in positions], self.compile_model, self.channels_last)


_NORMS = (torch.nn.modules.batchnorm._NormBase, torch.nn.GroupNorm, torch.nn.LayerNorm)


def _autocast_dtype(x: torch.Tensor):
    """The dtype autocast would compute a stacked forward's convolutions in (None: autocast is off).

    A stack does not run under autocast itself: under vmap, autocast's casts and the batching rules
    disagree (on an H100 with torch 2.11: a convolution's bias left in float32, BatchNorm's backward
    rejecting bf16 activations with float32 statistics, pytorch/pytorch#192161). So the stack casts
    explicitly what autocast would: images and every parameter but the norms' to bf16, norms in float32.
    """
    kind = x.device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else None


class _Float32Norms(TorchFunctionMode):
    """Normalisation layers of a reduced-precision input computed in float32, the output cast back
    (float32 is what cuDNN's BatchNorm accumulates in, and what autocast runs these norms in)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _NORM_FUNCTIONS and args[0].dtype in (torch.bfloat16, torch.float16):
            # an explicit memory format: vmap cannot answer the layout query that preserving one asks
            x = args[0].to(torch.float32, memory_format=torch.contiguous_format)
            return func(x, *args[1:], **kwargs).to(args[0].dtype, memory_format=torch.contiguous_format)
        return func(*args, **kwargs)


_NORM_FUNCTIONS = (F.batch_norm, F.group_norm, F.layer_norm)


def _layout(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if x.is_cuda else x


def _per_member_nhwc(t: torch.Tensor) -> torch.Tensor:
    """(members, N, C, H, W) with each member's slice laid out channels-last; other shapes as they are."""
    if t.dim() != 5:
        return t
    return t.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
