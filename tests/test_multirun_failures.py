"""A failing job of a multirun: recorded in its folder, the sweep goes on, the exit code is 1.

In-process tests call Hydra's task function with a composed config (mode RUN or MULTIRUN);
the slow test runs a real three-job sweep through the console script.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from console_scripts import run_script
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import open_dict, read_write

import oodmix.runs.job as job_module
import oodmix.train as train_module


def in_mode(cfg, mode: RunMode):
    """The composed config, registered with Hydra as a job of a run or of a multirun."""
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.mode = mode
    HydraConfig.instance().set_config(cfg)
    return cfg


def crash(cfg):
    raise RuntimeError("deep in training\nsecond line")


def test_multirun_job_with_a_config_error_records_it_and_returns_none(
    compose_config, tmp_path: Path, capsys
) -> None:
    """beta=-1 (refused when the run is built): no sys.exit in a sweep, failure.json with the
    ConfigError's one-line message and the job's overrides, one line on stderr."""
    cfg = in_mode(compose_config("beta=-1"), RunMode.MULTIRUN)
    assert train_module._run_job(cfg) is None
    record = json.loads((tmp_path / "run" / "failure.json").read_text())
    assert record["type"] == "ConfigError"
    assert "beta=-1 is not allowed" in record["message"]  # the rule's own wording
    assert record["overrides"] == ["trainer.max_epochs=3", "plots=false", "beta=-1"]
    assert record["job"] == 0
    assert "Traceback" in record["traceback"]
    assert not (tmp_path / "run" / "metrics.json").exists()
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith("oodmix-train: job 0 failed: ConfigError: ")
    assert "beta=-1 is not allowed" in err[0]
    assert err[0].endswith(f"(see {tmp_path / 'run' / 'failure.json'})")


def test_multirun_job_with_any_exception_records_the_traceback(
    compose_config, tmp_path: Path, monkeypatch, capsys
) -> None:
    """A RuntimeError deep in training: failure.json with type, one-line message and the full
    traceback; the console shows one line, no traceback."""
    monkeypatch.setattr(job_module, "train", crash)
    cfg = in_mode(compose_config(), RunMode.MULTIRUN)
    assert train_module._run_job(cfg) is None
    record = json.loads((tmp_path / "run" / "failure.json").read_text())
    assert record["type"] == "RuntimeError"
    assert record["message"] == "deep in training second line"
    assert "in crash" in record["traceback"]
    assert record["traceback"].endswith("RuntimeError: deep in training\nsecond line\n")
    err = capsys.readouterr().err
    assert err.startswith("oodmix-train: job 0 failed: RuntimeError: deep in training second line")
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_multirun_job_that_succeeds_clears_an_earlier_failure(
    compose_config, tmp_path: Path, monkeypatch
) -> None:
    """A failure.json left by an earlier sweep into the same folder does not outlive a rerun."""
    monkeypatch.setattr(job_module, "train_and_print", lambda cfg: 0.75)
    cfg = in_mode(compose_config(), RunMode.MULTIRUN)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "failure.json").write_text("{}")
    assert train_module._run_job(cfg) == 0.75
    assert not (tmp_path / "run" / "failure.json").exists()


def test_keyboard_interrupt_stops_a_multirun(compose_config, tmp_path: Path, monkeypatch) -> None:
    """Ctrl-C is not a job failure: it propagates (the sweep stops) and nothing is recorded."""

    def interrupted(cfg):
        raise KeyboardInterrupt

    monkeypatch.setattr(job_module, "train", interrupted)
    cfg = in_mode(compose_config(), RunMode.MULTIRUN)
    with pytest.raises(KeyboardInterrupt):
        train_module._run_job(cfg)
    assert not (tmp_path / "run" / "failure.json").exists()


def test_single_run_keeps_one_line_and_exit_2_for_a_config_error(
    compose_config, tmp_path: Path, capsys
) -> None:
    cfg = in_mode(compose_config("beta=-1"), RunMode.RUN)
    with pytest.raises(SystemExit) as exit_info:
        train_module._run_job(cfg)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("oodmix-train: error: ") and "beta=-1 is not allowed" in err
    assert not (tmp_path / "run" / "failure.json").exists()


def test_single_run_lets_other_exceptions_propagate(
    compose_config, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(job_module, "train", crash)
    cfg = in_mode(compose_config(), RunMode.RUN)
    with pytest.raises(RuntimeError, match="deep in training"):
        train_module._run_job(cfg)
    assert not (tmp_path / "run" / "failure.json").exists()


# Small data: the sweep takes seconds. data.far_margin=20 asks for "far OOD" test points more
# than 20 from the disks, which the box [-10, 10]^2 cannot hold: the command line is fine, the
# datamodule fails when it samples its data inside trainer.fit (a ValueError, not a ConfigError).
SMALL = [
    "trainer.max_epochs=1",
    "plots=false",
    "data.n_ood_train=200",
    "data.n_val=200",
    "data.n_test=200",
    "data.n_shift=100",
]


@pytest.mark.slow  # trains two runs
def test_sweep_with_a_failing_middle_job(tmp_path: Path) -> None:
    """Jobs 0 and 2 finish with metrics; job 1 records its failure; the report lists it; the
    process prints one line per failure and a summary, and exits 1."""
    sweep = tmp_path / "sweep"
    result = run_script(
        "oodmix-train",
        ["-m", "data.far_margin=2,20,4", *SMALL, f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    for job in ("0", "2"):
        assert json.loads((sweep / job / "metrics.json").read_text())["test/f1"] >= 0
        assert not (sweep / job / "failure.json").exists()
    assert not (sweep / "1" / "metrics.json").exists()
    record = json.loads((sweep / "1" / "failure.json").read_text())
    assert record["type"] == "ValueError"
    assert "cannot sample points there" in record["message"]
    assert record["overrides"][0] == "data.far_margin=20"
    assert "sample_box_where" in record["traceback"]

    reason = f"ValueError: {record['message']}"
    assert "Traceback" not in result.stderr
    ours = [line for line in result.stderr.splitlines() if line.startswith("oodmix-train:")]
    assert ours == [
        "oodmix-train: job 1 failed: " + reason + " (see sweep/1/failure.json)",
        f"oodmix-train: 1 of 3 jobs failed: see {sweep / 'table.md'}",
    ]
    table = (sweep / "table.md").read_text()
    assert "3 jobs, 2 finished, 1 failed." in table
    assert any(
        line.startswith("- job 1 (data.far_margin=20 ") and line.endswith(f"): {reason}")
        for line in table.splitlines()
    )
