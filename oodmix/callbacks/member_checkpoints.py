"""A stack's members' own checkpoint callbacks, on the stack's one trainer.

A stack of runs (oodmix.stacking) trains K members with one Trainer. Each member keeps the
checkpoint callbacks its solo run builds from its config (the best val/f1's best-*.ckpt and
last.ckpt, in its own folder: oodmix.callbacks.BufferedCheckpoint, which is Lightning's
ModelCheckpoint), and each makes its own choices, from its own values:

    what member k's callbacks see of the trainer (`MemberView`):
        callback_metrics    every (K,) metric's value k (val/f1 is member k's own)
        dump_checkpoint     member k's checkpoint, cut from the trainer's (`cut`: its weights,
                            optimiser state and loop state; its own callbacks' state)
        checkpoint_callbacks, loggers
                            its own callbacks; no logger (the stack's loggers are the members')
        everything else     the trainer's (epoch, step, strategy, loops)

Members' checkpoints are kept in memory until training ends (BufferedCheckpoint with
write_every_s=None: K files every few seconds would cost more than training); the stack's own
checkpoint carries them (`state_dict`), so a stopped stack that resumes has them back. A member
that failed (OODClassifier.failed_members) is no longer checkpointed and writes no file.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import torch

from oodmix.callbacks.own_hooks import OwnHooksOnly


class MemberView:
    """Member `member`'s view of the stack's trainer (see the module's docstring)."""

    def __init__(self, trainer: L.Trainer, member: int, owner: MemberCheckpoints) -> None:
        self._trainer = trainer
        self._member = member
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trainer, name)

    @property
    def callback_metrics(self) -> dict[str, Any]:
        k, members = self._member, self._owner.members
        return {
            name: value[k] if _per_member(value, members) else value
            for name, value in self._trainer.callback_metrics.items()
        }

    @property
    def checkpoint_callbacks(self) -> list[Any]:
        return list(self._owner.callbacks[self._member] or ())

    @property
    def loggers(self) -> list[Any]:
        return []

    @property
    def logger(self) -> None:
        return None

    @property
    def _checkpoint_connector(self) -> MemberView:
        return self  # dump_checkpoint, below

    def dump_checkpoint(self, weights_only: bool = False) -> dict[str, Any]:
        return self._owner.member_checkpoint(self._trainer, self._member, weights_only)

    def save_checkpoint(
        self, filepath: Any, weights_only: bool = False, storage_options: Any = None
    ) -> None:
        """Trainer.save_checkpoint, of the member's checkpoint (ModelCheckpoint calls it when
        it writes at once)."""
        checkpoint = self.dump_checkpoint(weights_only)
        self._trainer.strategy.save_checkpoint(checkpoint, filepath, storage_options)
        self._trainer.strategy.barrier("MemberView.save_checkpoint")


def _per_member(value: Any, members: int) -> bool:
    return torch.is_tensor(value) and value.dim() == 1 and value.shape[0] == members


class MemberCheckpoints(OwnHooksOnly, L.Callback):
    """Each member's checkpoint callbacks (`callbacks[k]`, None for a member that has none, such
    as one whose job finished before its stack was stopped), driven with the member's view of
    the trainer. `cut(trainer_checkpoint, k)` is member k's checkpoint, cut from Lightning's
    dump of the stack's trainer without its callbacks' states, which are filled in here."""

    def __init__(
        self,
        callbacks: Sequence[Sequence[Any] | None],
        cut: Callable[[dict[str, Any], int], dict[str, Any]],
    ) -> None:
        self.callbacks = [list(c) if c is not None else None for c in callbacks]
        self.members = len(self.callbacks)
        self.cut = cut
        #: What the members' callbacks monitor: what per-epoch validation computes
        #: (oodmix.callbacks.requested_metrics reads the `monitor` of every callback).
        self.monitor = sorted({cb.monitor for c in self.callbacks for cb in c or () if cb.monitor})
        #: Member k's best weights (its best checkpoint's state_dict), kept when training ends.
        self.best_states: dict[int, dict[str, Any]] = {}
        self._dump: dict[bool, dict[str, Any]] = {}  # the trainer's, during one hook

    # -- what the members' callbacks are given ---------------------------------------------
    def member_checkpoint(self, trainer: L.Trainer, k: int, weights_only: bool) -> dict[str, Any]:
        """Member k's checkpoint now: cut from one dump of the trainer per hook call."""
        if weights_only not in self._dump:
            self._dump[weights_only] = trainer._checkpoint_connector.dump_checkpoint(weights_only)
        checkpoint = self.cut(self._dump[weights_only], k)
        own = self.callbacks[k] or ()
        checkpoint["callbacks"] = {cb.state_key: cb.state_dict() for cb in own}
        return checkpoint

    def _active(self, pl_module: L.LightningModule) -> list[tuple[int, list[Any]]]:
        """The members still checkpointed: not failed, with callbacks; a member that failed
        since the last call drops what it held (it writes no file)."""
        failed = getattr(pl_module, "failed_members", {})
        active = []
        for k, callbacks in enumerate(self.callbacks):
            if callbacks is None:
                continue
            if k in failed:
                for cb in callbacks:
                    cb._pending.clear()
                    cb._unbuilt = None
                self.callbacks[k] = None
                continue
            active.append((k, callbacks))
        return active

    def _each(self, trainer: L.Trainer, pl_module: L.LightningModule, hook: str, *args: Any):
        """Call `hook` of every active member's callbacks, with its view of the trainer."""
        self._dump.clear()
        try:
            for k, callbacks in self._active(pl_module):
                view = MemberView(trainer, k, self)
                for cb in callbacks:
                    method = getattr(cb, hook, None)
                    if method is not None:
                        method(view, pl_module, *args)
        finally:
            self._dump.clear()

    # -- Lightning's hooks -----------------------------------------------------------------
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # ModelCheckpoint warns about a folder that holds files; a stack that resumes finds
        # each member's group record there, and the stack's own checkpoint callback already
        # warns once (as a resumed solo run's does), not once per member.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Checkpoint directory .* is not empty")
            self._each(trainer, pl_module, "setup", stage)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._each(trainer, pl_module, "on_train_start")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._each(trainer, pl_module, "on_train_epoch_end")

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._each(trainer, pl_module, "on_validation_end")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Each member writes what it holds. Also called once more after fit by the stack
        (Lightning does not call it when a resumed fit has no epoch left to train); a second
        call writes nothing again."""
        self._keep_best_states()
        self._each(trainer, pl_module, "on_train_end")

    # Checkpoints every few training steps (every_n_train_steps, train_time_interval) are not
    # driven: a stack's members checkpoint at epochs. On an exception nothing is written: the
    # stack's checkpoint (interrupted or latest) holds every member's pending checkpoints.

    def state_dict(self) -> dict[str, Any]:
        return {
            "members": [
                None
                if callbacks is None
                else [{"state": cb.state_dict(), "pending": dict(cb._pending)} for cb in callbacks]
                for callbacks in self.callbacks
            ]
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for callbacks, saved in zip(self.callbacks, state_dict["members"], strict=True):
            if callbacks is None or saved is None:
                continue
            for cb, own in zip(callbacks, saved, strict=True):
                cb.load_state_dict(own["state"])
                cb._pending = dict(own["pending"])

    def _best(self, k: int) -> Any:
        """Member k's first callback that monitors a metric, or None."""
        return next((cb for cb in self.callbacks[k] or () if cb.monitor), None)

    def _keep_best_states(self) -> None:
        for k in range(self.members):
            cb = self._best(k)
            if cb is not None and cb.best_model_path in cb._pending:
                self.best_states[k] = cb._pending[cb.best_model_path]["state_dict"]

    def best_state(self, k: int) -> dict[str, Any] | None:
        """Member k's best weights by its monitored metric (as its solo run's test_ckpt=best
        reads them): kept in memory when training ended, else read from its best checkpoint's
        file; None when it has no such checkpoint."""
        if k in self.best_states:
            return self.best_states[k]
        cb = self._best(k)
        if cb is None or not cb.best_model_path:
            return None
        from oodmix.checkpoints import AtomicCheckpointIO

        return AtomicCheckpointIO().load_checkpoint(cb.best_model_path)["state_dict"]
