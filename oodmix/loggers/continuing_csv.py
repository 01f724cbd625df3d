"""Lightning's CSV logger, continuing the run's metrics.csv instead of deleting it."""

from __future__ import annotations

import csv

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


class ContinuingExperimentWriter(ExperimentWriter):
    """Lightning's writer deletes an existing metrics.csv when it starts. In oodmix a run
    folder is always new, except when a run is resumed (ckpt_path) or when a later stage runs
    in fresh processes (trainer=ddp_cpu forks for fit, validate and test): both times the
    rows already in the file belong to this run, so they are kept and new rows follow them."""

    def _check_log_dir_exists(self) -> None:
        if not self._fs.isfile(self.metrics_file_path):
            return
        with self._fs.open(self.metrics_file_path, "r", newline="") as handle:
            header = next(csv.reader(handle), [])
        # Columns already in the file: a new column rewrites the header, keeping the rows.
        self.metrics_keys = sorted(header)


class ContinuingCSVLogger(CSVLogger):
    """`<save_dir>/<name>/<version>/metrics.csv`, one row per logged step, kept across
    resumed runs and across the processes of a data-parallel run."""

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = ContinuingExperimentWriter(log_dir=self.log_dir)
        return self._experiment
