"""A run's LightningModule and Trainer, built from its config (`build_run`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from oodmix.config.job import job_config
from oodmix.config.run_checks import tested_weights_problem
from oodmix.config.validation import ConfigError, check_accelerator, validate
from oodmix.runs.context import in_multirun
from oodmix.runs.parts import build_parts, quiet_lightning


@dataclass
class Run:
    """What one training run is made of, built from its config (see `build_run`)."""

    datamodule: Any
    module: Any  # OODClassifier; its objective is module.loss
    trainer: Any


def monitoring_checkpoints(trainer: Any) -> list[Any]:
    """The trainer's checkpoint callbacks that keep the best weights of a monitored metric."""
    return [cb for cb in trainer.checkpoint_callbacks if getattr(cb, "monitor", None)]


def build_trainer(cfg: DictConfig) -> Any:
    """The Lightning Trainer with the configured callbacks (null ones switched off) and logger."""
    from oodmix.console import is_quiet, progress_bar

    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    quiet = is_quiet(cfg.get("quiet", "auto"), multirun=in_multirun())
    bar = progress_bar(cfg.get("progress", "auto"), quiet=quiet)  # root knobs (oodmix.console)
    return instantiate(
        cfg.trainer,
        callbacks=[*callbacks, bar] if bar else callbacks,
        logger=logger,
        enable_progress_bar=bar is not None,
    )


def build_module(cfg: DictConfig, loss: Any, net: Any, **members: Any) -> Any:
    """The OODClassifier of a run: `net` trained with `loss` and the configured optimiser,
    gradient clipping and the resolved config (which every checkpoint carries). `members`
    are OODClassifier's arguments for a stack of runs (member_rates)."""
    from oodmix.models import OODClassifier

    return OODClassifier(
        net,
        loss,
        instantiate(cfg.model.optimizer),
        # Hydra's own section is present only when a config is composed with it (tests).
        config=OmegaConf.to_container(job_config(cfg), resolve=True),
        gradient_clip_val=cfg.model.get("gradient_clip_val"),
        gradient_clip_algorithm=cfg.model.get("gradient_clip_algorithm", "norm"),
        **members,
    )


def build_run(cfg: DictConfig) -> Run:
    """Validate `cfg`, seed everything, and build the datamodule, model and trainer of a run.

    Shared by `oodmix.runs.job.train` and the benchmarks, so that a benchmark times exactly
    what a run trains. A single run of oodmix-train made these checks before Hydra made its
    folder (oodmix.config.hydra_callback); here they are the last resort, for what had no
    such check.
    """
    validate(cfg)
    check_accelerator(cfg)
    import lightning as L

    quiet_lightning()
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule, loss, net = build_parts(cfg)
    module = build_module(cfg, loss, net)
    trainer = build_trainer(cfg)
    reason = tested_weights_problem(cfg.test_ckpt, bool(monitoring_checkpoints(trainer)))
    if reason:
        raise ConfigError(reason)
    return Run(datamodule, module, trainer)
