"""Checks a run's composed config and its folder before Hydra writes anything there.

The order puts what answers at once first: the run folder and the settings that would change
nothing; then what needs torch and Lightning, building what each job builds
(oodmix.config.preflight), seconds which the run would spend right after anyway.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from oodmix.config.errors import debugging, describe, one_line
from oodmix.config.overrides import task_overrides
from oodmix.config.preflight import check_job, check_sweep
from oodmix.config.run_dirs import (
    check_no_resume_in_sweep,
    check_run_dir,
    check_sweep_dir,
    lock_folder,
    release_unused_claims,
)
from oodmix.config.unused_settings import check_run


def _refuse(error: Exception, config: DictConfig) -> None:
    """Stop the command in one line, exit 2. Anything raised before writing stops it:
    oodmix's refusal, Hydra's or OmegaConf's own (an option met when a job of a sweep is
    composed), or a check that failed, named as such, which must not let a run start
    unchecked. (Hydra turns an exception raised by a callback into a warning and goes on.)"""
    if debugging():
        traceback.print_exception(error)
        sys.exit(2)
    line = describe(error, task_overrides(config))
    if line is None:  # not a refusal: a check that failed, which must not let the run go on
        line = f"the check before writing failed: {type(error).__name__}: {one_line(error)}"
    print(f"oodmix-train: error: {line}", file=sys.stderr)
    sys.exit(2)


def _sweep_values(config: DictConfig, key: str) -> list[Any]:
    """The values a multirun gives `key`: the composed one and each of a sweep over it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from oodmix.config.overrides import override_values

    overrides = OverridesParser.create().parse_overrides(task_overrides(config))
    swept = [v for o in overrides if o.key_or_group == key for v in override_values(o)]
    return [config.get(key), *swept]


def _later_rank() -> bool:
    """A process other than the first of a multi-process launch (Lightning's DDP launcher,
    torchrun, srun): it joins the folder that the first process checked and created."""
    return any(int(os.environ.get(name, "0") or 0) > 0 for name in ("LOCAL_RANK", "RANK"))


class CheckBeforeWriting(Callback):
    """Hydra calls on_run_start / on_multirun_start after composing the config and before it
    creates the run (or sweep) folder: a bad value, an occupied folder, a part that cannot be
    built or a resume with other settings stops here, with nothing written; a sweep's jobs are
    built before its first (oodmix.config.preflight)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            # The folder first, as it needs no import (resolving it may claim a new folder,
            # which a refusal releases).
            if not _later_rank():
                check_run_dir(Path(config.hydra.run.dir), config.get("ckpt_path"))
            check_run(config)
            check_job(config)
            if not _later_rank():  # the first process holds the folder for all of them
                lock_folder(Path(config.hydra.run.dir), "hydra.run.dir")
        except Exception as error:  # anything: see _refuse
            release_unused_claims(None)
            _refuse(error, config)
        release_unused_claims(Path(config.hydra.run.dir))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            # hydra.launcher.resume=true (stacked launcher): a stopped sweep's folder goes on.
            resume = bool((config.hydra.get("launcher") or {}).get("resume", False))
            check_sweep_dir(Path(config.hydra.sweep.dir), resume)
            check_no_resume_in_sweep(_sweep_values(config, "ckpt_path"))
            check_sweep(config)
            lock_folder(Path(config.hydra.sweep.dir), "hydra.sweep.dir")
        except Exception as error:  # anything: see _refuse
            release_unused_claims(None)
            _refuse(error, config)
        release_unused_claims(Path(config.hydra.sweep.dir))

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Hydra composed this job's config just now, claiming folders no run uses.
        release_unused_claims(Path(config.hydra.runtime.output_dir))
