"""A member's own logger inside a stack of runs trained as one (oodmix.stacking.group_run)."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger, Logger

from oodmix.files import write_text_atomic


class MemberLogger(Logger):
    """Member `member`'s logger (the one its solo run builds from its config), attached to the
    stack's trainer beside the other members' loggers.

    It receives what its solo run's logger receives: the member's values of every published
    metric (oodmix.metrics.publish picks them by `member`), and its own run config as the
    hyperparameters (Lightning hands every logger the stack's module's, which are member 0's).
    The group's checkpoints are not the member's, so they are not reported to its logger
    (after_save_checkpoint); the member's own checkpoints are written when the group ends.
    Everything else is the wrapped logger's.

    Lightning logs the hyperparameters again at the start of each stage (fit, validate,
    test); they never change here, and writing them (the CSV logger's hparams.yaml, through
    OmegaConf) takes tens of milliseconds for a run's config, so a member's are written once.
    `hparams_yaml`, when given, is that file's text (`{"config": config}` as OmegaConf writes
    it; a group makes its members' from one dump, oodmix.stacking.yaml_texts), which a CSV
    logger's hparams.yaml is then written from instead of being dumped again.
    """

    def __init__(
        self,
        logger: Logger,
        member: int,
        config: dict[str, Any],
        hparams_yaml: str | None = None,
    ) -> None:
        super().__init__()
        self.logger = logger
        self.member = int(member)
        self.config = config
        self.hparams_yaml = hparams_yaml
        self._hyperparameters_logged = False

    @property
    def name(self) -> str | None:
        return self.logger.name

    @property
    def version(self) -> int | str | None:
        return self.logger.version

    @property
    def save_dir(self) -> str | None:
        return self.logger.save_dir

    @property
    def log_dir(self) -> str | None:
        return getattr(self.logger, "log_dir", None)

    @property
    def experiment(self) -> Any:
        return self.logger.experiment

    def log_hyperparams(
        self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any
    ) -> None:
        if self._hyperparameters_logged:
            return
        self._hyperparameters_logged = True
        params = {"config": self.config}
        if self.hparams_yaml is not None and isinstance(self.logger, CSVLogger):
            # What CSVLogger.log_hyperparams does (its writer's log_hparams: keep the
            # parameters, write them all to hparams.yaml), with the text already made.
            writer = self.logger.experiment
            if not writer.hparams:
                writer.hparams.update(params)
                write_text_atomic(
                    Path(writer.log_dir) / writer.NAME_HPARAMS_FILE, self.hparams_yaml
                )
                return
        self.logger.log_hyperparams(params, *args, **kwargs)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.logger.log_metrics(metrics, step)

    def log_graph(self, model: Any, input_array: Any = None) -> None:
        self.logger.log_graph(model, input_array)

    def save(self) -> None:
        self.logger.save()

    def finalize(self, status: str) -> None:
        self.logger.finalize(status)

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Not the member's checkpoint (see the class docstring)."""

    def __getattr__(self, name: str) -> Any:
        # What oodmix reads from a logger besides the Logger API (hparams_metrics).
        if name == "logger":
            raise AttributeError(name)
        return getattr(self.logger, name)
