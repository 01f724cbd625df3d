"""Progress bars for interactive runs (root knob `progress`, see oodmix.console).

Both draw on stderr, so that stdout keeps only the results table (`oodmix-train > out.txt`
saves the table, not the bar), and show a few metrics, not all of them: oodmix publishes a
few dozen values per epoch to `trainer.progress_bar_metrics` (oodmix.metrics.publish).
A training batch is a chunk of `data.steps_per_chunk` optimiser steps, so the training bar
advances once per chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar

#: What the bars show: the training objective and the metric checkpoints are chosen by.
SHOWN_METRICS = ("train/loss", "val/f1")


def _shown(trainer: Any, names: Sequence[str]) -> dict[str, float]:
    metrics = trainer.progress_bar_metrics
    return {name: metrics[name] for name in names if name in metrics}


class RichProgress(RichProgressBar):
    """Lightning's rich bar on stderr, with `metrics` only (no logger version number), drawn
    by rich's refresh thread alone, at most `refresh_rate` times a second.

    Drawing the bar takes rich about 5 ms of Python here. Lightning's default of 100 draws a
    second took that from training (a default run's fit 50% slower), and rich also drew at
    once, in the training loop, each time an epoch's bar was reset or the validation bar
    added (twice an epoch: 10% of a default run's fit). Here every change only asks the
    thread to draw, and 10 draws a second are smooth to the eye."""

    def __init__(self, metrics: Sequence[str] = SHOWN_METRICS, refresh_rate: int = 10) -> None:
        super().__init__(refresh_rate=refresh_rate, console_kwargs={"stderr": True})
        self.metrics = tuple(metrics)

    def _init_progress(self, trainer: Any) -> None:
        super()._init_progress(trainer)
        soft = getattr(self.progress, "soft_refresh", None)
        if soft is not None:  # rich's add_task and reset call refresh(): leave it to the thread
            self.progress.refresh = soft

    def get_metrics(self, trainer: Any, pl_module: Any) -> dict[str, Any]:
        return _shown(trainer, self.metrics)


class TQDMProgress(TQDMProgressBar):
    """Lightning's tqdm bar (stderr, no extra dependency), with `metrics` only."""

    def __init__(self, metrics: Sequence[str] = SHOWN_METRICS) -> None:
        super().__init__()
        self.metrics = tuple(metrics)

    def get_metrics(self, trainer: Any, pl_module: Any) -> dict[str, Any]:
        return _shown(trainer, self.metrics)
