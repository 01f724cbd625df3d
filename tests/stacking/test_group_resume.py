"""Stopping and continuing a group of jobs trained together: the group's checkpoint holds the
members' held checkpoints (tests/callbacks/test_member_checkpoints.py) and bookkeeping,
SIGTERM or Ctrl+C stops a sweep with a command that continues it, and the continued sweep
writes every job's metrics.json byte for byte as a sweep that was never stopped."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from console_scripts import Completed, run_script

from oodmix.checkpoints.interrupts import continue_command, invoked_command
from oodmix.config.errors import ConfigError
from oodmix.config.run_dirs import check_sweep_dir
from oodmix.failures import TrainingDiverged
from oodmix.stacking.checkpoint import (
    GroupState,
    group_state,
    restore_group_state,
)

BIN = Path(sys.executable).parent
#: How the printed commands start for the script these tests start (its path unless
#: `oodmix-train` on PATH is that script).
STARTED = invoked_command(str(BIN / "oodmix-train"))
K = 3


def _saved_and_loaded(state: dict, tmp_path: Path) -> dict:
    """Through a file, read as checkpoints are read (weights_only=True)."""
    path = tmp_path / "state.pt"
    torch.save(state, path)
    return torch.load(path, weights_only=True)


def test_group_state_round_trip(tmp_path: Path) -> None:
    """The failed members and the jobs' identity survive a checkpoint file."""
    module = SimpleNamespace(failed_members={1: TrainingDiverged(1, 20, {"ce": float("nan")})})
    state = _saved_and_loaded(group_state([4, 5, 6], [["seed=0"], ["seed=1"], ["seed=2"]], module),
                              tmp_path)  # fmt: skip
    assert state["jobs"] == [4, 5, 6] and state["overrides"][2] == ["seed=2"]
    fresh = SimpleNamespace(failed_members={})
    restore_group_state(state, fresh)
    error = fresh.failed_members[1]
    assert isinstance(error, TrainingDiverged) and str(error) == str(module.failed_members[1])
    assert (error.epoch, error.step) == (1, 20)


def test_a_checkpoint_of_other_jobs_is_refused() -> None:
    callback = GroupState([0, 1], [["seed=0"], ["seed=1"]])
    module = SimpleNamespace(failed_members={})
    checkpoint = {"oodmix_group": group_state([0, 2], [[], []], module)}
    with pytest.raises(RuntimeError, match=r"holds jobs \[0, 2\], not this group's \[0, 1\]"):
        callback.on_load_checkpoint(None, module, checkpoint)


def test_the_continue_command_keeps_the_arguments_and_names_the_folder() -> None:
    argv = ["-m", "seed=0,1", "model.hidden=[8,8]", "hydra.sweep.dir=old", "plots=false"]
    assert continue_command("outputs/sweep", argv) == (
        "oodmix-train -m seed=0,1 'model.hidden=[8,8]' plots=false hydra.sweep.dir=outputs/sweep "
        "hydra.launcher.resume=true"
    )


def test_only_resume_opens_a_sweep_folder_that_holds_files(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    check_sweep_dir(sweep, resume=True)  # nothing there: the sweep starts
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("{}")
    with pytest.raises(ConfigError, match=r"continue the sweep that stopped there with hydra\."):
        check_sweep_dir(sweep, resume=False)
    check_sweep_dir(sweep, resume=True)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"holds files but no sweep \(no multirun.yaml\)"):
        check_sweep_dir(other, resume=True)


# Two groups of two jobs (the objectives differ): the first finishes, the second is stopped.
# One optimiser step per Lightning batch and 20 epochs, so that a signal lands mid-epoch.
SWEEP = [
    "-m",
    "loss=ce_kl,ce_kl_mixup",
    "seed=0,1",
    "trainer.max_epochs=20",
    "data.steps_per_chunk=1",
    "plots=false",
]
JOBS = ["0", "1", "2", "3"]


def _run(args: list[str], cwd: Path) -> Completed:
    """`oodmix-train <args>` in this process; only the sweeps stopped by a signal are real
    processes (`_stop`)."""
    return run_script("oodmix-train", args, cwd=cwd)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sweep that is never stopped."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    result = _run([*SWEEP, "hydra.sweep.dir=sweep"], cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder / "sweep"


def _stop(
    cwd: Path, signum: int, args: list[str] = SWEEP, written: str = "2/checkpoints/group.ckpt"
) -> subprocess.CompletedProcess:
    """The sweep `args` into cwd/sweep, sent `signum` once sweep/<written> exists (by default:
    once the second group has written its checkpoint, the first group being finished)."""
    process = subprocess.Popen(
        [str(BIN / "oodmix-train"), *args, "hydra.sweep.dir=sweep"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    written_path = cwd / "sweep" / written
    deadline = time.monotonic() + 300
    while not written_path.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # into the next epochs, between two optimiser steps
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.name != "multirun.yaml"  # Hydra's sweeper writes it before the launcher refuses
    }


def _continue(command: str, cwd: Path) -> Completed:
    words = shlex.split(command)
    assert words[0] in ("oodmix-train", STARTED)
    return _run(words[1:], cwd=cwd)


def _same_metrics(sweep: Path, uninterrupted: Path) -> None:
    for job in JOBS:
        assert (sweep / job / "metrics.json").read_bytes() == (
            uninterrupted / job / "metrics.json"
        ).read_bytes(), job


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_sweep_continues_to_the_same_metrics(tmp_path, uninterrupted, signum):
    """A real sweep, a real signal in its second group, the printed command: every job's
    metrics.json as the sweep that was never stopped; the finished group is not trained again
    and the group's checkpoint is gone at the end."""
    stopped = _stop(tmp_path, signum)
    sweep = tmp_path / "sweep"
    assert stopped.returncode == 128 + signum, stopped.stderr
    saved = sweep / "2" / "checkpoints" / "group-interrupted.ckpt"
    last = stopped.stderr.strip().splitlines()[-1]
    name = signal.Signals(signum).name
    assert last.startswith(f"oodmix-train: stopped by {name} at epoch "), last
    command = (
        f"{STARTED} -m loss=ce_kl,ce_kl_mixup seed=0,1 trainer.max_epochs=20 "
        "data.steps_per_chunk=1 plots=false hydra.sweep.dir=sweep hydra.launcher.resume=true"
    )
    assert last.endswith(
        f"(jobs #2, #3 trained together, saved in {saved.relative_to(tmp_path)}); continue the "
        f"sweep with: {command}"
    ), last
    checkpoint = torch.load(saved, weights_only=True)
    assert checkpoint["oodmix_group"]["jobs"] == [2, 3]
    assert 0 < checkpoint["epoch"] < 19
    for job in ("2", "3"):
        assert json.loads((sweep / job / "checkpoints" / "group.json").read_text())["jobs"] == [
            2,
            3,
        ]
        assert not (sweep / job / "metrics.json").exists()
    finished = {job: (sweep / job / "metrics.json").stat().st_mtime_ns for job in ("0", "1")}
    started_with = (sweep / "multirun.yaml").read_bytes()

    if signum == signal.SIGTERM:  # a changed setting is refused, nothing written
        before = _snapshot(sweep)
        refused = _continue(command + " beta=0.5", cwd=tmp_path)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.strip().splitlines() == [
            "oodmix-train: error: hydra.launcher.resume=true is not allowed with beta=0.5: "
            "sweep/0/checkpoints/last.ckpt (job #0) was trained with beta=1; continue with the "
            "same settings (only trainer.max_epochs, trainer.max_steps, progress, quiet may "
            "change) or start a new sweep"
        ]
        assert _snapshot(sweep) == before
        assert (sweep / "multirun.yaml").read_bytes() == started_with

    resumed = _continue(command, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "jobs #2, #3: resumed from sweep/2/checkpoints/group-interrupted.ckpt" in resumed.stdout
    assert "jobs #0, #1: finished" in resumed.stdout
    _same_metrics(sweep, uninterrupted)
    assert {job: (sweep / job / "metrics.json").stat().st_mtime_ns for job in ("0", "1")} == (
        finished
    )
    assert not list(sweep.rglob("group*"))  # the group's checkpoints and records are gone
    assert "hydra.launcher.resume" not in (sweep / "2" / ".hydra" / "hydra.yaml").read_text()
    assert len(list((sweep / "2" / ".hydra").glob("resumed_*/overrides.yaml"))) == 1
    assert (sweep / "table.md").is_file()
    # The sweep's record is the command that started it; the continuing one's is beside it.
    assert (sweep / "multirun.yaml").read_bytes() == started_with
    (continuing,) = sweep.glob("multirun_resumed_*.yaml")
    assert "resume: true" in continuing.read_text()


@pytest.mark.slow
def test_a_killed_group_resumes_from_its_latest_checkpoint(tmp_path, uninterrupted):
    """SIGKILL: no interrupted checkpoint, the group goes on from checkpoints/group.ckpt."""
    killed = _stop(tmp_path, signal.SIGKILL)
    sweep = tmp_path / "sweep"
    assert killed.returncode == -signal.SIGKILL
    assert not (sweep / "2" / "checkpoints" / "group-interrupted.ckpt").exists()
    resumed = _run([*SWEEP, "hydra.sweep.dir=sweep", "hydra.launcher.resume=true"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "jobs #2, #3: resumed from sweep/2/checkpoints/group.ckpt" in resumed.stdout
    _same_metrics(sweep, uninterrupted)


@pytest.mark.slow
def test_a_job_stopped_alone_prints_how_to_continue_the_sweep(tmp_path):
    """A sweep whose jobs differ in objective runs each alone (a group of one is a solo run).
    Stopped while its second job trains, it prints the command that continues the sweep, as a
    stopped group does, not the solo run's ckpt_path= line (which would train that job alone
    and leave the rest of the sweep undone); that command finishes the sweep."""
    alone = ["-m", "loss=ce_kl,ce_kl_mixup", "trainer.max_epochs=20", "data.steps_per_chunk=1"]
    stopped = _stop(tmp_path, signal.SIGTERM, [*alone, "plots=false"], "1/checkpoints/last.ckpt")
    stderr = stopped.stderr
    assert stopped.returncode == 128 + signal.SIGTERM, stderr
    last = stderr.strip().splitlines()[-1]
    command = (
        f"{STARTED} -m loss=ce_kl,ce_kl_mixup trainer.max_epochs=20 data.steps_per_chunk=1 "
        "plots=false hydra.sweep.dir=sweep hydra.launcher.resume=true"
    )
    assert last.startswith("oodmix-train: stopped by SIGTERM at epoch "), last
    assert last.endswith(
        "(job #1 trained alone, saved in sweep/1/checkpoints/interrupted.ckpt); continue the "
        f"sweep with: {command}"
    ), last
    assert (tmp_path / "sweep" / "0" / "metrics.json").is_file()
    assert not (tmp_path / "sweep" / "1" / "metrics.json").exists()
    resumed = _continue(command, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "sweep" / "1" / "metrics.json").is_file()
    assert (tmp_path / "sweep" / "table.md").is_file()


def test_the_printed_command_starts_as_this_process_was_started(tmp_path, monkeypatch) -> None:
    """A command that goes on (resume, continue) starts with `oodmix-train` only when that
    name finds this very script; else with the script's path, or `python -m oodmix`."""
    from oodmix.checkpoints import interrupts

    script = tmp_path / "venv" / "bin" / "oodmix-train"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    monkeypatch.setattr(interrupts.shutil, "which", lambda name: None)  # not on PATH
    assert interrupts.invoked_command(str(script)) == str(script)
    assert interrupts.invoked_command("oodmix-train") == "oodmix-train"
    monkeypatch.setattr(interrupts.shutil, "which", lambda name: str(script))  # on PATH
    assert interrupts.invoked_command(str(script)) == "oodmix-train"
    main = str(Path(interrupts.__file__).parents[1] / "__main__.py")
    assert interrupts.invoked_command(main) == f"{sys.executable} -m oodmix"
    monkeypatch.setattr(interrupts.sys, "argv", [main, "-m", "seed=0,1"])
    assert continue_command("s", None).startswith(f"{sys.executable} -m oodmix -m seed=0,1 ")
