"""Grouping jobs by what was swept (every key but the seed), and statistics over seeds."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from oodmix.reporting.jobs import Job

#: The columns a report leads with, when present.
HEADLINE_METRICS = (
    "test/f1",
    "test/f1_ood",
    "test/precision",
    "test/recall",
    "test/acc",
    "test/auroc",
    "test/fpr95",
    "test/f1_tuned",
)
REPLICATE_KEY = "seed"


@dataclass
class Group:
    """Jobs that share every swept setting but the seed."""

    settings: dict[str, str]
    jobs: list[Job] = field(default_factory=list)

    @property
    def finished(self) -> list[Job]:
        return [job for job in self.jobs if job.ok]

    @property
    def failed(self) -> list[Job]:
        return [job for job in self.jobs if not job.ok]

    def values(self, metric: str) -> list[float]:
        return [float(job.metrics[metric]) for job in self.finished if metric in job.metrics]

    def mean(self, metric: str) -> float:
        values = self.values(metric)
        return statistics.fmean(values) if values else math.nan

    def std(self, metric: str) -> float:
        """Sample standard deviation over seeds (n - 1 in the denominator); NaN below 2 values."""
        values = self.values(metric)
        return statistics.stdev(values) if len(values) > 1 else math.nan

    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.settings.items()) or "all jobs"


def swept_keys(jobs: list[Job]) -> list[str]:
    """Override keys whose value differs between jobs (a key missing from a job counts as a
    value), in the order first seen, the seed left out."""
    keys: list[str] = []
    for job in jobs:
        keys += [k for k in job.overrides if k not in keys]
    return [
        key
        for key in keys
        if key != REPLICATE_KEY and len({job.overrides.get(key) for job in jobs}) > 1
    ]


def fixed_overrides(jobs: list[Job]) -> dict[str, str]:
    """Overrides every job shares (what the whole sweep was run with), the seed left out."""
    if not jobs:
        return {}
    shared = dict(jobs[0].overrides)
    for job in jobs[1:]:
        shared = {k: v for k, v in shared.items() if job.overrides.get(k) == v}
    shared.pop(REPLICATE_KEY, None)
    return shared


def group_jobs(jobs: list[Job]) -> tuple[list[str], list[Group]]:
    """(the swept keys, one Group per combination of their values, in order of first job)."""
    keys = swept_keys(jobs)
    groups: dict[tuple, Group] = {}
    for job in jobs:
        settings = {key: job.overrides.get(key, "(default)") for key in keys}
        groups.setdefault(tuple(settings.values()), Group(settings)).jobs.append(job)
    return keys, list(groups.values())


def metric_names(groups: list[Group]) -> list[str]:
    """Headline metrics present first, then every other numeric metric, sorted."""
    present: set[str] = set()
    for group in groups:
        for job in group.finished:
            present |= {
                k
                for k, v in job.metrics.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k != REPLICATE_KEY
            }
    headline = [m for m in HEADLINE_METRICS if m in present]
    return headline + sorted(present - set(headline))
