"""BufferedCheckpoint: Lightning's ModelCheckpoint choices, files written at most every
`write_every_s` seconds, and after training exactly what ModelCheckpoint leaves."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from oodmix.callbacks import BufferedCheckpoint, DetectionEvaluation
from oodmix.callbacks.buffered_checkpoint import detached_copy
from oodmix.runs.build import build_run
from oodmix.runs.job import train

REFERENCE = [  # both checkpoint callbacks as Lightning's own ModelCheckpoint
    change.format(name)
    for name in ("model_checkpoint", "last_checkpoint")
    for change in (
        "callbacks.{}._target_=lightning.pytorch.callbacks.ModelCheckpoint",
        "~callbacks.{}.write_every_s",
    )
]
# Compared between the two runs: what training wrote (the callbacks' own states hold paths
# into each run's folder, the hyperparameters the folder itself).
COMPARED = ("epoch", "global_step", "state_dict", "optimizer_states", "loops", "oodmix")


def folder(run: Path) -> dict[str, dict]:
    checkpoints = run / "checkpoints"
    return {
        path.name: torch.load(path, map_location="cpu", weights_only=False)
        for path in sorted(checkpoints.iterdir())
    }


def assert_same(a, b, where: str = "") -> None:
    if torch.is_tensor(a):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{k}]")
    else:
        assert a == b, where


@pytest.mark.slow
@pytest.mark.parametrize(
    "length",
    [["trainer.max_epochs=4"], ["trainer.max_epochs=50", "+trainer.max_steps=40"]],
    ids=["4 epochs", "40 steps"],
)
def test_after_training_the_folder_is_what_model_checkpoint_leaves(compose_config, length):
    """Same seed, once with Lightning's ModelCheckpoint writing every checkpoint, once buffered:
    the same files (best and last), with the same weights, optimiser state, loop counters and
    epoch; last.ckpt is the final epoch's, also when max_steps ends training mid-epoch."""
    common = [*length, "plots=false", "seed=3", "logger=none"]
    reference = compose_config(*common, *REFERENCE, run="reference")
    train(reference)
    buffered = compose_config(*common, run="buffered")
    train(buffered)
    expected, written = folder(Path(reference.output_dir)), folder(Path(buffered.output_dir))
    assert list(written) == list(expected)
    assert len(written) == 2 and "last.ckpt" in written
    for name in expected:
        for key in COMPARED:
            assert_same(written[name][key], expected[name][key], f"{name}:{key}")


def checkpoint_files(run: Path) -> list[str]:
    checkpoints = run / "checkpoints"
    return sorted(p.name for p in checkpoints.iterdir()) if checkpoints.is_dir() else []


def best_epoch_by_csv(run: Path, epochs: int) -> int:
    """The first epoch with the highest val/f1 of the first `epochs`, as metrics.csv logged."""
    with open(run / "csv" / "metrics.csv") as handle:
        f1 = {
            int(row["epoch"]): float(row["val/f1"])
            for row in csv.DictReader(handle)
            if row.get("val/f1")
        }
    scores = [f1[e] for e in range(epochs)]
    return scores.index(max(scores))


def test_files_are_written_first_then_at_the_end_or_when_training_fails(
    compose_config, monkeypatch
):
    """write_every_s=10 on a run of a second: the first epoch's checkpoints are written at once,
    later ones are held; when training fails at the start of epoch 4, the best checkpoint is
    written (the one ModelCheckpoint would have), last.ckpt stays the first epoch's."""
    seen: dict[int, list[str]] = {}

    def probe(self, trainer, module):
        seen[trainer.current_epoch] = checkpoint_files(Path(cfg.output_dir))
        if trainer.current_epoch == 4:
            raise RuntimeError("stop here")

    monkeypatch.setattr(DetectionEvaluation, "on_train_epoch_start", probe, raising=False)
    cfg = compose_config("trainer.max_epochs=6", "plots=false", "seed=3", run="failing")
    built = build_run(cfg)
    with pytest.raises(RuntimeError, match="stop here"):
        built.trainer.fit(built.module, datamodule=built.datamodule)
    run = Path(cfg.output_dir)
    first = ["best-epoch=000.ckpt", "last.ckpt"]
    assert seen == {0: [], 1: first, 2: first, 3: first, 4: first}
    best = best_epoch_by_csv(run, epochs=4)
    assert best > 0  # the premise: the best checkpoint was held in memory, not yet written
    assert checkpoint_files(run) == [f"best-epoch={best:03d}.ckpt", "last.ckpt"]
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 0


def test_detached_copy_is_unchanged_by_later_updates():
    weights = torch.zeros(3)
    scores = {"a": torch.tensor(1.0)}
    checkpoint = {"state_dict": {"w": weights}, "best_k": scores, "hyper_parameters": {"x": 1}}
    copy = detached_copy(checkpoint)
    weights.add_(1.0)
    scores["b"] = torch.tensor(2.0)
    assert copy["state_dict"]["w"].tolist() == [0.0, 0.0, 0.0]
    assert list(copy["best_k"]) == ["a"]
    assert copy["hyper_parameters"] is checkpoint["hyper_parameters"]  # fixed while training


def test_negative_interval_is_refused(tmp_path):
    with pytest.raises(ValueError, match="write_every_s=-1 is not allowed"):
        BufferedCheckpoint(dirpath=str(tmp_path), write_every_s=-1)


def test_an_unforeseen_end_still_writes_the_last_state(compose_config, monkeypatch):
    """Should training end without is_final_epoch saying so, last.ckpt is built and written
    when training ends: it holds the final weights and step."""
    import oodmix.callbacks.buffered_checkpoint as buffered

    monkeypatch.setattr(buffered, "is_final_epoch", lambda trainer: False)
    cfg = compose_config("trainer.max_epochs=3", "plots=false", "logger=none", run="unforeseen")
    built = build_run(cfg)
    built.trainer.fit(built.module, datamodule=built.datamodule)
    last = torch.load(Path(cfg.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == built.trainer.global_step == 3 * 16
    for name, value in built.module.state_dict().items():
        assert torch.equal(last["state_dict"][name], value), name


def test_a_best_written_before_a_stop_is_removed_when_training_ends(tmp_path):
    """A run resumed from an older last.ckpt does not know of a best-*.ckpt written after it
    (checkpoints are written every few seconds); when training ends the folder holds only the
    best it keeps (and files of other names are left alone)."""
    from types import SimpleNamespace

    callback = BufferedCheckpoint(dirpath=tmp_path, filename="best-{epoch:03d}", monitor="val/f1",
                                  mode="max", save_top_k=1)  # fmt: skip
    kept = tmp_path / "best-epoch=019.ckpt"
    for name in ("best-epoch=013.ckpt", "best-epoch=019.ckpt", "last.ckpt", "best.txt"):
        (tmp_path / name).write_bytes(b"x")
    callback.best_k_models = {str(kept): torch.tensor(0.5)}
    callback.best_model_path = str(kept)
    assert callback.stale_files() == [tmp_path / "best-epoch=013.ckpt"]
    trainer = SimpleNamespace(
        is_global_zero=True,
        checkpoint_callbacks=[callback],
        global_step=10,
        strategy=SimpleNamespace(barrier=lambda name: None),
    )
    callback.on_train_end(trainer, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "best-epoch=019.ckpt", "best.txt", "last.ckpt"]  # fmt: skip
    # A callback without a monitor, or whose names have no fixed beginning, removes nothing.
    last = BufferedCheckpoint(dirpath=tmp_path, filename="last", monitor=None)
    unnamed = BufferedCheckpoint(dirpath=tmp_path, monitor="val/f1", mode="max")
    assert last.stale_files() == [] and unnamed.stale_files() == []


def test_a_finished_run_keeps_no_interrupted_checkpoint(tmp_path):
    from types import SimpleNamespace

    from oodmix.checkpoints import InterruptCheckpoint

    callback = InterruptCheckpoint(str(tmp_path), "interrupted")
    (tmp_path / "interrupted.ckpt").write_bytes(b"x")
    callback.on_train_end(SimpleNamespace(is_global_zero=False), None)  # another process
    assert (tmp_path / "interrupted.ckpt").exists()
    callback.on_train_end(SimpleNamespace(is_global_zero=True), None)
    assert not (tmp_path / "interrupted.ckpt").exists()
