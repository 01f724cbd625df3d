"""Threshold-free detection metrics: AUROC, AUPR-In, AUPR-Out, FPR at 95 % TPR.

Conventions (published tools disagree; these follow Hendrycks et al. and OpenOOD):
  auroc     area under the ROC curve, ID positive, higher score = more ID (the same with OOD
            positive and the score negated)
  aupr_in   average precision with ID as the positive class, ranked by score
  aupr_out  average precision with OOD as the positive class, ranked by -score
  fpr95     the share of OOD points accepted as ID at the threshold that accepts 95 % of the ID
            points (lower is better)

torchmetrics' binary metrics squash any score outside [0, 1] through a sigmoid, which ties
large logits or energies at 1.0 in float32 and so changes the ranking. Scores are therefore
first mapped to [0, 1] by their rank among the distinct values (an exact, order- and
tie-preserving map), then handed to torchmetrics' functional metrics.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric
from torchmetrics.functional.classification import (
    binary_auroc,
    binary_average_precision,
    binary_roc,
)

from oodmix.metrics.threshold_f1 import f1_at_thresholds

TPR_LEVEL = 0.95


def rank_to_unit_interval(scores: torch.Tensor) -> torch.Tensor:
    """Scores to [0, 1], order and ties kept: the i-th smallest distinct value -> i / (m - 1)."""
    distinct, rank = torch.unique(scores, return_inverse=True)
    return rank.double() / max(distinct.numel() - 1, 1)


def ranking_metrics(scores: torch.Tensor, is_id: torch.Tensor) -> dict[str, torch.Tensor]:
    """auroc, aupr_in, aupr_out, fpr95 of `scores` (higher = more ID) against `is_id`."""
    scores, is_id = scores.reshape(-1), is_id.reshape(-1).bool()
    if is_id.all() or (~is_id).all():
        nan = torch.tensor(float("nan"), device=scores.device)
        return {"auroc": nan, "aupr_in": nan, "aupr_out": nan, "fpr95": nan}
    unit = rank_to_unit_interval(scores)
    target = is_id.long()
    fpr, tpr, _ = binary_roc(unit, target)
    return {
        "auroc": binary_auroc(unit, target),
        "aupr_in": binary_average_precision(unit, target),
        "aupr_out": binary_average_precision(1 - unit, 1 - target),
        "fpr95": fpr[tpr >= TPR_LEVEL].min(),
    }


def best_f1_threshold(scores: torch.Tensor, is_id: torch.Tensor) -> tuple[float, float]:
    """The threshold delta whose rule "ID when score >= delta" has the highest F1 with ID
    positive on these points, and that F1.

    The candidates are the distinct scores: any delta in (s_lower, s] decides exactly as
    delta = s does (s_lower: the next lower distinct score), so the F1 of every rule is among
    theirs. Among equal F1 the highest candidate is returned: the top end of the interval of
    thresholds that share the best F1 on these points (any delta down to the next lower
    distinct score gives the same F1 here, but may give another F1 on other points).
    """
    distinct = torch.unique(scores.reshape(-1))  # ascending
    f1 = f1_at_thresholds(scores, is_id, distinct)
    best = int(len(f1) - 1 - torch.argmax(f1.flip(0)))  # the last (highest) of the maxima
    return float(distinct[best]), float(f1[best])


class ScoreBank(Metric):
    """Keeps every (score, is_id) pair of an evaluation pass; `compute()` returns them all,
    gathered across processes, for metrics that need the whole ranking. A stack of K runs
    keeps (K, n) pairs: batches are joined along the points (the last dimension)."""

    is_differentiable = False
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("is_id", default=[], dist_reduce_fx="cat")

    def update(self, scores: torch.Tensor, is_id: torch.Tensor) -> None:
        self.scores.append(scores.detach().double())
        self.is_id.append(is_id.bool())

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        scores, is_id = self.scores, self.is_id
        if isinstance(scores, list):  # not synced: still a list of batches
            scores, is_id = torch.cat(scores, dim=-1), torch.cat(is_id, dim=-1)
        return scores, is_id
