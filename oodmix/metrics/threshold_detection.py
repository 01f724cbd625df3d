"""Threshold detection scored by F1, precision and recall, as a torchmetrics Metric."""

from __future__ import annotations

import torch
from torchmetrics import Metric

from oodmix.metrics.threshold_f1 import Positive, precision_recall_f1, threshold_counts


class ThresholdDetection(Metric):
    """Detection by threshold: an input is predicted in-distribution when score >= delta.

    The rule is owned here rather than left to torchmetrics' binary metrics, which predict
    positive only for score > threshold and pass scores outside [0, 1] through a sigmoid.

    `positive` picks the class that precision, recall and F1 are about: "id" (the default; the
    paper's Table 1 matches this convention) or "ood". States are four counts summed across
    processes, so the result is exact under DDP provided each point is seen once.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    tp: torch.Tensor
    fp: torch.Tensor
    fn: torch.Tensor
    tn: torch.Tensor

    def __init__(self, delta: float, positive: Positive = "id", **kwargs) -> None:
        super().__init__(**kwargs)
        if positive not in ("id", "ood"):
            raise ValueError(f"positive={positive!r} is not allowed: choose 'id' or 'ood'")
        if not torch.isfinite(torch.tensor(float(delta))):
            raise ValueError(f"delta={delta} is not allowed: delta must be a finite number")
        self.delta = float(delta)
        self.positive = positive
        for name in ("tp", "fp", "fn", "tn"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, scores: torch.Tensor, is_id: torch.Tensor) -> None:
        """Count the decisions on a batch: scores (N,), is_id (N,) boolean ground truth."""
        if scores.shape != is_id.shape:
            raise ValueError(
                f"scores {tuple(scores.shape)} and is_id {tuple(is_id.shape)} differ in shape"
            )
        tp, fp, fn, tn = threshold_counts(scores, is_id, self.delta, self.positive)
        self.tp += tp
        self.fp += fp
        self.fn += fn
        self.tn += tn

    def compute(self) -> dict[str, torch.Tensor]:
        return precision_recall_f1(self.tp, self.fp, self.fn)
