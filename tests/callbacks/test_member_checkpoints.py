"""MemberCheckpoints: each member of a stack keeps its own checkpoint callbacks, which choose its
best epoch from its own val/f1, hold its checkpoints (cut from the stack's) until training
ends, and carry them through the stack's checkpoint. A toy stack of K parameter rows, trained
by Lightning with a known val/f1 per member and epoch, checked against the choice computed by
hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from torch import nn

from oodmix.callbacks import BufferedCheckpoint
from oodmix.callbacks.member_checkpoints import MemberCheckpoints
from oodmix.metrics.publish import publish

K, EPOCHS = 3, 4
# val/f1 per epoch (rows) and member (columns); ties: a later equal F1 is not better.
F1 = torch.tensor(
    [
        [0.2, 0.5, 0.1],
        [0.6, 0.5, 0.1],
        [0.4, 0.9, 0.3],
        [0.6, 0.1, 0.2],
    ]
)
BEST = [1, 2, 2]  # the first epoch with each member's highest F1


class ToyStack(L.LightningModule):
    """K rows of weights, each moved by its own gradient; val/f1 published per member."""

    def __init__(self, fail: dict[int, int] | None = None) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.arange(K * 2, dtype=torch.float32).reshape(K, 2))
        self.fail = fail or {}  # member -> the epoch in which it fails
        self.failed_members: dict[int, Any] = {}
        self.weights_after: list[torch.Tensor] = []  # per epoch, after its training
        self.steps_after: list[int] = []  # the optimiser steps taken by each epoch's end

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return ((self.w - 1.0) ** 2).sum() * (1 + batch_idx)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        pass

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        epoch = self.current_epoch
        self.failed_members.update({k: "diverged" for k, e in self.fail.items() if e <= epoch})
        self.weights_after.append(self.w.detach().clone())
        self.steps_after.append(self.trainer.global_step)
        publish(self.trainer, {"val/f1": F1[epoch]})

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self) -> Any:
        return torch.utils.data.DataLoader(torch.zeros(3, 1), batch_size=1)

    def val_dataloader(self) -> Any:
        return torch.utils.data.DataLoader(torch.zeros(1, 1), batch_size=1)


def cut(stack: dict[str, Any], k: int) -> dict[str, Any]:
    """Member k's checkpoint: its row of the weights; the rest as the stack's."""
    member = {key: v for key, v in stack.items() if key not in ("state_dict", "callbacks")}
    member["state_dict"] = {"w": stack["state_dict"]["w"][k].clone()}
    return member


def member_callbacks(folder: Path) -> list[BufferedCheckpoint]:
    best = BufferedCheckpoint(dirpath=folder, filename="best-{epoch:03d}", monitor="val/f1",
                              mode="max", save_top_k=1, write_every_s=None)  # fmt: skip
    last = BufferedCheckpoint(dirpath=folder, filename="last", monitor=None, save_top_k=1,
                              enable_version_counter=False, write_every_s=None)  # fmt: skip
    return [best, last]


class FolderWatch(L.Callback):
    """The files in the members' folders after each validation, while training runs."""

    def __init__(self, root: Path) -> None:
        self.root, self.seen = root, []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.seen.append(sorted(p.name for p in self.root.rglob("*.ckpt")))


def train(tmp_path: Path, fail: dict[int, int] | None = None, epochs: int = EPOCHS):
    checkpoints = MemberCheckpoints([member_callbacks(tmp_path / str(k)) for k in range(K)], cut)
    watch = FolderWatch(tmp_path)
    module = ToyStack(fail)
    trainer = L.Trainer(max_epochs=epochs, callbacks=[checkpoints, watch], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0)  # fmt: skip
    trainer.fit(module)
    return checkpoints, module, watch


def load(path: Path) -> dict[str, Any]:
    return torch.load(path, weights_only=True)


def test_each_member_keeps_its_own_best_and_last_epoch(tmp_path: Path) -> None:
    checkpoints, module, watch = train(tmp_path)
    assert checkpoints.monitor == ["val/f1"]  # what per-epoch validation must compute
    assert all(seen == [] for seen in watch.seen)  # held in memory while training runs
    for k in range(K):
        files = sorted(p.name for p in (tmp_path / str(k)).iterdir())
        assert files == [f"best-epoch={BEST[k]:03d}.ckpt", "last.ckpt"]
        best = load(tmp_path / str(k) / files[0])
        assert best["epoch"] == BEST[k] and best["global_step"] == module.steps_after[BEST[k]]
        assert torch.equal(best["state_dict"]["w"], module.weights_after[BEST[k]][k])
        last = load(tmp_path / str(k) / "last.ckpt")
        assert last["epoch"] == EPOCHS - 1
        assert torch.equal(last["state_dict"]["w"], module.weights_after[-1][k])
        # Its own callbacks' states, as a solo run's checkpoint carries them.
        (state,) = [s for key, s in best["callbacks"].items() if "val/f1" in key]
        assert state["best_model_score"] == pytest.approx(float(F1[BEST[k], k]))
        assert torch.equal(checkpoints.best_state(k)["w"], module.weights_after[BEST[k]][k])


def test_a_failed_member_writes_nothing_and_the_others_go_on(tmp_path: Path) -> None:
    checkpoints, _, _ = train(tmp_path, fail={1: 2})
    assert not (tmp_path / "1").exists() and checkpoints.best_state(1) is None
    for k in (0, 2):
        assert (tmp_path / str(k) / f"best-epoch={BEST[k]:03d}.ckpt").is_file()


def test_held_checkpoints_travel_in_the_stacks_state(tmp_path: Path) -> None:
    """Stopped after 3 of 4 epochs (nothing written yet), the stack's checkpoint state holds
    every member's pending checkpoints; restored into fresh callbacks (through a weights_only
    file), they are written when training ends."""
    checkpoints = MemberCheckpoints([member_callbacks(tmp_path / str(k)) for k in range(K)], cut)
    module = ToyStack()
    trainer = L.Trainer(max_epochs=3, callbacks=[checkpoints], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0)  # fmt: skip
    # Training "stops" before its end: the pending checkpoints are not written.
    checkpoints.on_train_end = lambda *args: None  # type: ignore[method-assign]
    trainer.fit(module)
    assert not any(tmp_path.rglob("*.ckpt"))
    torch.save(checkpoints.state_dict(), tmp_path / "state.pt")

    restored = MemberCheckpoints([member_callbacks(tmp_path / str(k)) for k in range(K)], cut)
    restored.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    for k in range(K):
        best = restored.callbacks[k][0]
        assert best.best_model_path.endswith(f"best-epoch={min(BEST[k], 2):03d}.ckpt")
        assert set(best._pending) == {best.best_model_path}
    restored.on_train_end(trainer, module)  # writes what it holds
    for k in range(K):
        assert (tmp_path / str(k) / f"best-epoch={min(BEST[k], 2):03d}.ckpt").is_file()


def test_a_second_train_end_writes_nothing_again(tmp_path: Path) -> None:
    checkpoints, module, _ = train(tmp_path, epochs=2)
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.ckpt")}
    checkpoints.on_train_end(module.trainer, module)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.ckpt")} == stamps
