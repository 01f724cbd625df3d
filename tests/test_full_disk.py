"""A full disk ends a run with one line naming the file and how to go on, exit code 1, and no
file half-written; a fault-injecting writer stands in for the full disk (no root needed)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from oodmix.files import no_space_left, write_text_atomic
from oodmix.runs.job import run_job_task


class FullWhen:
    """os.fsync that raises ENOSPC (what a full device answers) once `full()` is true."""

    def __init__(self, full) -> None:
        self.full = full
        self.fsync = os.fsync  # the real one (the test patches os.fsync itself)

    def __call__(self, fd: int) -> None:
        if self.full():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.fsync(fd)


def test_the_full_device_is_found_behind_other_errors() -> None:
    full = OSError(errno.ENOSPC, "No space left on device")
    try:
        try:
            raise full
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos") from None
    except RuntimeError as wrapped:
        assert no_space_left(wrapped) is full  # its context, as torch's writer raises it
    assert no_space_left(OSError(errno.EDQUOT, "Disk quota exceeded")) is not None
    assert no_space_left(OSError(errno.EACCES, "Permission denied")) is None
    assert no_space_left(ValueError("x")) is None


def test_an_atomic_write_on_a_full_device_names_its_file_and_leaves_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "metrics.json"
    path.write_text("old")
    monkeypatch.setattr("oodmix.files.os.fsync", FullWhen(lambda: True))
    with pytest.raises(OSError) as raised:
        write_text_atomic(path, "new")
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(path)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == [
        "metrics.json"]  # fmt: skip


@pytest.mark.parametrize("after_first_checkpoint", [False, True], ids=["at once", "later"])
def test_a_run_on_a_full_disk_ends_with_one_line(
    compose_config, capsys, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    after_first_checkpoint: bool,
) -> None:  # fmt: skip
    """Checkpoints are written at the first epoch and when training ends: a disk full from the
    start leaves nothing to resume from, one full once last.ckpt is written leaves it."""
    cfg = compose_config("logger=none")
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    full = FullWhen(lambda: not after_first_checkpoint or last.exists())
    monkeypatch.setattr("oodmix.files.os.fsync", full)
    go_on = "resume with: oodmix-train " if after_first_checkpoint else "run it again"
    with pytest.raises(SystemExit) as exited:
        run_job_task(cfg)
    assert exited.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    (line,) = lines
    assert line.startswith("oodmix-train: error: no space left on the device writing ")
    assert "/checkpoints/" in line and ".ckpt; free space there, then " + go_on in line
    if after_first_checkpoint:
        assert line.endswith(f"ckpt_path={last}")
    # Nothing half-written: no temporary file left, no metrics.
    run = tmp_path / "run"
    assert not list(run.rglob(".*.ckpt")) and not (run / "metrics.json").exists()


@pytest.mark.slow
def test_a_stacked_sweep_stopped_by_a_full_disk_continues_to_the_same_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills up once the group's first checkpoint is written: one line with the
    command that continues the sweep, exit 1. Run once there is space again, that command
    ends with every job's metrics.json byte for byte an uninterrupted sweep's."""
    import shlex

    from console_scripts import run_script

    sweep = ["-m", "seed=0,1", "trainer.max_epochs=3", "plots=false", "logger=none"]
    whole = run_script("oodmix-train", [*sweep, "hydra.sweep.dir=whole"], cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr

    group_checkpoint = tmp_path / "stopped" / "0" / "checkpoints" / "group.ckpt"
    with monkeypatch.context() as full_disk:
        full_disk.setattr("oodmix.files.os.fsync", FullWhen(group_checkpoint.exists))
        stopped = run_script("oodmix-train", [*sweep, "hydra.sweep.dir=stopped"], cwd=tmp_path)
    assert stopped.returncode == 1
    (line,) = stopped.stderr.strip().splitlines()[-1:]
    assert line.startswith("oodmix-train: error: no space left on the device writing ")
    assert "; free space there, then continue the sweep with: oodmix-train " in line
    command = line.split("continue the sweep with: ", 1)[1]
    assert not (tmp_path / "stopped" / "0" / "metrics.json").exists()

    continued = run_script("oodmix-train", shlex.split(command)[1:], cwd=tmp_path)
    assert continued.returncode == 0, continued.stderr
    for job in ("0", "1"):
        ours = (tmp_path / "stopped" / job / "metrics.json").read_bytes()
        assert ours == (tmp_path / "whole" / job / "metrics.json").read_bytes(), job


def test_a_job_of_a_basic_sweep_on_a_full_disk_stops_the_sweep_in_one_line(
    compose_config, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a failure of that job (its failure.json could not be written either, and no later
    job could write): the sweep stops with one line, exit 1."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict, read_write

    cfg = compose_config("logger=none", "hydra/launcher=basic", run="sweep/0")
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.mode = RunMode.MULTIRUN
    HydraConfig.instance().set_config(cfg)
    monkeypatch.setattr("oodmix.files.os.fsync", FullWhen(lambda: True))
    with pytest.raises(SystemExit) as exited:
        run_job_task(cfg)
    assert exited.value.code == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("oodmix-train: error: no space left on the device writing ")
    assert line.endswith("; free space there, then run the sweep again")
