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
"""
from __future__ import annotations

import copy

import torch
from torch.func import functional_call, vmap


class Stack:
    """Members (modules of one architecture) evaluated together; member order is kept."""

    def __init__(self, models: list, compile_model: bool = False):
        self.models = list(models)
        self.compile_model = compile_model
        self.direct = len(self.models) == 1
        # structure only (weights come per call); a stack of one needs none
        self.skeleton = None if self.direct else copy.deepcopy(self.models[0]).to("meta")
        self.param_names = [n for n, _ in self.models[0].named_parameters()]
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
        return functional_call(self.skeleton, (params, buffers), (x,))

    def params(self) -> dict:
        members = [dict(m.named_parameters()) for m in self.models]
        return {n: torch.stack([p[n] for p in members]) for n in self.param_names}

    def train_forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (members, batch, C, H, W), a batch per member -> logits (members, batch, classes)."""
        if self.direct:
            return self._module.train()(_layout(x[0])).unsqueeze(0)
        self.skeleton.train()
        return self._train(self.params(), self.buffers, x)

    @torch.no_grad()
    def eval_forward(self, x: torch.Tensor, shared: bool) -> torch.Tensor:
        """x: one batch for every member (shared) or a batch per member -> (members, batch, classes)."""
        if self.direct:
            return self._module.eval()(_layout(x if shared else x[0])).unsqueeze(0)
        self.skeleton.eval()
        params = {n: p.detach() for n, p in self.params().items()}
        return (self._shared if shared else self._stacked)(params, self.buffers, x)

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
        return Stack([self.models[i] for i in positions], self.compile_model)


def _layout(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if x.is_cuda else x
