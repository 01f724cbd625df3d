"""Hand epoch-level metrics to Lightning's consumers without `LightningModule.log`.

`self.log` routes every value through Lightning's result collection: about a millisecond and a
half of Python per key, per call. oodmix logs a few dozen values at the end of each epoch of a
model whose whole epoch can take a few milliseconds, so that bookkeeping was the largest cost
of a default run. Its values are already final here (reduced over processes by the caller),
so they go straight to where `self.log` would have put them.

Loggers are handed every value at once, but asked to write to disk (`logger.save()`) at most
every SAVE_EVERY_S seconds: Lightning's CSV logger opens metrics.csv on each save to append
the new rows (and rewrites the file when a column is new), about 0.3 ms, twice an epoch, on a
default run whose per-epoch validation has a budget of 2 ms.
Nothing is lost: Lightning finalises (saves) every logger when a fit, validation or test ends,
also when it ends with an error or a signal; only a hard kill loses the last few seconds.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Mapping
from typing import Any

import torch

#: The longest a logged value waits in memory before its logger writes it to disk.
SAVE_EVERY_S = 5.0

# logger -> time.monotonic() of its last save by publish().
_last_save: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


def publish(trainer: Any, metrics: Mapping[str, torch.Tensor | float]) -> None:
    """Make `metrics` visible as if logged with `self.log(..., on_epoch=True)`.

    - trainer.callback_metrics: what ModelCheckpoint/EarlyStopping monitor and what
      oodmix-train writes to metrics.json;
    - trainer.progress_bar_metrics: what a progress bar shows;
    - every logger, with an `epoch` column, at step trainer.global_step (optimiser steps);
      written to disk at most every SAVE_EVERY_S seconds (see the module docstring).

    The values must be the same on every process (already synchronised).

    For a stack of K runs (oodmix.stacking) every value is (K,), one per member: the
    trainer's callback_metrics hold the (K,) tensors, and each logger that belongs to a member
    (a `member` attribute, oodmix.loggers.member.MemberLogger) gets that member's values, as
    its solo run's logger gets them; there is no progress bar.
    """
    if not metrics:
        return
    # One stack and one copy to the host: a copy per value would wait for the GPU each time.
    first = next((v for v in metrics.values() if torch.is_tensor(v)), None)
    device = first.device if first is not None else None
    shape = first.shape if first is not None else torch.Size()  # () or (K,)
    stacked = torch.stack(
        [
            torch.as_tensor(v, device=device).detach().float().reshape(shape)
            for v in metrics.values()
        ]
    )
    rows = dict(zip(metrics, stacked.tolist()))  # name -> a float, or K floats
    trainer.callback_metrics.update({name: torch.tensor(v) for name, v in rows.items()})
    if not shape:
        trainer.progress_bar_metrics.update(rows)
    now = time.monotonic()
    for logger in trainer.loggers:
        member = getattr(logger, "member", None)
        if shape and member is None:
            continue  # a stack's values belong to its members' loggers only
        values = rows if not shape else {name: v[member] for name, v in rows.items()}
        logger.log_metrics({**values, "epoch": trainer.current_epoch}, step=trainer.global_step)
        if now - _last_save.get(logger, float("-inf")) >= SAVE_EVERY_S:
            logger.save()
            _last_save[logger] = now
