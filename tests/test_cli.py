"""oodmix-train as a user runs it: single runs, multiruns, bad command lines.

The commands run the console script's entry point in this process (tests/console_scripts.py);
a few slow tests start the real scripts (oodmix-train, oodmix-report, and the joblib
launcher's worker processes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from console_scripts import run_module, run_script

BIN = Path(sys.executable).parent
QUICK = ["trainer.max_epochs=2"]


def run(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


def check_single_run(result, run_dir: Path) -> None:
    """A default run of QUICK: exit 0, the results table printed, the run folder written."""
    assert result.returncode == 0, result.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["loss"] == "ce_kl_mixup" and metrics["seed"] == 0
    assert f"{metrics['test/f1']:.4f}" in result.stdout
    assert "F1 (ID positive)" in result.stdout and "ID accuracy" in result.stdout
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow  # starts the real console script: its wiring
def test_the_console_script_prints_the_table_and_writes_the_run_folder(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = run([str(BIN / "oodmix-train"), *QUICK, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    check_single_run(result, run_dir)


def test_python_dash_m_oodmix_is_the_console_script(tmp_path: Path) -> None:
    """`python -m oodmix` (its __main__ module, run here as __main__) trains the same run."""
    run_dir = tmp_path / "run"
    result = run_module("oodmix", [*QUICK, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    check_single_run(result, run_dir)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("beta=-1", "beta=-1 is not allowed: beta must be a finite number >= 0"),
        ("mixup.alpha=0", "mixup.alpha=0 is not allowed: mixup.alpha must be a finite number > 0"),
        (
            "delta=1.5",
            "delta=1.5 is not allowed: the scores are probabilities (max softmax), so delta must "
            "be a number strictly between 0 and 1",
        ),
        ("loss=nope", "loss=nope is not allowed: loss must be one of ce, ce_kl, ce_kl_mixup"),
        ("model.hidden=[0]", "model.hidden=[0] is not allowed"),
        # Unknown keys, wrong types, cross-key checks and Hydra's own errors: also one line.
        ("bta=1", "bta=1 is not allowed: there is no key 'bta' in the config (did you mean beta?)"),
        ("data.radius=3", "data.radius=3 is not allowed: there is no key 'radius' in data"),
        ("data.n_val=abc", "data.n_val='abc' is not allowed: data.n_val must be an integer >= 2"),
        (
            "data.disks.0.radius=0",
            "data.disks[0].radius=0 is not allowed: data.disks[0].radius must be a finite "
            "number > 0",
        ),
        ("data.box=[-3,3]", "data.box=[-3, 3] is not allowed: the box must contain the ID support"),
        ("loss.beta=${nope}", "loss.beta: Interpolation key 'nope' not found"),
        ("beta=[1,", "no viable alternative at input '[1,'"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0 is not allowed: trainer.max_epochs must"),
        ("data=npz", "data.train, data.val, data.test are missing"),
    ],
)
def test_bad_command_line_gives_one_line_and_exit_2(tmp_path: Path, override, expected) -> None:
    """Each bad value: one line on stderr naming key, value and what is allowed; nothing written."""
    run_dir = tmp_path / "run"
    result = run_script("oodmix-train", [override, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not run_dir.exists()


def test_debug_switch_shows_the_traceback(tmp_path: Path) -> None:
    """OODMIX_DEBUG=1: the same refusal, exit 2, with the traceback that led to it."""
    run_dir = tmp_path / "run"
    result = run_script(
        "oodmix-train",
        ["data.box=[-3,3]", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        env={**os.environ, "OODMIX_DEBUG": "1"},
    )
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "must contain the ID support" in result.stderr
    assert not run_dir.exists()


def test_an_occupied_run_folder_is_never_written_over(tmp_path: Path) -> None:
    """hydra.run.dir pointing at an earlier run: refused in one line, its files untouched."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text('{"test/f1": 0.5}')
    result = run_script("oodmix-train", [f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"oodmix-train: error: hydra.run.dir={run_dir} is not allowed: the folder already holds "
        "files and oodmix never writes over an earlier run; choose a new folder (or resume that "
        "run with ckpt_path=<its checkpoints/last.ckpt>)"
    ]
    assert sorted(p.name for p in run_dir.iterdir()) == ["metrics.json"]
    assert (run_dir / "metrics.json").read_text() == '{"test/f1": 0.5}'


def _npz_with_a_nan(folder: Path) -> list[str]:
    """data=npz overrides whose training file has a NaN (refused when the datamodule is built)."""
    import numpy as np

    rng = np.random.default_rng(0)
    x_id, x_ood = rng.normal(size=(40, 2)), rng.normal(size=(30, 2))
    x_id[5, 1] = np.nan
    folder.mkdir()
    np.savez(folder / "train.npz", x_id=x_id, y_id=np.arange(40) % 2, x_ood=x_ood)
    for split in ("val", "test"):
        np.savez(folder / f"{split}.npz", x=rng.normal(size=(20, 2)), is_id=np.arange(20) % 2)
    return ["data=npz", *(f"data.{s}={folder / s}.npz" for s in ("train", "val", "test"))]


def _no_gpu_here() -> bool:
    import torch

    return not (torch.cuda.is_available() or torch.backends.mps.is_available())


# Refusals that need the run's classes (the checkpoint callbacks, the datamodule, torch's GPUs),
# made before Hydra makes the run folder.
BUILT_REFUSALS = {
    "tested weights": (
        lambda tmp: ["callbacks.model_checkpoint=null"],
        "test_ckpt=best is not allowed here: no checkpoint callback monitors a validation metric",
    ),
    "a class's rule": (
        lambda tmp: ["data=moons", "data.classes.0.region.r_in=2"],
        "data.classes[0].region.r_in=2 is not allowed: it must be below r_out=1.2",
    ),
    "an epoch metric in a sweep": (
        lambda tmp: ["-m", "seed=0,1", "callbacks.detection.epoch_metrics=[ece]"],
        "callbacks.detection.epoch_metrics=ece is not allowed: epoch_metrics must be a list of "
        "acc, ",
    ),
    "a callback's argument in a sweep": (
        lambda tmp: ["-m", "callbacks.model_checkpoint.mode=foo", "seed=0,1"],
        "callbacks.model_checkpoint is not allowed: `mode` can be min, max but got foo",
    ),
    "a swept value out of range": (
        lambda tmp: ["-m", "beta=0.1,-2", "seed=0,1"],
        "beta=-2 is not allowed: beta must be a finite number >= 0",
    ),
    "a swept value of the wrong type": (
        lambda tmp: ["-m", "seed=0,1", "data.n_val=100,abc"],
        "data.n_val='abc' is not allowed: data.n_val must be an integer >= 2",
    ),
    "an Optuna search's fixed value": (
        lambda tmp: ["hparams_search=optuna", "callbacks.model_checkpoint.mode=foo"],
        "callbacks.model_checkpoint is not allowed: `mode` can be min, max but got foo",
    ),
    "an Optuna search's choice": (
        lambda tmp: ["hparams_search=optuna", "hydra.sweeper.params.beta='choice(0.1,-1)'"],
        "beta=-1 is not allowed: beta must be a finite number >= 0",
    ),
    "a constructor": (_npz_with_a_nan, "'x_id' has NaN or inf in 1 rows (first: row 5)"),
    "no GPU": (
        lambda tmp: ["trainer=gpu"] if _no_gpu_here() else pytest.skip("a GPU is present"),
        "trainer.accelerator=gpu is not allowed here: no GPU is visible to torch",
    ),
}


@pytest.mark.parametrize("case", list(BUILT_REFUSALS))
def test_refusals_of_what_a_run_builds_leave_no_folder(tmp_path: Path, case) -> None:
    """One line, exit 2, and no run folder: the default one (outputs/runs/<date>/<time>, claimed
    while Hydra composed the config) is released, and nothing else is made."""
    make, expected = BUILT_REFUSALS[case]
    args = make(tmp_path / "inputs")
    before = sorted(tmp_path.iterdir())
    result = run_script("oodmix-train", args, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert sorted(tmp_path.iterdir()) == before


def read_csv(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path) as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow  # trains four runs, starts oodmix-report
def test_a_multirun_writes_every_job_then_oodmix_report(tmp_path: Path) -> None:
    """A 2 x 2 sweep runs every job (each folder with its config and metrics, in the sweep's
    order), reports itself at the end; oodmix-report rebuilds the same table."""
    import statistics

    sweep = tmp_path / "sweep"
    result = run_script(
        "oodmix-train",
        ["-m", "loss=ce,ce_kl", "seed=0,1", *QUICK, f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    jobs = []
    for job in ("0", "1", "2", "3"):
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        assert 0.0 <= metrics["test/f1"] <= 1.0
        assert (sweep / job / ".hydra" / "config.yaml").is_file()
        jobs.append((metrics["loss"], metrics["seed"]))
    assert jobs == [("ce", 0), ("ce", 1), ("ce_kl", 0), ("ce_kl", 1)]
    assert (sweep / "multirun.yaml").is_file()
    assert (sweep / "table.md").is_file()  # written by the multirun's own end-of-sweep report
    for name in ("table.md", "table.csv"):
        (sweep / name).unlink()
    report = run([str(BIN / "oodmix-report"), str(sweep)], cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    rows = {row["loss"]: row for row in read_csv(sweep / "table.csv")}
    assert set(rows) == {"ce", "ce_kl"}
    for loss, row in rows.items():
        f1 = [
            json.loads((sweep / job / "metrics.json").read_text())["test/f1"]
            for job in ("0", "1", "2", "3")
            if json.loads((sweep / job / "metrics.json").read_text())["loss"] == loss
        ]
        assert row["n_seeds"] == "2" and row["n_failed"] == "0"
        assert float(row["test/f1_mean"]) == pytest.approx(statistics.fmean(f1))
        assert float(row["test/f1_std"]) == pytest.approx(statistics.stdev(f1))
    assert "| loss |" in report.stdout
    for figure in ("confidence_maps.png", "f1_vs_delta.png"):
        assert (sweep / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (sweep / "0" / "confidence_map.png").is_file()  # each 2-D run draws its own map


@pytest.mark.slow  # trains six runs
def test_experiment_paper_writes_table_and_figure1(tmp_path: Path) -> None:
    """experiment=paper is a multirun by itself and ends with the paper comparison and Figure 1."""
    sweep = tmp_path / "paper"
    result = run_script(
        "oodmix-train",
        ["experiment=paper", "seed=0,1", "trainer.max_epochs=1", f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    jobs = sorted(p.name for p in sweep.iterdir() if (p / "metrics.json").is_file())
    assert len(jobs) == 6  # 3 objectives x 2 seeds
    table = (sweep / "table.md").read_text()
    assert "Against the paper's Table 1" in table and "0.531" in table and "+10.6%" in table
    assert "Our choices where the paper is silent" in table
    assert (sweep / "figure1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # trains three runs
def test_optuna_search_maximises_validation_f1(tmp_path: Path) -> None:
    """hparams_search=optuna: the best value Optuna reports is the best val/f1 of the trials."""
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    from omegaconf import OmegaConf

    sweep = tmp_path / "optuna"
    result = run_script(
        "oodmix-train",
        ["hparams_search=optuna", "hydra.sweeper.n_trials=3", "trainer.max_epochs=1",
         f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    trials = [json.loads(p.read_text()) for p in sweep.glob("*/metrics.json")]
    assert len(trials) == 3
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    assert best.best_value == pytest.approx(max(t["val/f1"] for t in trials))
    best_trial = max(trials, key=lambda t: t["val/f1"])
    assert f"test/f1 {best_trial['test/f1']:.3f}" in (sweep / "table.md").read_text()


@pytest.mark.slow  # the launcher starts two worker processes
def test_joblib_launcher_runs_jobs_in_parallel_processes(tmp_path: Path) -> None:
    """hydra/launcher=joblib: the documented way to run local sweeps in parallel."""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    sweep = tmp_path / "joblib"
    result = run_script(
        "oodmix-train",
        ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1",
         "trainer.max_epochs=1", "plots=false", f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    seeds = sorted(json.loads(p.read_text())["seed"] for p in sweep.glob("*/metrics.json"))
    assert seeds == [0, 1]
