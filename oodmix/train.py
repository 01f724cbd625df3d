"""Hydra entry point: `oodmix-train [overrides]` (also `python -m oodmix`).

compose conf/train.yaml -> check values -> datamodule, loss, model, callbacks, trainer
-> fit -> test (best validation checkpoint) -> <run dir>/metrics.json and a printed table
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from oodmix.config.overrides import check_command_line
from oodmix.config.paths import config_dir
from oodmix.config.validation import ConfigError, check_accelerator, validate
from oodmix.files import write_json_atomic

# Lightning 2.6 calls a torch pytree API that newer torch marks deprecated, on every run.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")

# Lightning, torch and the model are imported inside the functions that use them: importing
# them takes seconds, and a mistyped command line should be answered at once.

# Shown in the printed table, in this order, when present.
TABLE_ROWS = {
    "test/f1": "F1 (ID positive)",
    "test/precision": "precision (ID)",
    "test/recall": "recall (ID)",
    "test/f1_ood": "F1 (OOD positive)",
    "test/f1_tuned": "F1 at val-tuned delta",
    "test/auroc": "AUROC",
    "test/fpr95": "FPR at 95% TPR",
    "test/acc": "ID accuracy",
}


def _choice(group: str, fallback: str) -> str:
    """The config-group option this run uses (e.g. loss=ce_kl), when Hydra composed it."""
    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get(group)
        if choice:
            return str(choice)
    return fallback


@contextmanager
def refusals_as_config_errors() -> Iterator[None]:
    """Turn a constructor's refusal of a value into a ConfigError (one line, exit 2).

    oodmix's classes raise ValueError (or ConfigError) naming the key and what is allowed;
    Hydra wraps those in a multi-line InstantiationException, which is unwrapped here.
    """
    try:
        yield
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, ConfigError):  # already one line, of its own kind (DataError)
            raise cause from None
        if isinstance(cause, ValueError):
            raise ConfigError(str(cause)) from None
        raise
    except ConfigError:
        raise
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _logged(trainer: Any, prefix: str) -> dict[str, float]:
    return {
        name: float(value)
        for name, value in trainer.callback_metrics.items()
        if name.startswith(prefix)
    }


def tested_checkpoint(trainer: Any, which: str) -> str | None:
    """The weights the test set sees. "last": those in memory after fitting (the final epoch).
    "best": the file of the checkpoint callback that monitors val/f1 (validation data only)."""
    if which == "last":
        return None
    return _monitoring_checkpoints(trainer)[0].best_model_path


def _monitoring_checkpoints(trainer: Any) -> list[Any]:
    return [cb for cb in trainer.checkpoint_callbacks if getattr(cb, "monitor", None)]


def build_trainer(cfg: DictConfig) -> Any:
    """The Lightning Trainer with the configured callbacks (null ones switched off) and logger."""
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    return instantiate(cfg.trainer, callbacks=callbacks, logger=logger)


def format_results(metrics: dict[str, Any], threshold: str, output: Path) -> str:
    """A short human-readable table of the test metrics."""
    lines = [
        f"oodmix  loss={metrics['loss']}  detector={metrics['detector']}  seed={metrics['seed']}"
        f"  threshold: {threshold}  (test set)"
    ]
    for key, label in TABLE_ROWS.items():
        if key in metrics:
            lines.append(f"  {label:<22} {metrics[key]:.4f}")
    try:
        shown = output.resolve().relative_to(Path.cwd())
    except ValueError:  # outside the working directory: the absolute path
        shown = output
    lines.append(f"  written to {shown}")
    return "\n".join(lines)


@dataclass
class Run:
    """What one training run is made of, built from its config (see `build_run`)."""

    datamodule: Any
    module: Any  # OODClassifier; its objective is module.loss
    trainer: Any


def build_run(cfg: DictConfig) -> Run:
    """Validate `cfg`, seed everything, and build the datamodule, model and trainer of a run.

    Shared by `train` and the benchmarks, so that a benchmark times exactly what a run trains.
    """
    validate(cfg)
    check_accelerator(cfg)
    import lightning as L

    from oodmix.models import OODClassifier

    # Lightning sets its loggers to INFO when first imported (here, after Hydra configured
    # logging); its start-up notices (accelerators present, tips) would bury the result table.
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)

    L.seed_everything(cfg.seed, workers=True, verbose=False)

    with refusals_as_config_errors():
        datamodule = instantiate(cfg.data)
        loss = instantiate(cfg.loss)
        datamodule.request_parts(loss.requires)  # refuses e.g. a mixup loss with mixup=null
        net = instantiate(
            cfg.model.net, in_features=datamodule.num_features, num_classes=datamodule.num_classes
        )
    # Hydra's own section is present only when a config is composed with it (tests).
    run_config = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    module = OODClassifier(
        net,
        loss,
        instantiate(cfg.model.optimizer),
        config=OmegaConf.to_container(run_config, resolve=True),
        gradient_clip_val=cfg.model.get("gradient_clip_val"),
        gradient_clip_algorithm=cfg.model.get("gradient_clip_algorithm", "norm"),
    )
    trainer = build_trainer(cfg)
    if cfg.test_ckpt == "best" and not _monitoring_checkpoints(trainer):
        raise ConfigError(
            "test_ckpt=best is not allowed here: no checkpoint callback monitors a validation "
            "metric (callbacks.model_checkpoint is off); use test_ckpt=last"
        )
    return Run(datamodule, module, trainer)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and test one run; write and return its metrics (flat: `test/<name>`, seed, loss)."""
    run = build_run(cfg)
    datamodule, module, trainer = run.datamodule, run.module, run.trainer
    output_dir = Path(cfg.output_dir)
    trainer.fit(module, datamodule=datamodule)

    ckpt_path = tested_checkpoint(trainer, cfg.test_ckpt)
    # Validate the very weights that are tested: their val/* is what sweepers optimise, and
    # their validation pass sets the tuned threshold (val/delta_best) the test then uses.
    trainer.validate(module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
    metrics: dict[str, Any] = _logged(trainer, "val/")
    trainer.test(module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
    metrics.update(_logged(trainer, "test"))  # test/*, and test_near/*, test_far/* if present
    metrics.update(
        seed=int(cfg.seed),
        loss=_choice("loss", type(module.loss).__name__),
        detector=_choice("detector", str(cfg.detector._target_).rsplit(".", 1)[-1]),
    )
    if trainer.is_global_zero:
        write_json_atomic(output_dir / "metrics.json", metrics)
    return metrics


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def _hydra_main(cfg: DictConfig) -> float:
    try:
        metrics = train(cfg)
    except ConfigError as error:
        print(f"oodmix-train: error: {error}", file=sys.stderr)
        sys.exit(2)
    fixed = getattr(hydra.utils.get_class(cfg.detector._target_), "fixed_threshold", False)
    threshold = (
        f"delta={cfg.delta}"
        if fixed
        else f"tuned on validation, val/delta_best={metrics['val/delta_best']:.4g}"
    )
    print(format_results(metrics, threshold, Path(cfg.output_dir) / "metrics.json"))
    return metrics[cfg.optimized_metric]


def main() -> None:
    """Console entry: check the command line, then hand over to Hydra."""
    try:
        check_command_line(sys.argv[1:])
    except ConfigError as error:
        print(f"oodmix-train: error: {error}", file=sys.stderr)
        sys.exit(2)
    _hydra_main()


if __name__ == "__main__":
    main()
