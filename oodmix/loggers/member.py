"""A member's own logger inside a stack of runs trained as one (oodmix.stacking.group_run)."""

from __future__ import annotations

from argparse import Namespace
from typing import Any

from lightning.pytorch.loggers import Logger


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
    """

    def __init__(self, logger: Logger, member: int, config: dict[str, Any]) -> None:
        super().__init__()
        self.logger = logger
        self.member = int(member)
        self.config = config
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
        if not self._hyperparameters_logged:
            self.logger.log_hyperparams({"config": self.config}, *args, **kwargs)
            self._hyperparameters_logged = True

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
