"""Checkpoints: atomic writes, safe loading, exact resumption, and stopping on a signal."""

from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from console_scripts import run_script

from oodmix.checkpoints import AtomicCheckpointIO
from oodmix.checkpoints.interrupts import invoked_command
from oodmix.checkpoints.resume import check_same_settings
from oodmix.config.errors import ConfigError
from oodmix.data.loaders import TrainBatches
from oodmix.runs.job import train

BIN = Path(sys.executable).parent

# Long enough (about 3 s of training) for a signal to land inside fit; one optimiser step per
# Lightning batch so that the stop falls in the middle of an epoch.
RUN = ["trainer.max_epochs=30", "data.steps_per_chunk=1", "plots=false"]


def test_loader_resumes_after_the_chunks_already_trained():
    """state_dict says how many chunks of the epoch were trained; loading it makes the next
    iteration start right after them, with the same batches as an uninterrupted epoch."""
    torch.manual_seed(0)
    id_x, id_y, ood_x = torch.randn(1000, 2), torch.randint(0, 2, (1000,)), torch.randn(700, 2)
    done = {"n": 3}
    loader = TrainBatches(
        id_x, id_y, ood_x, 64, None, seed=1, epoch=lambda: 4, steps_per_chunk=2,
        chunks_done=lambda: done["n"],
    )  # fmt: skip
    full = list(loader)
    state = loader.state_dict()
    assert state == {"epoch": 4, "chunks_done": 3}
    loader.load_state_dict(state)
    resumed = list(loader)
    assert len(resumed) == len(full) - 3
    for a, b in zip(full[3:], resumed, strict=True):
        for x, y in zip(a, b, strict=True):
            assert torch.equal(x["id"][0], y["id"][0]) and torch.equal(x["ood"], y["ood"])
    assert len(list(loader)) == len(full)  # only the first iteration after loading skips


def test_a_saved_state_of_another_epoch_is_not_skipped():
    loader = TrainBatches(torch.zeros(10, 2), torch.zeros(10, dtype=torch.long), None, 2, None, 0,
                          epoch=lambda: 5)  # fmt: skip
    loader.load_state_dict({"epoch": 4, "chunks_done": 3})
    assert len(list(loader)) == 5


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    """A save that dies half-way leaves the previous checkpoint whole and no stray files."""
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": torch.tensor(1)}, path)
    before = path.read_bytes()

    def dies_half_way(obj, handle, *args, **kwargs):
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"step": torch.tensor(2)}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
    assert io.load_checkpoint(path)["step"].item() == 1


class _Payload:
    """Anything that is not a tensor or a plain value needs unsafe unpickling."""


def test_checkpoints_are_loaded_with_weights_only(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _Payload()}, path)
    with pytest.raises(Exception, match=r"[Ww]eights only load failed|weights_only"):
        AtomicCheckpointIO().load_checkpoint(path)


def test_resume_with_other_settings_is_refused(compose_config, tmp_path):
    train(compose_config("trainer.max_epochs=2", "plots=false"))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    config = torch.load(last, weights_only=True)["hyper_parameters"]["config"]
    check_same_settings(str(last), config)  # the same settings
    check_same_settings(str(last), {**config, "trainer": {**config["trainer"], "max_epochs": 9}})
    with pytest.raises(ConfigError) as error:
        check_same_settings(str(last), {**config, "beta": 0.5})
    assert str(error.value) == (
        f"ckpt_path={last} is not allowed with beta=0.5: the checkpoint was trained with "
        "beta=1; resume with the same settings (only trainer.max_epochs, trainer.max_steps, "
        "progress, quiet may change) or start a new run"
    )


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / "notes.ckpt"
    path.write_text("not a checkpoint")
    with pytest.raises(ConfigError, match=r"^ckpt_path=.*: cannot be read as an oodmix checkpoint"):
        check_same_settings(str(path), {})


# The run the refusals below resume: trained once by the console script's entry point, as a user
# would (in this process; the refusals too).
FIRST = ["trainer.max_epochs=1", "plots=false"]
TAIL = (
    "; resume with the same settings (only trainer.max_epochs, trainer.max_steps, progress, "
    "quiet may change) or start a new run"
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """<folder>/run: a run of FIRST, with its .hydra record and checkpoints/last.ckpt."""
    folder = tmp_path_factory.mktemp("trained")
    result = run_script("oodmix-train", [*FIRST, "hydra.run.dir=run"], cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder / "run"


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder below `folder`: (size, modification time in ns)."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


@pytest.mark.parametrize("other_exists", [False, True])
def test_resume_into_another_folder_is_refused_before_anything_is_written(trained, other_exists):
    """hydra.run.dir cannot move a resumed run: one line naming the run's own folder, exit 2,
    the other folder left as it was (absent, or empty) and the run untouched."""
    cwd = trained.parent
    other = cwd / f"other_{other_exists}"
    if other_exists:
        other.mkdir()
    before = _snapshot(trained)
    last = "run/checkpoints/last.ckpt"
    result = run_script(
        "oodmix-train", [*FIRST, f"ckpt_path={last}", f"hydra.run.dir={other.name}"], cwd=cwd
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"oodmix-train: error: hydra.run.dir={other.name} is not allowed with ckpt_path={last}: "
        "a resumed run goes on in its own folder, run, and hydra.run.dir cannot move it; leave "
        "hydra.run.dir out to resume there"
    ]
    assert (sorted(other.iterdir()) == []) if other_exists else not other.exists()
    assert _snapshot(trained) == before


def test_resume_with_a_changed_setting_is_refused_before_anything_is_written(trained):
    """beta=0.5 on resume: one line, exit 2; no config record, log or checkpoint is written."""
    before = _snapshot(trained)
    last = "run/checkpoints/last.ckpt"
    result = run_script(
        "oodmix-train", [*FIRST, f"ckpt_path={last}", "beta=0.5"], cwd=trained.parent
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"oodmix-train: error: ckpt_path={last} is not allowed with beta=0.5: the checkpoint "
        f"was trained with beta=1{TAIL}"
    ]
    assert _snapshot(trained) == before
    assert not (trained.parent / "outputs").exists()


@pytest.mark.parametrize("sweep", [["ckpt_path={last}", "seed=0,1"], ["ckpt_path=x.ckpt,{last}"]])
def test_a_multirun_cannot_resume_a_run(trained, sweep):
    """A sweep writes each job into its own folder, which a resumed run cannot move to."""
    last = "run/checkpoints/last.ckpt"
    (trained.parent / "x.ckpt").write_bytes(b"")
    args = ["-m", *FIRST, *(a.format(last=last) for a in sweep)]
    before = _snapshot(trained.parent)
    result = run_script("oodmix-train", [*args, "hydra.sweep.dir=sweep"], cwd=trained.parent)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"oodmix-train: error: ckpt_path={last} is not allowed in a multirun: a resumed run goes "
        "on in its own folder, run, and a sweep writes each job into a folder of its own; resume "
        "it with a single run (without -m)"
    ]
    assert _snapshot(trained.parent) == before


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        # callbacks.confidence_map.enabled interpolates plots
        (["plots=true"], "with plots=true: the checkpoint was trained with plots=false"),
        # data.mixup.alpha and loss.alpha come from mixup.alpha
        (
            ["mixup.alpha=0.5"],
            "with mixup.alpha=0.5: the checkpoint was trained with mixup.alpha=1",
        ),
        # a config group: its choice, read from the run's .hydra/hydra.yaml
        (["loss=ce_kl"], "with loss=ce_kl: the checkpoint was trained with loss=ce_kl_mixup"),
        (["logger=none"], "with logger=none: the checkpoint was trained with logger=csv"),
        (
            ["model.hidden=[8]"],
            "with model.hidden=[8]: the checkpoint was trained with model.hidden=[32, 32]",
        ),
    ],
)
def test_a_changed_setting_is_named_as_the_user_sets_it(compose_config, trained, overrides, named):
    last = trained / "checkpoints" / "last.ckpt"
    with pytest.raises(ConfigError) as error:
        check_same_settings(str(last), compose_config(*FIRST, *overrides))
    assert str(error.value) == f"ckpt_path={last} is not allowed {named}{TAIL}"


def test_folders_are_no_settings(compose_config, trained, tmp_path):
    """The run folder (output_dir, checkpoint and logger folders) differs from the recorded one
    when the run was moved: the settings are still the same."""
    moved = tmp_path / "moved"
    shutil.copytree(trained, moved)
    cfg = compose_config(*FIRST, "trainer.max_epochs=5", "progress=none")
    assert cfg.output_dir != str(trained)
    check_same_settings(str(moved / "checkpoints" / "last.ckpt"), cfg)


def test_a_checkpoint_outside_its_run_names_the_class_of_another_choice(
    compose_config, trained, tmp_path
):
    """Without the run's record of its choices, a changed loss is named by what it built."""
    loose = tmp_path / "last.ckpt"
    shutil.copy(trained / "checkpoints" / "last.ckpt", loose)
    with pytest.raises(ConfigError) as error:
        check_same_settings(str(loose), compose_config(*FIRST, "loss=ce_kl"))
    assert str(error.value) == (
        f"ckpt_path={loose} is not allowed with loss=ce_kl: the checkpoint was trained with "
        f"another loss (oodmix.losses.ConfidenceMixupLoss){TAIL}"
    )


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "oodmix-train"), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run(args: list[str], cwd: Path):
    """`oodmix-train <args>` in this process; only the run stopped by a signal is a real
    process (`_start`)."""
    return run_script("oodmix-train", args, cwd=cwd)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """metrics.json of the run that is never stopped."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    result = _run([*RUN, f"hydra.run.dir={folder / 'run'}"], cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder / "run" / "metrics.json"


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_killed_run_resumes_to_the_same_metrics(tmp_path, uninterrupted, signum):
    """A real process, a real signal mid-training, a real resume: the same metrics.json as a
    run that was never interrupted, in the same folder, with the earlier CSV rows kept."""

    run_dir = tmp_path / "interrupted"
    process = _start([*RUN, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    first_epoch = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not first_epoch.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # into the next epochs, between two optimiser steps
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)

    assert process.returncode == 128 + signum, stderr
    assert not (run_dir / "metrics.json").exists()
    saved = run_dir / "checkpoints" / "interrupted.ckpt"
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith(f"oodmix-train: stopped by {signal.Signals(signum).name} at epoch")
    started = invoked_command(str(BIN / "oodmix-train"))  # its path unless found on PATH
    assert lines[-1].endswith(f"resume with: {started} {' '.join(RUN)} ckpt_path={saved}")
    checkpoint = torch.load(saved, weights_only=True)
    steps_per_epoch = 16  # 2000 ID points / batch 128
    stopped_at = checkpoint["global_step"]
    assert 0 < stopped_at < 30 * steps_per_epoch
    rows_before = _csv_rows(run_dir / "csv" / "metrics.csv")

    resumed = _run([*RUN, f"ckpt_path={saved}"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert (run_dir / "metrics.json").read_bytes() == uninterrupted.read_bytes()
    # The rows logged before the stop are kept (new columns, e.g. test metrics, widen them).
    rows_after = _csv_rows(run_dir / "csv" / "metrics.csv")
    columns = list(rows_before[0])
    kept = [{c: row[c] for c in columns} for row in rows_after[: len(rows_before)]]
    assert kept == rows_before and len(rows_after) > len(rows_before)
    # The original record of the run is kept; the resumed one lies beside it.
    assert "ckpt_path" not in (run_dir / ".hydra" / "overrides.yaml").read_text()
    assert len(list((run_dir / ".hydra").glob("resumed_*/overrides.yaml"))) == 1
    assert json.loads((run_dir / "metrics.json").read_text())["seed"] == 0
