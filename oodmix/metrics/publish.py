"""Hand epoch-level metrics to Lightning's consumers without `LightningModule.log`.

`self.log` routes every value through Lightning's result collection: about a millisecond and a
half of Python per key, per call. oodmix logs a few dozen values at the end of each epoch of a
model whose whole epoch can take a few milliseconds, so that bookkeeping was the largest cost
of a default run. Its values are already final here (reduced over processes by the caller),
so they go straight to where `self.log` would have put them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


def publish(trainer: Any, metrics: Mapping[str, torch.Tensor | float]) -> None:
    """Make `metrics` visible as if logged with `self.log(..., on_epoch=True)`.

    - trainer.callback_metrics: what ModelCheckpoint/EarlyStopping monitor and what
      oodmix-train writes to metrics.json;
    - trainer.progress_bar_metrics: what a progress bar shows;
    - every logger, with an `epoch` column, at step trainer.global_step (optimiser steps).

    The values must be the same on every process (already synchronised).
    """
    if not metrics:
        return
    tensors = {
        name: (value.detach().float().cpu() if torch.is_tensor(value) else torch.tensor(value))
        for name, value in metrics.items()
    }
    trainer.callback_metrics.update(tensors)
    trainer.progress_bar_metrics.update({name: float(v) for name, v in tensors.items()})
    if not trainer.loggers:
        return
    scalars: dict[str, float] = {name: float(value) for name, value in tensors.items()}
    scalars["epoch"] = trainer.current_epoch
    for logger in trainer.loggers:
        logger.log_metrics(scalars, step=trainer.global_step)
        logger.save()
