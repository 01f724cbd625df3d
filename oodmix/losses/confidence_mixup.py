"""The paper's objective: the confidence loss on clean and on mixup-augmented samples."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from oodmix.losses.confidence import ConfidenceLoss
from oodmix.losses.mixed_terms import mixed_parts, mixed_terms, resolve_pairs


class ConfidenceMixupLoss(ConfidenceLoss):
    """L = CE(id) + beta * KL(U || p(ood)) + CE(y~, p(x~_id)) + beta * KL(U || p(x~_ood)).

    Kim and Chung, "Improving Detection Performance of Out-of-Distribution Data with Mixup":
    ID samples are mixed only with ID samples (x~_id, soft labels y~) and OOD samples only with
    OOD samples (x~_ood), lam ~ Beta(alpha, alpha) (Zhang et al., ICLR 2018); the mixed samples
    are trained on in addition to the clean ones. Each term is a mean over its own group.
    Terms: `ce`, `kl`, `ce_mix`, `kl_mix`.

    `pairs` (mixup.pairs) changes which mixed samples are added: "within" is the paper's (and
    what None means);
    "cross" adds ID x OOD mixes with target lam * onehot(y) + (1 - lam) * U (term `ce_cross`,
    weight beta) instead; "both" adds all three (see oodmix.losses.mixed_terms).
    """

    def __init__(self, beta: float = 1.0, pairs: str | None = "within") -> None:
        super().__init__(beta)
        self.pairs = resolve_pairs(pairs, default="within")
        self.requires = frozenset({"id", "ood"}) | mixed_parts(self.pairs)

    def forward(
        self, logits: Mapping[str, torch.Tensor], batch: Mapping[str, Any]
    ) -> dict[str, torch.Tensor]:
        terms = super().forward(logits, batch)
        mixed_total, mixed = mixed_terms(logits, batch, self.beta)
        terms["loss"] = terms["loss"] + mixed_total
        terms.update(mixed)
        return terms
