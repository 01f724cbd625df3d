"""A Hydra callback that reports every multirun when its last job ends."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class WriteSweepReport(Callback):
    """On multirun end: oodmix-report on the sweep folder (table.md, table.csv, figures).

    A report that cannot be made is logged, never raised: the jobs' own results stay valid.
    """

    def __init__(self, paper: bool = False, enabled: bool = True) -> None:
        self.paper = paper
        self.enabled = enabled

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled:
            return
        from oodmix.reporting.report import build_report

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            report = build_report(sweep_dir, paper=self.paper)
        except Exception as error:  # a report must never turn a finished sweep into a failure
            log.warning("no report for %s: %s", sweep_dir, error)
            return
        print(f"\n{report.table}\n")
        for path in report.written:
            print(f"wrote {path}")
