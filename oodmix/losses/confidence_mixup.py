"""The paper's objective: the confidence loss on clean and on mixup-augmented samples."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from oodmix.losses.confidence import ConfidenceLoss
from oodmix.losses.functional import kl_uniform, soft_cross_entropy


class ConfidenceMixupLoss(ConfidenceLoss):
    """L = CE(id) + beta * KL(U || p(ood)) + CE(y~, p(x~_id)) + beta * KL(U || p(x~_ood)).

    Kim and Chung, "Improving Detection Performance of Out-of-Distribution Data with Mixup":
    ID samples are mixed only with ID samples (x~_id, soft labels y~) and OOD samples only with
    OOD samples (x~_ood), lam ~ Beta(alpha, alpha) (Zhang et al., ICLR 2018); the mixed samples
    are trained on in addition to the clean ones. Each term is a mean over its own group.
    Terms: `ce`, `kl`, `ce_mix`, `kl_mix`.
    """

    requires: ClassVar[frozenset[str]] = frozenset({"id", "ood", "id_mix", "ood_mix"})

    def forward(
        self, logits: Mapping[str, torch.Tensor], batch: Mapping[str, Any]
    ) -> dict[str, torch.Tensor]:
        terms = super().forward(logits, batch)
        ce_mix = soft_cross_entropy(logits["id_mix"], batch["id_mix"][1])
        kl_mix = kl_uniform(logits["ood_mix"])
        terms["loss"] = terms["loss"] + ce_mix + self.beta * kl_mix
        terms.update(ce_mix=ce_mix, kl_mix=kl_mix)
        return terms
