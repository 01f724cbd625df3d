"""The training fast path: chunks of steps, device-resident slices, no collate, no host syncs.

Speed itself is measured by benchmarks/performance.py; these tests pin down the properties the
speed rests on, and that chunking steps never changes what is computed.
"""

from __future__ import annotations

import pytest
import torch
import torch.utils.data
from torch.utils._python_dispatch import TorchDispatchMode

from oodmix.data.loaders import TrainBatches
from oodmix.models import OODClassifier
from oodmix.models.classifier import EpochMean
from oodmix.runs.build import build_run

# Training only: no validation, checkpoints or logger files.
TRAIN_ONLY = [
    "~callbacks",
    "logger=none",
    "test_ckpt=last",
    "+trainer.limit_val_batches=0",
    "+trainer.enable_checkpointing=false",
]


def fit(compose_config, *overrides: str):
    run = build_run(compose_config(*TRAIN_ONLY, *overrides))
    run.trainer.fit(run.module, datamodule=run.datamodule)
    return run


def weights(run) -> list[torch.Tensor]:
    return [p.detach().clone() for p in run.module.net.parameters()]


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["ce", "ce_kl_mixup"])
def test_chunk_length_does_not_change_the_weights(compose_config, loss):
    """1, 5 and 16 steps per Lightning batch: the same 3 x 16 steps, bit-identical weights."""
    runs = [fit(compose_config, f"loss={loss}", f"data.steps_per_chunk={k}") for k in (1, 5, 16)]
    assert [run.trainer.global_step for run in runs] == [48, 48, 48]  # 2000 ID points / 128
    assert [len(run.datamodule.train_dataloader()) for run in runs] == [16, 4, 1]
    first = weights(runs[0])
    for run in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(first, weights(run)))


@pytest.mark.slow
def test_max_steps_stops_inside_a_chunk(compose_config):
    """max_steps=21 with 16-step chunks: exactly 21 optimiser steps, as with 1-step chunks."""
    chunked = fit(compose_config, "+trainer.max_steps=21", "data.steps_per_chunk=16")
    single = fit(compose_config, "+trainer.max_steps=21", "data.steps_per_chunk=1")
    assert chunked.trainer.global_step == single.trainer.global_step == 21
    assert all(torch.equal(a, b) for a, b in zip(weights(chunked), weights(single)))


def test_chunks_group_the_same_step_batches():
    """Chunks of 3 concatenate to the step batches, in order, and the last chunk is short."""
    torch.manual_seed(0)
    id_x, id_y, ood_x = torch.randn(1000, 2), torch.randint(0, 2, (1000,)), torch.randn(500, 2)

    def loader(k):
        return TrainBatches(
            id_x, id_y, ood_x, 128, None, seed=3, epoch=lambda: 1, steps_per_chunk=k
        )

    steps = list(loader(1).step_batches())
    chunks = list(loader(3))
    assert len(steps) == 8 and [len(c) for c in chunks] == [3, 3, 2] and len(loader(3)) == 3
    flat = [batch for chunk in chunks for batch in chunk]
    for a, b in zip(steps, flat, strict=True):
        assert torch.equal(a["id"][0], b["id"][0]) and torch.equal(a["ood"], b["ood"])


def test_steps_per_chunk_must_be_positive():
    with pytest.raises(ValueError, match="steps_per_chunk=0"):
        TrainBatches(
            torch.zeros(4, 2), torch.zeros(4), None, 2, None, 0, lambda: 0, steps_per_chunk=0
        )


def test_epoch_mean_weights_steps_by_their_samples():
    """Two steps of 3 and 1 samples: mean = (3 a + 1 b) / 4 for every term."""
    means = EpochMean()
    means.update(["loss", "ce"], torch.tensor([2.0, 1.0]), batch_size=3)
    means.update(["loss", "ce"], torch.tensor([6.0, 5.0]), batch_size=1)
    result = means.compute()
    assert result["loss"].item() == pytest.approx((3 * 2.0 + 6.0) / 4)
    assert result["ce"].item() == pytest.approx((3 * 1.0 + 5.0) / 4)
    means.reset()
    assert means.compute() == {}


# --- the fast path --------------------------------------------------------------------------


class HostSyncRecorder(TorchDispatchMode):
    """Records every aten op; flags those that wait for the device or copy across devices."""

    SYNCING = frozenset({"_local_scalar_dense", "nonzero", "masked_select", "item"})

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []
        self.flagged: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        self.ops.append(name)
        if name in self.SYNCING or (name == "_to_copy" and "device" in kwargs):
            self.flagged.append(name)
        return func(*args, **kwargs)


def test_training_path_has_no_collate_no_copies_and_no_host_syncs(compose_config, monkeypatch):
    """A real fit of ce_kl_mixup, watched:

    - the training loader is oodmix's TrainBatches, never a torch DataLoader, and no per-sample
      collate runs (both are made to raise);
    - every epoch reads the very same split tensors (nothing copied per epoch), and every step
      batch is the rows of those tensors that its indices name;
    - batch slicing, mixup, the forward pass plus loss and the epoch-mean update run no op
      that waits for the device (.item(), nonzero, ...) or copies to another device; a whole
      training step waits once per optimiser step, to read whether its loss is finite.
    """

    def forbidden(*args, **kwargs):
        raise AssertionError("a per-sample DataLoader/collate was used on the training path")

    monkeypatch.setattr(torch.utils.data.DataLoader, "__iter__", forbidden)
    monkeypatch.setattr(torch.utils.data._utils.collate, "default_collate", forbidden)

    recorder = HostSyncRecorder()
    pointers: set[tuple[int, int]] = set()
    checked_batches: list[dict] = []

    original_step_terms = OODClassifier.step_terms
    original_step_batches = TrainBatches.step_batches

    def watched_step_terms(self, batch):
        with recorder:
            return original_step_terms(self, batch)

    def watched_step_batches(self):
        pointers.add((self.id_x.data_ptr(), self.ood_x.data_ptr()))
        iterator = original_step_batches(self)
        while True:
            with recorder:
                batch = next(iterator, None)
            if batch is None:
                return
            checked_batches.append(batch)
            yield batch

    original_update = EpochMean.update

    def watched_update(self, names, values, batch_size):
        with recorder:
            original_update(self, names, values, batch_size)

    # The backward pass waits for nothing; the finiteness check of each step's loss terms
    # reads one flag (the one host synchronisation of a step, besides the optimiser's own).
    check_recorder, backward_recorder = HostSyncRecorder(), HostSyncRecorder()
    original_check = OODClassifier.refuse_non_finite
    original_backward = OODClassifier.manual_backward

    def watched_check(self, names, values):
        with check_recorder:
            original_check(self, names, values)

    def watched_backward(self, loss, *args, **kwargs):
        with backward_recorder:
            original_backward(self, loss, *args, **kwargs)

    monkeypatch.setattr(OODClassifier, "step_terms", watched_step_terms)
    monkeypatch.setattr(EpochMean, "update", watched_update)
    monkeypatch.setattr(OODClassifier, "refuse_non_finite", watched_check)
    monkeypatch.setattr(OODClassifier, "manual_backward", watched_backward)
    monkeypatch.setattr(TrainBatches, "step_batches", watched_step_batches)

    cfg = compose_config(*TRAIN_ONLY, "loss=ce_kl_mixup")
    run = build_run(cfg)
    datamodule = run.datamodule
    original_mix = datamodule.add_mixed_parts

    def watched_mix(batch):
        with recorder:
            return original_mix(batch)

    datamodule.add_mixed_parts = watched_mix
    run.trainer.fit(run.module, datamodule=datamodule)

    assert run.trainer.global_step == 48
    assert not isinstance(datamodule.train_dataloader(), torch.utils.data.DataLoader)
    assert len(pointers) == 1  # three epochs, one set of tensors
    assert {"index", "lerp", "addmm"} <= set(recorder.ops)  # slicing, mixup and the net ran
    assert recorder.flagged == []
    assert backward_recorder.flagged == [] and "mm" in backward_recorder.ops
    assert check_recorder.flagged == ["_local_scalar_dense"] * run.trainer.global_step
    splits = datamodule.splits
    for batch in checked_batches[:20]:
        x, y = batch["id"]
        rows = (splits.id_x[:, None, :] == x[None, :, :]).all(dim=-1)  # (N, B): which row is x_b
        assert rows.sum(dim=0).eq(1).all()  # each batch point is exactly one stored point
        assert torch.equal(splits.id_y[rows.float().argmax(dim=0)], y)
        assert x.device == splits.id_x.device and batch["ood_mix"].device == x.device


def test_batches_already_on_the_device_skip_lightnings_transfer(compose_config):
    """The splits live on the training device, so transfer_batch_to_device hands back the batch."""
    run = build_run(compose_config("loss=ce_kl"))
    run.datamodule.setup("fit")
    chunk = next(iter(run.datamodule.train_dataloader()))
    assert run.datamodule.transfer_batch_to_device(chunk, torch.device("cpu"), 0) is chunk


def _recorded_gradients(compose_config, *overrides: str) -> list[list[torch.Tensor]]:
    """The gradients the optimiser saw at each of 3 steps (after any clipping)."""
    import lightning as L

    class Record(L.Callback):
        def __init__(self) -> None:
            self.steps: list[list[torch.Tensor]] = []

        def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
            self.steps.append([p.grad.detach().clone() for p in pl_module.net.parameters()])

    run = build_run(compose_config(*TRAIN_ONLY, "+trainer.max_steps=3", *overrides))
    record = Record()
    run.trainer.callbacks.append(record)
    run.trainer.fit(run.module, datamodule=run.datamodule)
    return record.steps


def _norm(grads: list[torch.Tensor]) -> torch.Tensor:
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


@pytest.mark.slow
def test_gradient_clipping_by_norm_scales_each_step(compose_config):
    """First step (same weights either way): clipped g = g * c / ||g||_2 when ||g||_2 > c."""
    plain = _recorded_gradients(compose_config)
    clipped = _recorded_gradients(compose_config, "model.gradient_clip_val=0.05")
    assert len(plain) == len(clipped) == 3
    scale = 0.05 / _norm(plain[0])
    assert scale < 1  # else this test would not test clipping
    for g, c in zip(plain[0], clipped[0]):
        torch.testing.assert_close(c, g * scale, rtol=1e-5, atol=1e-8)
    assert all(_norm(step) <= 0.05 * (1 + 1e-5) for step in clipped)


@pytest.mark.slow
def test_gradient_clipping_by_value_clamps_each_entry(compose_config):
    plain = _recorded_gradients(compose_config)
    clipped = _recorded_gradients(
        compose_config, "model.gradient_clip_val=0.01", "model.gradient_clip_algorithm=value"
    )
    assert max(g.abs().max() for g in plain[0]) > 0.01
    for g, c in zip(plain[0], clipped[0]):
        torch.testing.assert_close(c, g.clamp(-0.01, 0.01))
