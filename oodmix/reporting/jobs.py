"""The jobs of a Hydra multirun folder: what each was asked (overrides) and what it measured."""

from __future__ import annotations

import json
import math
import traceback
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from oodmix.config.errors import one_line
from oodmix.files import write_json_atomic

#: What a job of a multirun writes into its folder when it fails (see `write_failure`).
FAILURE_FILE = "failure.json"


@dataclass
class Job:
    """A job folder, <sweep>/<n>/: .hydra/overrides.yaml and, if it finished, metrics.json (or,
    if it failed, failure.json)."""

    path: Path
    overrides: dict[str, str]
    metrics: dict[str, Any] | None
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.metrics is not None

    @property
    def name(self) -> str:
        return self.path.name


def parse_overrides(lines: list[str]) -> dict[str, str]:
    """["loss=ce", "+x=1"] -> {"loss": "ce", "x": "1"}; deletions (~key) are left out."""
    parsed = {}
    for line in lines:
        key, _, value = str(line).partition("=")
        if key.startswith("~"):
            continue
        parsed[key.lstrip("+")] = value
    return parsed


def failure_reason(record: dict[str, Any]) -> str:
    """'ValueError: <message>' from a failure record (the type alone when there is no message)."""
    kind, message = record.get("type") or "error", record.get("message") or ""
    return f"{kind}: {message}" if message else str(kind)


def write_failure(
    job_dir: Path, error: BaseException, job: int | str, overrides: list[str]
) -> dict[str, Any]:
    """Write <job_dir>/failure.json (atomically) and return what it holds: the job number, its
    overrides, the time, the error's type, its one-line message and the full traceback."""
    record = {
        "job": job,
        "overrides": list(overrides),
        "time": datetime.now().astimezone().isoformat(timespec="seconds"),
        "type": type(error).__name__,
        "message": one_line(error),
        "traceback": "".join(traceback.format_exception(type(error), error, error.__traceback__)),
    }
    write_json_atomic(job_dir / FAILURE_FILE, record)
    return record


def _recorded_failure(path: Path) -> str:
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"failed; its {FAILURE_FILE} cannot be read ({error})"
    if not isinstance(record, dict):
        return f"failed; its {FAILURE_FILE} does not hold a JSON object"
    return failure_reason(record)


def load_job(path: Path) -> Job:
    overrides = parse_overrides(list(OmegaConf.load(path / ".hydra" / "overrides.yaml") or []))
    # A recorded failure wins over a metrics.json: the job may have failed after writing it, and
    # a job clears the failure.json of an earlier run into the same folder when it starts.
    if (path / FAILURE_FILE).is_file():
        return Job(path, overrides, None, _recorded_failure(path / FAILURE_FILE))
    metrics_file = path / "metrics.json"
    if not metrics_file.is_file():
        return Job(path, overrides, None, "did not finish (no metrics.json, no failure.json)")
    try:
        metrics = read_metrics(metrics_file)
    except json.JSONDecodeError as error:
        return Job(path, overrides, None, f"metrics.json is not valid JSON ({error})")
    except ValueError as error:
        return Job(path, overrides, None, str(error))
    return Job(path, overrides, metrics)


def read_metrics(path: Path) -> dict[str, Any]:
    """A run's metrics.json, each null (an undefined value: the file is strict JSON, see
    oodmix.runs.results.write_metrics) as NaN, as the run computed it. json.JSONDecodeError
    when it is not JSON, ValueError when it holds no JSON object (OSError: unreadable)."""
    metrics = json.loads(path.read_text())
    if not isinstance(metrics, dict):
        raise ValueError("metrics.json does not hold a JSON object")
    return {name: math.nan if value is None else value for name, value in metrics.items()}


def _job_order(path: Path) -> tuple[int, int | str]:
    return (0, int(path.name)) if path.name.isdigit() else (1, path.name)


def load_jobs(sweep_dir: Path) -> list[Job]:
    """Every job folder directly under `sweep_dir` (those holding .hydra/), in job order."""
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"{sweep_dir} is not a folder")
    folders = [p for p in sweep_dir.iterdir() if (p / ".hydra" / "overrides.yaml").is_file()]
    return [load_job(p) for p in sorted(folders, key=_job_order)]
