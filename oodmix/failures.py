"""Runs that fail rather than report numbers that cannot be trusted.

A `RunFailure` is not a bad setting (that is a ConfigError, refused before anything is written)
but something that went wrong while training or evaluating: the loss became non-finite, or the
scores of an evaluation set did. Its message is one line saying what, where and what to try.
oodmix-train prints it and exits 1 (no metrics.json is written); in a multirun the job records
it in failure.json and the sweep goes on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


class RunFailure(RuntimeError):
    """A run that cannot give trustworthy results; the message is one line."""


#: What to try when the loss of a run becomes non-finite.
DIVERGENCE_HINT = "lower model.lr or beta, or clip gradients with model.gradient_clip_val=1"


class TrainingDiverged(RunFailure):
    """A loss term became non-finite (nan or inf): training stopped before that optimiser step.

    `epoch` and `step` are Lightning's counters at that step (the epoch from 0, the step as the
    number of optimiser steps already taken, as loggers count them); `terms` maps each
    non-finite term to its value (the total under "loss" only when every part was finite).
    """

    def __init__(self, epoch: int, step: int, terms: dict[str, float]) -> None:
        self.epoch, self.step, self.terms = epoch, step, dict(terms)
        shown = ", ".join(f"train/{name}={value}" for name, value in terms.items())
        super().__init__(
            f"training diverged at epoch {epoch}, step {step}: {shown}; training stopped "
            f"before that optimiser step and no metrics were written; {DIVERGENCE_HINT}"
        )

    @classmethod
    def from_values(
        cls, epoch: int, step: int, names: Sequence[str], values: Sequence[float]
    ) -> TrainingDiverged:
        """From every term of the step: the non-finite parts are named, the total ("loss")
        only when it alone is non-finite (a sum that overflowed)."""
        bad = {n: v for n, v in zip(names, values) if not math.isfinite(v)}
        parts = {n: v for n, v in bad.items() if n != "loss"}
        return cls(epoch, step, parts or bad)
