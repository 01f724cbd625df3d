"""Classification accuracy on the ID points of an evaluation pass, one run or a stack of runs."""

from __future__ import annotations

import torch
from torchmetrics import Metric


class IDAccuracy(Metric):
    """acc = #{ID points whose arg-max class is their label} / #{ID points}, float32 (0 when
    there is no ID point). OOD points carry the label -1 and are left out.

    For one run this is torchmetrics' MulticlassAccuracy(average="micro", ignore_index=-1).
    A stack of K runs needs one accuracy per member, summed over batches: MulticlassAccuracy's
    per-sample mode ("samplewise") would treat each batch's rows as new samples. So the two
    counts are kept here with a leading member dimension, (K,), and summed across processes.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    correct: torch.Tensor
    total: torch.Tensor

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in ("correct", "total"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """logits (..., n, C), labels (..., n) with -1 for OOD points; `...`: members."""
        labelled = labels >= 0
        right = (logits.argmax(dim=-1) == labels) & labelled
        # Not in place: a stack's first batch widens the scalar defaults to (K,).
        self.correct = self.correct + right.sum(dim=-1)
        self.total = self.total + labelled.sum(dim=-1)

    def compute(self) -> torch.Tensor:
        # In float32, as MulticlassAccuracy divides.
        total = self.total.float()
        return torch.where(total > 0, self.correct.float() / total.clamp(min=1), 0.0)
