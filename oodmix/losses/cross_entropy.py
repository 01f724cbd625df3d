"""Plain cross-entropy on ID data: the baseline, blind to OOD inputs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from oodmix.losses.base import OODLoss


class CrossEntropyLoss(OODLoss):
    """L = E_{(x,y)~P_in}[-log p(y|x)]. Terms: `ce`."""

    requires: ClassVar[frozenset[str]] = frozenset({"id"})

    def forward(
        self, logits: Mapping[str, torch.Tensor], batch: Mapping[str, Any]
    ) -> dict[str, torch.Tensor]:
        ce = F.cross_entropy(logits["id"], batch["id"][1])
        return {"loss": ce, "ce": ce}
