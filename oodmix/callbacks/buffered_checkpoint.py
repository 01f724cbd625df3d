"""Lightning's ModelCheckpoint, with its files written at most every few seconds."""

from __future__ import annotations

import time
from glob import escape as glob_escape
from pathlib import Path
from typing import Any
from weakref import proxy

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.strategies import Strategy

from oodmix.callbacks.own_hooks import OwnHooksOnly

# Saved by reference, not copied: the module's hyperparameters (the run's config) do not change
# while it trains, and walking them took most of a copy's time.
_NOT_COPIED = frozenset({"hyper_parameters"})


def detached_copy(value: Any) -> Any:
    """`value` with every dict, list and tuple rebuilt and every tensor cloned: a checkpoint
    that later training steps (in-place optimiser updates, callbacks' growing dicts) leave
    unchanged."""
    if torch.is_tensor(value):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: v if k in _NOT_COPIED else detached_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(detached_copy(v) for v in value)
    return value


def is_final_epoch(trainer: L.Trainer) -> bool:
    """Whether training stops after the epoch now ending: the checks of Lightning's fit loop
    (max_steps, max_epochs, should_stop), made where checkpoints are saved (epoch end)."""
    loop = trainer.fit_loop
    if loop.max_steps not in (None, -1) and trainer.global_step >= loop.max_steps:
        return True
    # `processed` already counts the ending epoch at on_train_epoch_end.
    if loop.max_epochs not in (None, -1) and loop.epoch_progress.current.processed >= (
        loop.max_epochs
    ):
        return True
    return bool(trainer.should_stop)


class BufferedCheckpoint(OwnHooksOnly, ModelCheckpoint):
    """ModelCheckpoint (same arguments, same choice of what to keep) whose files are written
    at most every `write_every_s` seconds.

    Writing one checkpoint of the default network takes about 2 ms on a 2-core machine (torch's
    zip format, then an fsync for an atomic replace): as long as the validation pass it follows
    and alone the whole budget for validating every epoch. Files are therefore written

      - when `write_every_s` seconds have passed since the last write (so the first at once),
      - at the end of the final epoch, when training ends, and when it stops with an
        exception (an error, SIGTERM, Ctrl+C),

    each time together with every other BufferedCheckpoint of the trainer that saves at the
    same step (a last.ckpt records which best-*.ckpt goes with it: both are written or neither).

    In between, a checkpoint that a later save may not replace (a monitored best) is built
    as ModelCheckpoint would have written it (Lightning's dump of the trainer, tensors copied)
    and kept in memory; one that the next save replaces anyway (monitor=None: last.ckpt) is
    not built at all. A file ModelCheckpoint would delete (the previous best) is deleted once
    its replacement is written.

    So after training the folder holds exactly what ModelCheckpoint would have left. While it
    runs, and after it stops with an exception, best-*.ckpt is what ModelCheckpoint would have
    written and last.ckpt may be up to `write_every_s` seconds older (the exact place a
    stopped run resumes from is checkpoints/interrupted.ckpt). `write_every_s=0` writes every
    checkpoint at once, as ModelCheckpoint does; so do strategies that save collectively
    (FSDP, DeepSpeed), whose state cannot be taken without writing it. `write_every_s=None`
    holds every checkpoint (the final epoch's built then) until training ends (a stack's
    members: oodmix.callbacks.member_checkpoints; the stack's own checkpoint holds them).
    """

    def __init__(self, *args: Any, write_every_s: float | None = 10.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if write_every_s is not None and not float(write_every_s) >= 0:
            raise ValueError(
                f"write_every_s={write_every_s} is not allowed: write_every_s must be a number "
                ">= 0 (seconds; 0 writes every checkpoint at once)"
            )
        self.write_every_s = None if write_every_s is None else float(write_every_s)
        self._pending: dict[str, dict[str, Any]] = {}  # path -> checkpoint not yet written
        self._stale: list[str] = []  # written files to delete once the pending ones are written
        # A checkpoint the next save replaces, not built, and the global step it was due at.
        self._unbuilt: tuple[str, int] | None = None
        # When and at which global step the BufferedCheckpoints of the trainer last wrote.
        self._last_write = float("-inf")
        self._last_write_step: int | None = None
        self._state_key: str | None = None

    @property
    def state_key(self) -> str:
        # Lightning formats this key from the constructor's arguments for every hook it calls
        # (as a profiler label, about 60 times an epoch); they do not change after __init__.
        if self._state_key is None:
            self._state_key = super().state_key
        return self._state_key

    def _monitor_candidates(self, trainer: L.Trainer) -> dict[str, torch.Tensor]:
        # ModelCheckpoint deep-copies every logged metric, twice an epoch; a shallow copy is
        # the same here, since published metrics are new tensors, never changed in place
        # (oodmix.metrics.publish, Lightning's own logging).
        candidates = dict(trainer.callback_metrics)
        epoch, step = candidates.get("epoch"), candidates.get("step")
        candidates["epoch"] = (
            epoch.int() if isinstance(epoch, torch.Tensor) else torch.tensor(trainer.current_epoch)
        )
        candidates["step"] = (
            step.int() if isinstance(step, torch.Tensor) else torch.tensor(trainer.global_step)
        )
        return candidates

    def _buffers(self, trainer: L.Trainer) -> bool:
        # Strategy.save_checkpoint writes a dumped checkpoint as it is; sharded strategies
        # override it with a collective save.
        base = type(trainer.strategy).save_checkpoint is Strategy.save_checkpoint
        return self.write_every_s != 0 and base

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        if not self._buffers(trainer):
            super()._save_checkpoint(trainer, filepath)
            return
        # What ModelCheckpoint._save_checkpoint does, with the file written later.
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        final = is_final_epoch(trainer)
        if self.write_every_s is None:  # held until training ends; the final epoch's built
            due = False
        else:
            due = (
                time.monotonic() - self._last_write >= self.write_every_s
                or self._last_write_step == trainer.global_step  # another one wrote at this step
                or final
            )
        # One decision for all processes: writing waits at barriers for every one of them.
        due = trainer.strategy.broadcast(due)
        if self.monitor is None and not due and not final:
            self._unbuilt = (filepath, trainer.global_step)  # the next save replaces it
            return
        self._build(trainer, filepath)
        if due:
            write_pending(trainer, build_unbuilt=True)

    def _build(self, trainer: L.Trainer, filepath: str) -> None:
        checkpoint = trainer._checkpoint_connector.dump_checkpoint(self.save_weights_only)
        self._pending[filepath] = detached_copy(checkpoint)
        self._unbuilt = None

    def _remove_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        if filepath in self._pending:  # never written: forget it
            del self._pending[filepath]
        elif self._pending:  # its replacement is not on disk yet
            self._stale.append(filepath)
        else:
            super()._remove_checkpoint(trainer, filepath)

    def _write(self, trainer: L.Trainer) -> None:
        """Write the pending checkpoints (main process), then delete the replaced files."""
        for path, checkpoint in self._pending.items():
            trainer.strategy.save_checkpoint(checkpoint, path)
        if self._pending and trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))
        self._pending.clear()
        for path in self._stale:
            super()._remove_checkpoint(trainer, path)
        self._stale.clear()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        # Also a last.ckpt not built at the final epoch, if is_final_epoch did not foresee it.
        write_pending(trainer, build_unbuilt=True)
        if trainer.is_global_zero:
            self._remove_stale_files()
        trainer.strategy.barrier("BufferedCheckpoint.on_train_end")

    def stale_files(self) -> list[Path]:
        """Files of this callback in its folder that it no longer keeps: a monitored best
        written before the run was stopped, which the run resumed from an older checkpoint
        does not know of (its record of the best predates that file). Named as this callback
        names its files (the part of `filename` before its first field, e.g. `best-`); none
        when that part is empty, or for a callback without a monitor (one file, overwritten)."""
        prefix = (self.filename or "").split("{", 1)[0]
        # save_top_k=-1 keeps every file, 0 writes none (no file of its name is its own).
        if not self.monitor or not prefix or not self.dirpath or self.save_top_k < 1:
            return []
        kept = {Path(path).resolve() for path in self.best_k_models}
        if self.last_model_path:
            kept.add(Path(self.last_model_path).resolve())
        folder = Path(self.dirpath)
        return sorted(
            path
            for path in folder.glob(f"{glob_escape(prefix)}*{self.FILE_EXTENSION}")
            if path.resolve() not in kept
        )

    def _remove_stale_files(self) -> None:
        """A finished run's folder holds only the checkpoints its callbacks keep."""
        for path in self.stale_files():
            path.unlink(missing_ok=True)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        super().on_exception(trainer, pl_module, exception)
        # No barrier: the other processes may not be stopping at the same point. A last.ckpt
        # not built stays as written (the exact place to resume is interrupted.ckpt).
        write_pending(trainer, build_unbuilt=False)


def write_pending(trainer: L.Trainer, build_unbuilt: bool) -> None:
    """Write what every BufferedCheckpoint of `trainer` holds, and start their common clock.

    With `build_unbuilt`, a checkpoint left unbuilt at this very step is built and written too
    (a last.ckpt whose callback ran before the one that decided to write, at the same step).
    """
    callbacks = [c for c in trainer.checkpoint_callbacks if isinstance(c, BufferedCheckpoint)]
    for callback in callbacks:
        if build_unbuilt and callback._unbuilt and callback._unbuilt[1] == trainer.global_step:
            callback._build(trainer, callback._unbuilt[0])
        callback._write(trainer)
    now = time.monotonic()
    for callback in callbacks:
        callback._last_write, callback._last_write_step = now, trainer.global_step
