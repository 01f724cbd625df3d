"""A Hydra callback that reports every multirun when its last job ends."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepOutcome:
    """How many jobs of a finished multirun failed, and where to read why."""

    sweep_dir: Path
    jobs: int
    failed: int
    report: Path | None  # table.md, when it was written

    def summary(self) -> str:
        return f"{self.failed} of {self.jobs} jobs failed: see {self.report or self.sweep_dir}"


_last_outcome: SweepOutcome | None = None


def take_sweep_outcome() -> SweepOutcome | None:
    """The outcome of the multirun that ended last in this process, then forgotten (None after
    a single run, or when no WriteSweepReport callback ran)."""
    global _last_outcome
    outcome, _last_outcome = _last_outcome, None
    return outcome


class WriteSweepReport(Callback):
    """On multirun end: oodmix-report on the sweep folder (table.md, table.csv, figures), and
    the count of failed jobs for `take_sweep_outcome` (oodmix-train then exits 1).

    A report that cannot be made is logged, never raised: the jobs' own results stay valid.
    """

    def __init__(self, paper: bool = False, enabled: bool = True) -> None:
        self.paper = paper
        self.enabled = enabled

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        global _last_outcome
        sweep_dir = Path(config.hydra.sweep.dir)
        report = self._report(sweep_dir) if self.enabled else None
        from oodmix.reporting.jobs import load_jobs

        try:
            jobs = load_jobs(sweep_dir)
        except Exception as error:  # as for the report: logged, never raised
            log.warning("cannot count the failed jobs of %s: %s", sweep_dir, error)
            return
        failed = sum(not job.ok for job in jobs)
        _last_outcome = SweepOutcome(sweep_dir, len(jobs), failed, report)

    def _report(self, sweep_dir: Path) -> Path | None:
        from oodmix.reporting.report import build_report

        try:
            report = build_report(sweep_dir, paper=self.paper)
        except Exception as error:  # a report must never turn a finished sweep into a failure
            log.warning("no report for %s: %s", sweep_dir, error)
            return None
        print(f"\n{report.table}\n")
        for path in report.written:
            print(f"wrote {path}")
        return sweep_dir / "table.md"
