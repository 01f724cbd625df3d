"""The contract every objective follows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from oodmix.allowed import number_at_least


class OODLoss(nn.Module):
    """An objective over the parts of a training batch.

    Subclasses declare the batch parts they need in `requires` (a subset of
    "id", "ood", "id_mix", "ood_mix") and implement `forward`, which receives the logits of each
    part present and the batch itself (for the targets: `batch["id"][1]` holds integer labels,
    `batch["id_mix"][1]` soft labels) and returns a dict with the total under "loss" plus each
    named term, which the module logs as `train/<name>`.
    """

    requires: ClassVar[frozenset[str]] = frozenset({"id"})

    def forward(
        self, logits: Mapping[str, torch.Tensor], batch: Mapping[str, Any]
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError


def check_weight(name: str, value: float) -> float:
    """A loss weight: a finite number >= 0 (`name` as the config names it, e.g. beta)."""
    return float(number_at_least(name, value, 0))
