"""The terms of mixed samples, shared by every objective that trains on mixup batches.

Which mixed parts a batch carries follows `mixup.pairs`:
  within  id_mix  = ID x ID,   soft labels lam * onehot(y_i) + (1 - lam) * onehot(y_j)
          ood_mix = OOD x OOD
  cross   cross_mix = ID x OOD, soft target lam * onehot(y) + (1 - lam) * U  (MixOE)
  both    all three
The terms, each a mean over its own group:
  ce_mix    = CE(soft labels, p(id_mix))                      weight 1
  kl_mix    = KL(U || p(ood_mix))                             weight beta
  ce_cross  = CE(lam * onehot(y) + (1 - lam) * U, p(cross_mix)) weight beta
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from oodmix.allowed import one_of
from oodmix.batch_parts import PAIRS_PARTS, MixupPairs
from oodmix.losses.functional import kl_uniform, soft_cross_entropy


def resolve_pairs(pairs: str | None, default: str) -> str:
    """mixup.pairs as an objective uses it: null means the objective's own `default` (within for
    the paper's objective, cross for MixOE), so that every value a user sets is honoured."""
    if pairs is None:
        return default
    one_of(
        "mixup.pairs", pairs, list(MixupPairs), "null (the objective's own), within, cross or both"
    )
    return MixupPairs(pairs).value


def mixed_parts(pairs: str) -> frozenset[str]:
    """The batch parts `pairs` (within, cross or both) asks the datamodule for."""
    return PAIRS_PARTS[resolve_pairs(pairs, "within")]


def mixed_terms(
    logits: Mapping[str, torch.Tensor], batch: Mapping[str, Any], beta: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(weighted sum, named terms) of the mixed parts present in `logits`."""
    terms: dict[str, torch.Tensor] = {}
    total = torch.zeros((), device=next(iter(logits.values())).device)
    if "id_mix" in logits:
        terms["ce_mix"] = soft_cross_entropy(logits["id_mix"], batch["id_mix"][1])
        total = total + terms["ce_mix"]
    if "ood_mix" in logits:
        terms["kl_mix"] = kl_uniform(logits["ood_mix"])
        total = total + beta * terms["kl_mix"]
    if "cross_mix" in logits:
        terms["ce_cross"] = soft_cross_entropy(logits["cross_mix"], batch["cross_mix"][1])
        total = total + beta * terms["ce_cross"]
    return total, terms
