"""Outlier Exposure (Hendrycks, Mazeika and Dietterich, ICLR 2019)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from oodmix.losses.base import OODLoss, check_weight
from oodmix.losses.functional import uniform_cross_entropy


class OutlierExposureLoss(OODLoss):
    """L = E_in[-log p(y|x)] + lam * E_out[CE(U, p(y|x))],  CE(U, p) = -(1/K) sum_k log p_k.

    "Deep Anomaly Detection with Outlier Exposure"; lam = 0.5 for classifiers in the paper.
    CE(U, p) = KL(U || p) + log K, so OE with lam is ce_kl with beta = lam shifted by the
    constant lam * log K: the same gradients. Terms: `ce`, `oe`.
    """

    requires: ClassVar[frozenset[str]] = frozenset({"id", "ood"})

    def __init__(self, lam: float = 0.5) -> None:
        super().__init__()
        self.lam = check_weight("loss.lam", lam)

    def forward(
        self, logits: Mapping[str, torch.Tensor], batch: Mapping[str, Any]
    ) -> dict[str, torch.Tensor]:
        ce = F.cross_entropy(logits["id"], batch["id"][1])
        oe = uniform_cross_entropy(logits["ood"])
        return {"loss": ce + self.lam * oe, "ce": ce, "oe": oe}
