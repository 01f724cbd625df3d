"""Lightning's TensorBoard logger: a new event file per stage, and the HParams tab filled.

Lightning closes its writer at the end of every stage (fit, validate, test), and the writer
it reopens names its file after the current second: a validation and a test finished within
one second wrote to the same name, and the second stage's file replaced the first's. Here
every writer gets a file name of its own (process id and a count), so nothing is replaced,
also when `trainer=ddp_cpu` forks a fresh process per stage or a resumed run adds files.

The hyperparameters (the run's resolved config) go to `hparams.yaml`, as Lightning writes
them, and to the event file as TensorBoard's HParams summary, listing `hparams_metrics`:
the HParams tab then shows each run's settings beside those metrics' last values (their
values are the scalars logged under the same names). Lightning would instead log a
placeholder `hp_metric` of -1.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from typing import Any

from lightning.fabric.loggers.tensorboard import _TENSORBOARD_AVAILABLE
from lightning.fabric.utilities.logger import _convert_params, _flatten_dict
from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities.rank_zero import rank_zero_only

#: The metrics the HParams tab shows beside each run's settings, unless configured.
HPARAMS_METRICS = ("val/f1", "test/f1", "test/auroc")


class TensorBoardLogger(LightningTensorBoardLogger):
    """`<save_dir>/<name>/<version>/`: event files (one per writer) and hparams.yaml."""

    def __init__(
        self,
        save_dir: str,
        name: str = "tensorboard",
        version: str | int | None = "",
        hparams_metrics: Sequence[str] = HPARAMS_METRICS,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("default_hp_metric", False)
        super().__init__(save_dir, name=name, version=version, **kwargs)
        self.hparams_metrics = list(hparams_metrics)
        self._writers = itertools.count()

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        if self._experiment is None:
            self._kwargs["filename_suffix"] = f".{os.getpid()}.{next(self._writers)}"
        return super().experiment

    @rank_zero_only
    def finalize(self, status: str) -> None:
        super().finalize(status)
        self._experiment = None  # the next stage opens a writer (and a file) of its own

    @rank_zero_only
    def log_hyperparams(
        self, params: Any, metrics: dict[str, Any] | None = None, step: int | None = None
    ) -> None:
        super().log_hyperparams(params, metrics, step)
        if metrics is not None or not self.hparams_metrics:
            return  # Lightning wrote the HParams summary with those metrics, or none is wanted
        if _TENSORBOARD_AVAILABLE:
            from torch.utils.tensorboard.summary import hparams
        else:
            from tensorboardX.summary import hparams
        flat = self._sanitize_params(_flatten_dict(_convert_params(params)))
        # The metric values are read from the scalars of the same names; these are not logged.
        summaries = hparams(flat, dict.fromkeys(self.hparams_metrics, 0.0))
        writer = self.experiment._get_file_writer()
        for summary in summaries:
            writer.add_summary(summary, step)
