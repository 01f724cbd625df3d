"""OwnHooksOnly: Lightning calls a callback's hooks that it implements, and no others."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from oodmix.callbacks import BufferedCheckpoint, ConfidenceMap, DetectionEvaluation, SavedScores
from oodmix.callbacks.member_checkpoints import MemberCheckpoints
from oodmix.callbacks.own_hooks import ALWAYS_CALLED, SKIPPABLE_HOOKS, OwnHooksOnly
from oodmix.checkpoints import InterruptCheckpoint


class Counting(OwnHooksOnly, L.Callback):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.calls.append("on_train_epoch_end")


class CountingMore(Counting):
    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self.calls.append("on_before_backward")


class Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        (x,) = batch
        return self.layer(x).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=4)


def fit(callback: L.Callback, epochs: int = 3) -> None:
    trainer = L.Trainer(
        max_epochs=epochs,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(Tiny())


def test_unimplemented_hooks_are_none_and_implemented_ones_kept() -> None:
    for name in SKIPPABLE_HOOKS:
        if name == "on_train_epoch_end":
            assert callable(Counting.on_train_epoch_end)
        else:
            assert getattr(Counting, name) is None, name
    # Called by Lightning without a callable check: must stay methods.
    for name in ALWAYS_CALLED:
        assert callable(getattr(Counting(), name))


@pytest.mark.slow
def test_lightning_calls_exactly_the_implemented_hooks() -> None:
    """3 epochs of 2 steps: on_train_epoch_end 3 times; a subclass's own hook 6 times."""
    counting = Counting()
    fit(counting)
    assert counting.calls == ["on_train_epoch_end"] * 3
    more = CountingMore()
    fit(more)
    assert more.calls.count("on_before_backward") == 6
    assert more.calls.count("on_train_epoch_end") == 3


@pytest.mark.slow
def test_checkpoints_still_save_and_load_callback_state(tmp_path) -> None:
    """on_save_checkpoint/on_load_checkpoint stay callable: a checkpoint is written and a run
    resumes from it."""
    trainer = L.Trainer(
        max_epochs=1,
        callbacks=[Counting()],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        default_root_dir=tmp_path,
    )
    trainer.fit(Tiny())
    path = tmp_path / "one.ckpt"
    trainer.save_checkpoint(path)
    again = Counting()
    resumed = L.Trainer(
        max_epochs=2,
        callbacks=[again],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    resumed.fit(Tiny(), ckpt_path=path)
    assert again.calls == ["on_train_epoch_end"]


@pytest.mark.parametrize(
    "callback_class",
    [
        DetectionEvaluation,
        BufferedCheckpoint,
        ConfidenceMap,
        SavedScores,
        InterruptCheckpoint,
        MemberCheckpoints,
    ],
)
def test_every_oodmix_callback_leaves_out_the_hooks_it_does_not_implement(callback_class) -> None:
    """No shipped callback inherits an empty hook from Lightning's Callback."""
    inherited = [
        name for name in SKIPPABLE_HOOKS if getattr(callback_class, name) is vars(L.Callback)[name]
    ]
    assert inherited == []
    # ...and keeps the ones it implements (each implements at least one).
    assert any(getattr(callback_class, name) is not None for name in SKIPPABLE_HOOKS)
