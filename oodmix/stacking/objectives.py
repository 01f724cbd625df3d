"""An objective evaluated for K members at once, each with its own numbers (beta, margins, ...).

    terms[name][k] = objective_k(logits[k], batch[k])[name]

The members' objectives are built from their own configs, as their runs would build them. Any
number an objective keeps (its weights and margins: `beta`, `lam`, `margin_in`, ...) may differ
between members: it is handed to the shared objective as a per-member tensor under vmap, so an
objective stacks without its author writing anything for it. Members whose objectives differ in
anything else (a flag, a pairing, a class) cannot share one objective: see `member_numbers`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap

from oodmix.losses.base import OODLoss


def _numbers(objective: nn.Module) -> dict[str, float]:
    return {
        name: value
        for name, value in vars(objective).items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def _others(objective: nn.Module) -> dict[str, Any]:
    skip = {"training", "_forward_hooks", "_forward_pre_hooks", "_backward_hooks"}
    return {
        name: value
        for name, value in vars(objective).items()
        if name not in _numbers(objective) and name not in skip and not name.startswith("_")
    }


def member_numbers(objectives: Sequence[nn.Module]) -> dict[str, list[float]]:
    """The numeric attributes that differ between the members' objectives, per member.

    Raises ValueError when the objectives differ in their class or in anything that is not a
    number (those members need objectives of their own)."""
    first = objectives[0]
    for other in objectives[1:]:
        if type(other) is not type(first) or _others(other) != _others(first):
            raise ValueError(
                f"objectives {type(first).__name__} and {type(other).__name__} differ in more "
                "than their numbers: they cannot be stacked"
            )
    return {
        name: [float(_numbers(o)[name]) for o in objectives]
        for name, value in _numbers(first).items()
        if any(_numbers(o)[name] != value for o in objectives[1:])
    }


class StackedObjective(nn.Module):
    """K members' objectives as one: logits and batch parts with a leading member dimension in,
    each term as a (K,) tensor out."""

    def __init__(self, objectives: Sequence[OODLoss]) -> None:
        super().__init__()
        differing = member_numbers(objectives)
        self.members = len(objectives)
        self.requires = objectives[0].requires
        self.shared = copy.deepcopy(objectives[0])
        self.number_names = sorted(differing)
        for name in self.number_names:
            # The attribute becomes a tensor slot that functional_call fills per member.
            delattr(self.shared, name)
            self.shared.register_buffer(name, torch.zeros(()), persistent=False)
            self.register_buffer(f"per_member_{name}", torch.tensor(differing[name]))

    def numbers(self) -> dict[str, torch.Tensor]:
        """Each differing number of the objectives, one value per member (K,)."""
        return {name: getattr(self, f"per_member_{name}") for name in self.number_names}

    def _member(
        self, numbers: dict[str, torch.Tensor], logits: Mapping[str, torch.Tensor], batch: Any
    ) -> dict[str, torch.Tensor]:
        return functional_call(self.shared, numbers, (logits, batch))

    def forward(
        self, logits: Mapping[str, torch.Tensor], batch: Mapping[str, Any]
    ) -> dict[str, torch.Tensor]:
        if self.members == 1 and not self.number_names:
            # A stack of one: no vmap (it costs more Python per step than the step itself).
            member = torch.utils._pytree.tree_map(lambda t: t[0], (dict(logits), dict(batch)))
            terms = self.shared(*member)
            return {name: value.unsqueeze(0) for name, value in terms.items()}
        return vmap(self._member)(self.numbers(), dict(logits), dict(batch))
