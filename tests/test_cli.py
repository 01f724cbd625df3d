"""The real console script, as a user runs it: single runs, a multirun, bad command lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
QUICK = ["trainer.max_epochs=2"]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_two_job_multirun_leaves_metrics_in_each_job(tmp_path: Path) -> None:
    """`oodmix-train -m loss=ce,ce_kl` runs both jobs; each folder has its config and metrics."""
    sweep = tmp_path / "sweep"
    result = run(
        [str(BIN / "oodmix-train"), "-m", "loss=ce,ce_kl", *QUICK, f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    losses = []
    for job in ("0", "1"):
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        assert 0.0 <= metrics["test/f1"] <= 1.0
        assert (sweep / job / ".hydra" / "config.yaml").is_file()
        losses.append(metrics["loss"])
    assert losses == ["ce", "ce_kl"]
    assert (sweep / "multirun.yaml").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("entry", [["oodmix-train"], ["-m", "oodmix"]])
def test_single_run_prints_the_table_and_writes_the_run_folder(tmp_path: Path, entry) -> None:
    """The console script and `python -m oodmix` both train, print results and write the run."""
    command = [str(BIN / entry[0])] if entry == ["oodmix-train"] else [sys.executable, *entry]
    run_dir = tmp_path / "run"
    result = run([*command, *QUICK, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["loss"] == "ce_kl_mixup" and metrics["seed"] == 0
    assert f"{metrics['test/f1']:.4f}" in result.stdout
    assert "F1 (ID positive)" in result.stdout and "ID accuracy" in result.stdout
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("beta=-1", "beta=-1 is not allowed: beta must be a finite number >= 0"),
        ("mixup.alpha=0", "mixup.alpha=0 is not allowed: mixup.alpha must be a finite number > 0"),
        ("delta=1.5", "delta=1.5 is not allowed: delta must be a number in [0, 1]"),
        ("loss=nope", "loss=nope is not allowed: loss must be one of ce, ce_kl, ce_kl_mixup"),
        ("model.hidden=[0]", "model.hidden=[0] is not allowed"),
    ],
)
def test_bad_command_line_gives_one_line_and_exit_2(tmp_path: Path, override, expected) -> None:
    """Each bad value: one line on stderr naming key, value and what is allowed; nothing written."""
    run_dir = tmp_path / "run"
    result = run([str(BIN / "oodmix-train"), override, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not run_dir.exists()
