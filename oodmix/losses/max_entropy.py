"""Cross-entropy plus the reverse-direction confidence loss, KL(p || U), on OOD inputs."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from oodmix.allowed import number_above
from oodmix.losses.base import OODLoss, check_weight


class MaxEntropyLoss(OODLoss):
    """L = E_in[-log p(y|x)] + beta * E_out[KL(p_T(y|x) || U(y))],  KL(p || U) = log K - H(p),
    p_T = softmax(logits / T).

    Like the confidence loss it vanishes exactly when the OOD prediction is uniform, but it is
    bounded by log K, so confident OOD predictions are penalised less steeply. A temperature
    T > 1 softens the OOD predictions before the penalty (T = 1: the plain term).
    Terms: `ce`, `kl_rev`.
    """

    requires: ClassVar[frozenset[str]] = frozenset({"id", "ood"})

    def __init__(self, beta: float = 1.0, temperature: float = 1.0) -> None:
        super().__init__()
        self.beta = check_weight("beta", beta)
        self.temperature = float(number_above("loss.temperature", temperature, 0))

    def forward(
        self, logits: Mapping[str, torch.Tensor], batch: Mapping[str, Any]
    ) -> dict[str, torch.Tensor]:
        ce = F.cross_entropy(logits["id"], batch["id"][1])
        log_p = F.log_softmax(logits["ood"] / self.temperature, dim=-1)
        num_classes = log_p.shape[-1]
        kl_rev = (log_p.exp() * log_p).sum(dim=-1).mean() + math.log(num_classes)
        return {"loss": ce + self.beta * kl_rev, "ce": ce, "kl_rev": kl_rev}
