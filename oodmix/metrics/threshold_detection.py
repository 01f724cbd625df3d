"""Threshold detection scored by F1, precision and recall, as a torchmetrics Metric."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric

from oodmix.detectors.thresholds import check_threshold
from oodmix.metrics.threshold_f1 import Positive, precision_recall_f1, threshold_counts


class ThresholdDetection(Metric):
    """Detection by threshold: an input is predicted in-distribution when score >= delta.

    The rule is owned here rather than left to torchmetrics' binary metrics, which predict
    positive only for score > threshold and pass scores outside [0, 1] through a sigmoid.

    `positive` picks the class that precision, recall and F1 are about: "id" (the default; the
    paper's Table 1 matches this convention) or "ood". States are four counts summed across
    processes, so the result is exact under DDP provided each point is seen once.

    For a stack of K runs (oodmix.stacking) `delta` is one threshold per member and updates
    take (K, n) scores: the counts, and so F1, precision and recall, are (K,), member k's its
    own (see threshold_counts).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    tp: torch.Tensor
    fp: torch.Tensor
    fn: torch.Tensor
    tn: torch.Tensor

    def __init__(self, delta: float | Sequence[float], positive: Positive = "id", **kwargs) -> None:
        super().__init__(**kwargs)
        if positive not in ("id", "ood"):
            raise ValueError(f"positive={positive!r} is not allowed: choose 'id' or 'ood'")
        deltas = torch.as_tensor(delta, dtype=torch.float64)
        for value in deltas.flatten().tolist():  # any score's threshold: a finite number
            check_threshold(value, fixed_scale=False)
        #: One run: a float. A stack: each member's (K,), float64, a buffer, so that it moves to
        #: the device with the metric (no copy per batch); rounded to the scores' dtype where
        #: compared.
        self.delta: float | torch.Tensor
        if deltas.dim() == 0:
            self.delta = float(deltas)
        else:
            self.register_buffer("delta", deltas, persistent=False)
        self.positive = positive
        for name in ("tp", "fp", "fn", "tn"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, scores: torch.Tensor, is_id: torch.Tensor) -> None:
        """Count the decisions on a batch: scores (N,), is_id (N,) boolean ground truth (for a
        stack of runs (K, N) each)."""
        if scores.shape != is_id.shape:
            raise ValueError(
                f"scores {tuple(scores.shape)} and is_id {tuple(is_id.shape)} differ in shape"
            )
        tp, fp, fn, tn = threshold_counts(scores, is_id, self.delta, self.positive)
        # Not in place: a stack's first batch widens the scalar defaults to (K,).
        self.tp = self.tp + tp
        self.fp = self.fp + fp
        self.fn = self.fn + fn
        self.tn = self.tn + tn

    def compute(self) -> dict[str, torch.Tensor]:
        return precision_recall_f1(self.tp, self.fp, self.fn)
