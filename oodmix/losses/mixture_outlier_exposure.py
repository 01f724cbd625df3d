"""Mixture Outlier Exposure (Zhang, Inkawhich, Linderman, Chen and Li, WACV 2023)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from oodmix.losses.base import OODLoss, check_weight
from oodmix.losses.mixed_terms import mixed_parts, mixed_terms, resolve_pairs


class MixtureOutlierExposureLoss(OODLoss):
    """L = CE(id) + beta * E[CE(lam * onehot(y) + (1 - lam) * U, p(lam * x_id + (1 - lam) x_ood))].

    "Mixture Outlier Exposure: Towards Out-of-Distribution Detection in Fine-grained
    Environments": ID inputs mixed with OOD inputs, lam ~ Beta(alpha, alpha), trained towards
    the same mixture of the one-hot label and the uniform distribution. pairs = "cross" is the
    method (and what None, mixup.pairs' default, means); "both" adds the paper's within-group
    mixes as well; "within" alone would be ce_kl_mixup without its clean OOD term.
    Terms: `ce`, `ce_cross` (and `ce_mix`, `kl_mix` with within pairs).
    """

    def __init__(self, beta: float = 1.0, pairs: str | None = "cross") -> None:
        super().__init__()
        self.beta = check_weight("beta", beta)
        self.pairs = resolve_pairs(pairs, default="cross")
        self.requires = frozenset({"id"}) | mixed_parts(self.pairs)

    def forward(
        self, logits: Mapping[str, torch.Tensor], batch: Mapping[str, Any]
    ) -> dict[str, torch.Tensor]:
        ce = F.cross_entropy(logits["id"], batch["id"][1])
        mixed_total, mixed = mixed_terms(logits, batch, self.beta)
        return {"loss": ce + mixed_total, "ce": ce, **mixed}
