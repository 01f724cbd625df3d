"""Cross-entropy plus the confidence loss of Lee et al. (ICLR 2018)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from oodmix.losses.base import OODLoss, check_weight
from oodmix.losses.functional import kl_uniform


class ConfidenceLoss(OODLoss):
    """L = E_{(x,y)~P_in}[-log p(y|x)] + beta * E_{x~P_out}[KL(U(y) || p(y|x))].

    "Training Confidence-Calibrated Classifiers for Detecting Out-of-Distribution Samples",
    Lee, Lee, Lee and Shin, ICLR 2018. KL(U || p) = -log K - (1/K) sum_k log p_k pushes the
    prediction on OOD training inputs towards the uniform distribution. Terms: `ce`, `kl`.
    beta = 0 gives plain cross-entropy.
    """

    requires: ClassVar[frozenset[str]] = frozenset({"id", "ood"})

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = check_weight("beta", beta)

    def forward(
        self, logits: Mapping[str, torch.Tensor], batch: Mapping[str, Any]
    ) -> dict[str, torch.Tensor]:
        ce = F.cross_entropy(logits["id"], batch["id"][1])
        kl = kl_uniform(logits["ood"])
        return {"loss": ce + self.beta * kl, "ce": ce, "kl": kl}
