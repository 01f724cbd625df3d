"""A run's LightningModule and Trainer, built from its config (`build_run`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from oodmix.allowed import integer_at_least, is_int, require
from oodmix.config.errors import ConfigError
from oodmix.config.job import check_no_missing_values, job_config
from oodmix.runs.context import in_multirun
from oodmix.runs.parts import build_parts, quiet_lightning, refusals_as_config_errors


@dataclass
class Run:
    """What one training run is made of, built from its config (see `build_run`)."""

    datamodule: Any
    module: Any  # OODClassifier; its objective is module.loss
    trainer: Any


def monitoring_checkpoints(trainer: Any) -> list[Any]:
    """The trainer's checkpoint callbacks that keep the best weights of a monitored metric."""
    return [cb for cb in trainer.checkpoint_callbacks if getattr(cb, "monitor", None)]


def check_trainer_settings(trainer: DictConfig) -> None:
    """oodmix's own rules for Lightning's Trainer arguments (Lightning checks the rest when the
    Trainer is built): the module steps its optimiser itself (manual optimisation), where
    Lightning would ignore gradient clipping and accumulation, and a run trains at least one
    epoch, so that there are weights to test; a GPU must exist when one is asked for."""
    require(
        "trainer.gradient_clip_val",
        trainer.get("gradient_clip_val"),
        trainer.get("gradient_clip_val") is None,
        "null: oodmix steps manually, set model.gradient_clip_val instead",
    )
    require(
        "trainer.accumulate_grad_batches",
        trainer.get("accumulate_grad_batches", 1),
        lambda n: is_int(n) and n == 1,
        "1: oodmix takes one optimiser step per batch (raise data.batch_size)",
    )
    if "max_epochs" in trainer:
        integer_at_least("trainer.max_epochs", trainer.max_epochs, 1)
    if trainer.get("accelerator") in ("gpu", "cuda"):
        import torch

        if not (torch.cuda.is_available() or torch.backends.mps.is_available()):
            raise ValueError(
                f"trainer.accelerator={trainer.accelerator} is not allowed here: no GPU is "
                "visible to torch (torch.cuda.is_available() is False); use trainer=cpu or "
                "trainer=auto"
            )


def build_trainer(cfg: DictConfig) -> Any:
    """The Lightning Trainer with the configured callbacks (null ones switched off) and logger."""
    from oodmix.console import is_quiet, progress_bar

    callbacks = []
    for name, callback in (cfg.get("callbacks") or {}).items():
        if callback:
            with refusals_as_config_errors(f"callbacks.{name}"):
                callbacks.append(instantiate(callback))
    with refusals_as_config_errors("logger"):
        logger = instantiate(cfg.logger) if cfg.get("logger") else False
    with refusals_as_config_errors():
        quiet = is_quiet(cfg.get("quiet", "auto"), multirun=in_multirun())
        bar = progress_bar(cfg.get("progress", "auto"), quiet=quiet)  # root knobs (console)
    with refusals_as_config_errors("trainer"):
        check_trainer_settings(cfg.trainer)
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

    with refusals_as_config_errors("model"):
        return OODClassifier(
            net,
            loss,
            instantiate(cfg.model.optimizer),
            # Hydra's own section is present only when a config is composed with it (tests).
            config=OmegaConf.to_container(job_config(cfg), resolve=True, enum_to_str=True),
            gradient_clip_val=cfg.model.get("gradient_clip_val"),
            gradient_clip_algorithm=cfg.model.get("gradient_clip_algorithm", "norm"),
            **members,
        )


def seed_run(seed: Any) -> None:
    """Seed Python, numpy and torch (and dataloader workers) from the run's `seed`, an integer
    >= 0: the data, the initial weights, the shuffling and the mixup draws all follow it."""
    import lightning as L

    with refusals_as_config_errors():
        check_seed(seed)
    L.seed_everything(seed, workers=True, verbose=False)


def check_seed(seed: Any) -> int:
    """A run's seed: an integer >= 0 (a sweep's seeds are checked before its first job)."""
    return integer_at_least("seed", seed, 0)


def check_tested_weights(test_ckpt: str, trainer: Any) -> None:
    """test_ckpt=best tests the weights that a checkpoint callback kept for the best
    validation metric, so one of the trainer's must monitor a metric."""
    if test_ckpt == "best" and not monitoring_checkpoints(trainer):
        raise ConfigError(
            "test_ckpt=best is not allowed here: no checkpoint callback monitors a validation "
            "metric (callbacks.model_checkpoint is off); use test_ckpt=last"
        )


def build_run(cfg: DictConfig) -> Run:
    """Seed everything, and build the datamodule, model and trainer of a run.

    Each value is checked by the class that uses it, as it is built: a refusal is a
    ConfigError with one line. Shared by `oodmix.runs.job.train`, the check before a run or
    sweep writes anything (oodmix.config.preflight) and the benchmarks, so that a benchmark
    times exactly what a run trains.
    """
    from oodmix.runs.results import check_optimized_metric

    check_no_missing_values(cfg)
    quiet_lightning()
    seed_run(cfg.seed)
    datamodule, loss, net = build_parts(cfg)
    module = build_module(cfg, loss, net)
    trainer = build_trainer(cfg)
    check_tested_weights(cfg.test_ckpt, trainer)
    with refusals_as_config_errors():
        check_optimized_metric(cfg.optimized_metric)
    return Run(datamodule, module, trainer)
