"""The jobs of a Hydra multirun folder: what each was asked (overrides) and what it measured."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf


@dataclass
class Job:
    """A job folder, <sweep>/<n>/: .hydra/overrides.yaml and, if it finished, metrics.json."""

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


def load_job(path: Path) -> Job:
    overrides = parse_overrides(list(OmegaConf.load(path / ".hydra" / "overrides.yaml") or []))
    metrics_file = path / "metrics.json"
    if not metrics_file.is_file():
        return Job(path, overrides, None, "no metrics.json (the job failed or did not finish)")
    try:
        metrics = json.loads(metrics_file.read_text())
    except json.JSONDecodeError as error:
        return Job(path, overrides, None, f"metrics.json is not valid JSON ({error})")
    if not isinstance(metrics, dict):
        return Job(path, overrides, None, "metrics.json does not hold a JSON object")
    return Job(path, overrides, metrics)


def _job_order(path: Path) -> tuple[int, int | str]:
    return (0, int(path.name)) if path.name.isdigit() else (1, path.name)


def load_jobs(sweep_dir: Path) -> list[Job]:
    """Every job folder directly under `sweep_dir` (those holding .hydra/), in job order."""
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"{sweep_dir} is not a folder")
    folders = [p for p in sweep_dir.iterdir() if (p / ".hydra" / "overrides.yaml").is_file()]
    return [load_job(p) for p in sorted(folders, key=_job_order)]
