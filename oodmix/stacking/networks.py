"""K networks of one shape as one module (torch.func: stack_module_state, functional_call, vmap).

    logits[k] = net_k(x[k])      x: (K, N, D) -> (K, N, C), one call for all members

The member networks are built as their runs would build them (same seed, same initial weights);
their parameters are stacked along a new leading dimension and trained as one set of tensors.
Each member's computation is its own (vmap), so its gradients are exactly those of its run.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


class StackedNetwork(nn.Module):
    """`members` networks of one architecture, their parameters and buffers stacked.

    The stacked tensors sit where the first network keeps its own (`layout`, a copy of that
    network), so `state_dict()` has the names of a single network with a leading dimension K,
    and `member_state_dict(k)` is exactly the state dict network k would have alone.
    """

    def __init__(self, networks: Sequence[nn.Module]) -> None:
        super().__init__()
        if not networks:
            raise ValueError("a stack needs at least one network")
        shapes = [{n: p.shape for n, p in net.state_dict().items()} for net in networks]
        if any(s != shapes[0] for s in shapes[1:]):
            raise ValueError("networks of a stack must have one architecture (the same shapes)")
        params, buffers = stack_module_state(list(networks))
        self.members = len(networks)
        self.layout = copy.deepcopy(networks[0])
        for name, value in params.items():
            _set(self.layout, name, nn.Parameter(value.detach().clone()))
        for name, value in buffers.items():
            _set(self.layout, name, value.detach().clone(), buffer=True)
        self._forward = vmap(self._member_forward, in_dims=(0, 0))

    def _member_forward(self, state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.layout, state, (x,))

    def stacked_state(self) -> dict[str, torch.Tensor]:
        """Every stacked parameter and buffer by its network name, shape (K, ...)."""
        return {**dict(self.layout.named_parameters()), **dict(self.layout.named_buffers())}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (K, N, ...) -> (K, N, C); member k's inputs go through member k's network."""
        if x.shape[0] != self.members:
            raise ValueError(
                f"inputs for {x.shape[0]} members given to a stack of {self.members} networks"
            )
        return self._forward(self.stacked_state(), x)

    def member_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Network k's own state dict (what it would save alone), detached copies."""
        return {name: value[k].detach().clone() for name, value in self.layout.state_dict().items()}

    def load_member_state_dict(self, k: int, state: dict[str, torch.Tensor]) -> None:
        """Put a single network's state dict into member k."""
        stacked = self.layout.state_dict()
        missing = stacked.keys() - state.keys()
        if missing:
            raise KeyError(f"member state lacks {sorted(missing)}")
        with torch.no_grad():
            for name, value in stacked.items():
                value[k].copy_(state[name])


def _set(module: nn.Module, name: str, value: torch.Tensor, buffer: bool = False) -> None:
    """Replace the parameter or buffer at dotted `name` of `module` with `value`."""
    *path, leaf = name.split(".")
    owner = module
    for part in path:
        owner = getattr(owner, part)
    if buffer:
        owner.register_buffer(leaf, value)
    else:
        setattr(owner, leaf, value)
