"""Failed jobs of a multirun: failure.json written and read, the report and the exit summary."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from sweep_factory import make_job

from oodmix.config.errors import MESSAGE_LIMIT, one_line
from oodmix.reporting.hydra_callback import SweepOutcome, WriteSweepReport, take_sweep_outcome
from oodmix.reporting.jobs import failure_reason, load_job, load_jobs, write_failure
from oodmix.reporting.report import build_report

FAILURE = {
    "job": 1,
    "overrides": ["data.far_margin=20"],
    "time": "2026-01-01T12:00:00+00:00",
    "type": "ValueError",
    "message": "cannot sample points there",
    "traceback": "Traceback (most recent call last):\n...\nValueError: cannot sample there\n",
}


def raised(error: Exception) -> Exception:
    """`error` with a traceback, as a job's `except` clause sees it."""
    try:
        raise error
    except Exception as caught:
        return caught


# --- write_failure ---------------------------------------------------------------------------


def test_write_failure_records_type_message_overrides_time_and_traceback(tmp_path: Path) -> None:
    """failure.json holds what the brief asks for, and the return value is what was written."""
    record = write_failure(tmp_path, raised(RuntimeError("boom")), 3, ["seed=1", "beta=2"])
    assert json.loads((tmp_path / "failure.json").read_text()) == record
    assert record["job"] == 3
    assert record["overrides"] == ["seed=1", "beta=2"]
    assert record["type"] == "RuntimeError"
    assert record["message"] == "boom"
    assert datetime.fromisoformat(record["time"]).tzinfo is not None
    assert record["traceback"].startswith("Traceback (most recent call last):")
    assert "in raised" in record["traceback"]
    assert record["traceback"].endswith("RuntimeError: boom\n")
    assert [p.name for p in tmp_path.iterdir()] == ["failure.json"]  # no temporary file left


def test_one_line_collapses_lines_and_cuts_long_messages() -> None:
    """Hydra's and torch's messages span lines: one line, whitespace collapsed, at most
    MESSAGE_LIMIT characters, the cut marked with an ellipsis."""
    assert one_line(ValueError("Error in call:\n  ValueError('x')\nfull_key: data")) == (
        "Error in call: ValueError('x') full_key: data"
    )
    long = one_line(RuntimeError("x" * (2 * MESSAGE_LIMIT)))
    assert len(long) == MESSAGE_LIMIT and long.endswith("…")
    assert one_line(KeyError("val/f1")) == "'val/f1'"


def test_failure_reason_is_type_and_message() -> None:
    """'Type: message'; the type alone when the error had no message."""
    assert failure_reason(FAILURE) == "ValueError: cannot sample points there"
    assert failure_reason({"type": "AssertionError", "message": ""}) == "AssertionError"


# --- load_job --------------------------------------------------------------------------------


def test_load_job_reads_the_reason_from_failure_json(tmp_path: Path) -> None:
    """A job with failure.json is failed, with the recorded type and message as its reason."""
    job = load_job(make_job(tmp_path, 1, ["data.far_margin=20"], failure=FAILURE))
    assert not job.ok and job.metrics is None
    assert job.failure == "ValueError: cannot sample points there"
    assert job.overrides == {"data.far_margin": "20"}


def test_failure_json_wins_over_a_metrics_json(tmp_path: Path) -> None:
    """Both files: the job failed (after writing its metrics, or over an earlier run's)."""
    job = load_job(make_job(tmp_path, 0, ["seed=0"], {"test/f1": 0.5}, failure=FAILURE))
    assert not job.ok
    assert job.failure == "ValueError: cannot sample points there"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{broken", "failed; its failure.json cannot be read"),
        ("[1, 2]", "failed; its failure.json does not hold a JSON object"),
        ("{}", "error"),  # a record without type or message still counts as a failure
    ],
)
def test_an_unreadable_failure_json_still_marks_the_job_failed(
    tmp_path: Path, text: str, expected: str
) -> None:
    job_dir = make_job(tmp_path, 0, ["seed=0"])
    (job_dir / "failure.json").write_text(text)
    job = load_job(job_dir)
    assert not job.ok
    assert job.failure.startswith(expected)


def test_jobs_finished_failed_and_unfinished_side_by_side(tmp_path: Path) -> None:
    """metrics.json: ok; failure.json: its reason; neither: 'did not finish'."""
    make_job(tmp_path, 0, ["seed=0"], {"test/f1": 0.5})
    make_job(tmp_path, 1, ["seed=1"], failure=FAILURE)
    make_job(tmp_path, 2, ["seed=2"])
    assert [(job.ok, job.failure) for job in load_jobs(tmp_path)] == [
        (True, None),
        (False, "ValueError: cannot sample points there"),
        (False, "did not finish (no metrics.json, no failure.json)"),
    ]


# --- report ----------------------------------------------------------------------------------


def three_job_sweep(sweep: Path) -> None:
    """far_margin 2, 20, 4: the middle job failed and recorded why."""
    metrics = {"test/f1": 0.5, "val/f1": 0.4, "seed": 0}
    make_job(sweep, 0, ["data.far_margin=2"], metrics)
    make_job(sweep, 1, ["data.far_margin=20"], failure=FAILURE)
    make_job(sweep, 2, ["data.far_margin=4"], metrics)


def test_report_lists_the_failed_job_with_its_reason(tmp_path: Path) -> None:
    """table.md counts the failure, names the job, its overrides and its reason, and says
    where the traceback is; the table row of its setting shows no value and 1 failed."""
    three_job_sweep(tmp_path)
    build_report(tmp_path)
    text = (tmp_path / "table.md").read_text()
    assert "3 jobs, 2 finished, 1 failed." in text
    assert "Failed jobs (tracebacks in <job>/failure.json):" in text
    assert (
        "- job 1 (data.far_margin=20): ValueError: cannot sample points there" in text.splitlines()
    )
    assert "| 20 | – | 0 | 1 |" in text


def test_report_without_recorded_failures_has_the_plain_heading(tmp_path: Path) -> None:
    make_job(tmp_path, 0, ["seed=0"], {"test/f1": 0.5})
    make_job(tmp_path, 1, ["seed=1"])
    build_report(tmp_path)
    text = (tmp_path / "table.md").read_text()
    assert "Failed jobs:" in text and "tracebacks in" not in text


# --- the outcome that oodmix-train's exit code follows ---------------------------------------


def sweep_config(sweep: Path):
    return OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})


def test_callback_records_how_many_jobs_failed(tmp_path: Path, capsys) -> None:
    """After the report, the outcome counts the failed jobs and points to table.md; taking it
    forgets it."""
    three_job_sweep(tmp_path)
    WriteSweepReport().on_multirun_end(sweep_config(tmp_path))
    capsys.readouterr()
    outcome = take_sweep_outcome()
    assert outcome == SweepOutcome(tmp_path, jobs=3, failed=1, report=tmp_path / "table.md")
    assert outcome.summary() == f"1 of 3 jobs failed: see {tmp_path / 'table.md'}"
    assert take_sweep_outcome() is None


def test_callback_records_the_outcome_without_a_report(tmp_path: Path) -> None:
    """enabled=False: no report, but the failures still count (the summary names the folder)."""
    three_job_sweep(tmp_path)
    WriteSweepReport(enabled=False).on_multirun_end(sweep_config(tmp_path))
    outcome = take_sweep_outcome()
    assert outcome == SweepOutcome(tmp_path, jobs=3, failed=1, report=None)
    assert outcome.summary() == f"1 of 3 jobs failed: see {tmp_path}"
    assert not (tmp_path / "table.md").exists()


def test_callback_records_no_failure_for_a_clean_sweep(tmp_path: Path, capsys) -> None:
    make_job(tmp_path, 0, ["seed=0"], {"test/f1": 0.5})
    WriteSweepReport().on_multirun_end(sweep_config(tmp_path))
    capsys.readouterr()
    assert take_sweep_outcome() == SweepOutcome(tmp_path, 1, 0, tmp_path / "table.md")
