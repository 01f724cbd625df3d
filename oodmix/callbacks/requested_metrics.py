"""Which metrics the rest of a run reads after each epoch's validation.

Per-epoch validation computes only these (oodmix.callbacks.detection_evaluation); the full
set of metrics is computed by the validation after training and by the test. They are looked
up on the trainer rather than assumed, so that a changed `monitor` or an added EarlyStopping
gets what it monitors.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def requested_metrics(trainer: Any) -> set[str]:
    """The full names ("val/f1", ...) read per epoch by what is attached to `trainer`:

    - the `monitor` of every callback that has one (ModelCheckpoint, EarlyStopping) and of
      every learning-rate scheduler (ReduceLROnPlateau);
    - a progress bar's shown `metrics` (oodmix.callbacks.progress);
    - a logger's `hparams_metrics` (TensorBoard's HParams tab, oodmix.loggers.tensorboard).
    """
    names: set[str] = set()
    for callback in trainer.callbacks:
        names.update(_names(getattr(callback, "monitor", None)))
    for config in getattr(trainer, "lr_scheduler_configs", None) or ():
        names.update(_names(getattr(config, "monitor", None)))
    bar = trainer.progress_bar_callback
    if bar is not None:
        names.update(_names(getattr(bar, "metrics", None)))
    for logger in trainer.loggers:
        names.update(_names(getattr(logger, "hparams_metrics", None)))
    return names


def _names(value: str | Iterable[str] | None) -> list[str]:
    if not value:
        return []
    return [value] if isinstance(value, str) else [str(name) for name in value]
