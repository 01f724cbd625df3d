"""One writer per run or sweep folder: a command into a folder that another process is writing
into is refused in one line with nothing written; a lock dies with its process."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from console_scripts import run_script

from oodmix.config import run_dirs
from oodmix.config.errors import ConfigError


@contextmanager
def held_elsewhere(folder: Path) -> Iterator[None]:
    """`folder` locked through a descriptor of its own, as another process would hold it."""
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(folder, os.O_RDONLY)
    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        yield
    finally:
        os.close(descriptor)


def test_a_held_folder_is_refused_and_a_free_one_locked(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    with held_elsewhere(folder), pytest.raises(ConfigError) as refused:
        run_dirs.lock_folder(folder, "hydra.run.dir")
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"hydra.run.dir={folder} is not allowed")
    assert "another oodmix-train process is writing into that folder now" in message
    run_dirs.lock_folder(folder, "hydra.run.dir")  # released: this process takes it
    try:
        run_dirs.lock_folder(folder, "hydra.run.dir")  # held by this process already: fine
        with pytest.raises(BlockingIOError), held_elsewhere(folder):  # nobody else gets it
            pass
    finally:
        run_dirs.unlock_folder(folder)
    assert list(folder.iterdir()) == []  # the lock leaves no file


@pytest.mark.parametrize(
    ("args", "key"),
    [(["trainer.max_epochs=1", "hydra.run.dir=busy"], "hydra.run.dir"),
     (["-m", "seed=0,1", "hydra.sweep.dir=busy"], "hydra.sweep.dir")],
    ids=["run", "sweep"],
)  # fmt: skip
def test_a_second_command_into_a_busy_folder_is_refused_with_nothing_written(
    tmp_path: Path, args: list[str], key: str
) -> None:
    busy = tmp_path / "busy"
    with held_elsewhere(busy):
        result = run_script("oodmix-train", args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"oodmix-train: error: {key}=busy is not allowed: another oodmix-train process is "
        "writing into that folder now; wait for it to end, or choose another folder"
    ]
    assert list(busy.iterdir()) == []


@pytest.mark.slow
def test_the_lock_of_a_process_that_ended_never_blocks(tmp_path: Path) -> None:
    """A process that took the lock and was killed (no clean-up of its own) leaves nothing
    that blocks the next command."""
    folder = tmp_path / "run"
    folder.mkdir()
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys, time; d = os.open(sys.argv[1], os.O_RDONLY); "
         "fcntl.flock(d, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)", str(folder)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout.readline().strip() == "held"
    with pytest.raises(ConfigError):
        run_dirs.lock_folder(folder, "hydra.run.dir")
    child.kill()
    child.wait()
    run_dirs.lock_folder(folder, "hydra.run.dir")
    run_dirs.unlock_folder(folder)


def test_a_filesystem_without_locks_goes_on_without_one(tmp_path: Path, monkeypatch) -> None:
    def unsupported(descriptor: int, operation: int) -> None:
        raise OSError(95, "Operation not supported")

    monkeypatch.setattr(fcntl, "flock", unsupported)
    run_dirs.lock_folder(tmp_path / "run", "hydra.run.dir")  # no error, no lock held
    assert (tmp_path / "run").resolve() not in run_dirs._LOCKED
