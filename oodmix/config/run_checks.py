"""Checks of a single run that need the classes it builds, made before Hydra makes its folder.

The value rules (oodmix.config.validation) need no import and come first. What is left needs
torch or Lightning (seconds, which the run would spend right after anyway): whether the weights
to test can be found (test_ckpt), whether a requested GPU exists, whether the data, objective
and network can be built from the config, and whether a resumed run keeps its checkpoint's
settings. Each calls what the job itself runs (tested_weights_problem, check_accelerator,
oodmix.runs.parts.build_parts, oodmix.checkpoints.resume.check_same_settings), so each rule is
stated once, and a run that passes here is not refused for it after its folder exists.

Left to the job (oodmix.runs.build.build_run and oodmix.runs.job.train, which refuse in the
same words), because they cannot be checked before the folder exists:
- the trainer, its callbacks and its logger: their constructors take the run folder, and
  Lightning checks its own trainer arguments (strategy, devices, plugins) there;
- a job of a multirun: Hydra composes a job's config only when it launches the job;
- `build_run` or `train` called from Python (benchmarks, tests), which no pre-flight precedes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

from oodmix.config.validation import ConfigError, check_accelerator


def tested_weights_problem(test_ckpt: str, monitored: bool) -> str | None:
    """Why test_ckpt cannot be honoured, in one line; None when it can. test_ckpt=best tests the
    weights that a checkpoint callback kept for the best validation metric, so one must monitor
    a metric (`monitored`)."""
    if test_ckpt == "best" and not monitored:
        return (
            "test_ckpt=best is not allowed here: no checkpoint callback monitors a validation "
            "metric (callbacks.model_checkpoint is off); use test_ckpt=last"
        )
    return None


def monitoring_checkpoint_configured(callbacks: Mapping[str, Any] | None) -> bool | None:
    """Whether a configured callback is a Lightning checkpoint that monitors a metric, as the
    trainer's `checkpoint_callbacks` will be once built; None when a callback's class does not
    import (building it reports that)."""
    from hydra.utils import get_class
    from lightning.pytorch.callbacks import Checkpoint

    for callback in (callbacks or {}).values():
        if not isinstance(callback, Mapping) or "_target_" not in callback:
            continue  # null: switched off
        try:
            cls = get_class(callback["_target_"])
        except Exception:
            return None
        if issubclass(cls, Checkpoint) and callback.get("monitor"):
            return True
    return False


def check_run_builds(config: DictConfig) -> None:
    """Raise ConfigError with the one-line reason when the run of a composed config would be
    refused as it is built, or when it resumes a checkpoint with other settings."""
    if config.get("test_ckpt") == "best":
        monitored = monitoring_checkpoint_configured(config.get("callbacks"))
        reason = tested_weights_problem("best", monitored) if monitored is not None else None
        if reason:
            raise ConfigError(reason)
    check_accelerator(config)

    from oodmix.runs.parts import build_parts  # the job's own code: imports torch and Lightning

    build_parts(config)
    if config.get("ckpt_path"):
        from oodmix.checkpoints.resume import check_same_settings

        check_same_settings(config.ckpt_path, config)
