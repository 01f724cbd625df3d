"""Evaluation refuses non-finite scores instead of computing metrics from them.

A NaN or infinite score has no place in an order and no side of a threshold: AUROC, F1 and
the tuned threshold computed from such scores are numbers without meaning (a diverged run,
whose every score is NaN, still gets an AUROC near 0.5). Training stops at a non-finite loss;
this is the second line of defence, for a finite loss with a score that overflows (energy,
max logit) or weights loaded from a bad checkpoint.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from oodmix.failures import RunFailure

HINT = "the weights are not finite: the run diverged; lower model.lr or beta"


class NonFiniteScores(RunFailure):
    """Scores of an evaluation set that are NaN or infinite; the message is one line. A RunFailure:
    oodmix-train prints it and exits 1, a multirun job records it in failure.json.

    `set_name` is the evaluation set (val, test, test_near, ...), `count` how many of its
    `total` scores are not finite.
    """

    def __init__(self, set_name: str, count: int, total: int) -> None:
        self.set_name, self.count, self.total = set_name, int(count), int(total)
        super().__init__(
            f"{self.count} of {self.total} {set_name} scores are not finite (NaN or infinite), "
            f"so no metric is computed from them: {HINT}"
        )


def check_finite(scores: torch.Tensor, set_name: str) -> None:
    """Raise NonFiniteScores when any of `scores` is NaN or infinite (one host sync)."""
    count = int((~torch.isfinite(scores)).sum())
    if count:
        raise NonFiniteScores(set_name, count, scores.numel())


class FiniteScores(Metric):
    """Counts the non-finite scores of an evaluation pass without waiting for the device on
    each batch; `check(set_name)` raises NonFiniteScores if there were any. The two counts are
    summed across processes, so every process raises alike under data parallelism.

    For a stack of K runs the scores are (K, n) and the counts (K,), one per member
    (`failures`: each member's NonFiniteScores)."""

    is_differentiable = False
    full_state_update = False

    non_finite: torch.Tensor
    total: torch.Tensor

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in ("non_finite", "total"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, scores: torch.Tensor) -> None:
        # Summed over the points (the last dimension): one count, or one per member.
        self.non_finite = self.non_finite + (~torch.isfinite(scores)).sum(dim=-1)
        self.total = self.total + scores.shape[-1]

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.non_finite, self.total

    def check(self, set_name: str) -> None:
        """Raise NonFiniteScores if any score was not finite (one run)."""
        non_finite, total = (int(v) for v in self.compute())
        if non_finite:
            raise NonFiniteScores(set_name, non_finite, total)

    def failures(self, set_name: str) -> dict[int, NonFiniteScores]:
        """A stack's members whose scores were not all finite, each with its error."""
        non_finite, total = self.compute()
        counts = non_finite.reshape(-1).tolist()
        return {k: NonFiniteScores(set_name, n, int(total)) for k, n in enumerate(counts) if n}
