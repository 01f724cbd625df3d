"""The check before a run or a sweep writes anything: build what each job builds.

Hydra composes a config against its schema (oodmix.config.schema: types, enumerations,
required values, closed key sets). What is left are ranges and rules across keys, each stated
once, by the class that uses the value. So the check builds what a job builds, with the job's
own code (oodmix.runs.build.build_run: seeding, data module, objective, network, module and
optimiser, callbacks, logger, trainer), and the first refusal becomes the one line. The run
folder is pointed at a scratch folder that is removed afterwards, so that a constructor that
writes (a tracking store) writes nothing where the run will. A resumed run's checkpoint must
hold the same settings (oodmix.checkpoints.resume).

A multirun is checked before its first job: every combination of its swept values (from the
command line and from the sweeper's parameters) is composed and built, once per combination
and not per seed, since a seed changes no rule; each seed value is checked by the seeding's
own rule. An interval (Optuna's search space) has no values to list: a trial's values are
checked by its job.
"""

from __future__ import annotations

import copy
import itertools
import tempfile
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from oodmix.config.errors import ConfigError, describe
from oodmix.config.overrides import task_overrides
from oodmix.config.unused_settings import check_settings_used, run_label, sweeper_params


def check_job(config: DictConfig) -> None:
    """Build what a job of `config` builds, writing nothing; the first refusal as ConfigError."""
    from oodmix.runs.build import build_run
    from oodmix.runs.parts import refusals_as_config_errors

    job = copy.deepcopy(config)  # the config Hydra runs is left as it made it
    hydra = HydraConfig.instance()
    before = hydra.cfg
    try:
        # The job's `${hydra:...}` values (its choices, in a title), as Hydra will set them.
        hydra.set_config(job)
        with tempfile.TemporaryDirectory(prefix="oodmix-check-") as scratch:
            job.output_dir = scratch
            # Every value read once, so that a bad interpolation is named by its key
            # (OmegaConf.resolve names none).
            try:
                for name in job:
                    if name != "hydra" and isinstance(job[name], (DictConfig, ListConfig)):
                        OmegaConf.to_container(job[name], resolve=True)
            except OmegaConfBaseException as error:
                raise ConfigError(describe(error, []) or str(error)) from None
            run = build_run(job)
            with refusals_as_config_errors("model.optimizer"):
                run.module.configure_optimizers()  # the optimiser checks its own arguments
    finally:
        hydra.cfg = before
    if config.get("ckpt_path"):
        from oodmix.checkpoints.resume import check_same_settings

        check_same_settings(config.ckpt_path, config)


def _overrides(config: DictConfig) -> list[Any]:
    """The parsed overrides of a multirun: the sweeper's parameters (an experiment's sweep,
    Optuna's search space), then the command line's, which win for the same key."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    command = parser.parse_overrides(task_overrides(config))
    given = {o.key_or_group for o in command}
    params = [f"{key}={value}" for key, value in sweeper_params(config).items()]
    return [o for o in parser.parse_overrides(params) if o.key_or_group not in given] + command


def sweep_jobs(config: DictConfig) -> tuple[list[list[str]], list[Any]]:
    """The distinct jobs of a multirun, as override lists (the seed left at the composed
    value), and the seeds it sweeps."""
    from hydra.core.override_parser.types import IntervalSweep

    fixed: list[str] = []
    swept: list[list[str]] = []
    seeds: list[Any] = []
    for override in _overrides(config):
        key = override.get_key_element()
        if not override.is_sweep_override():
            fixed.append(override.input_line)
        elif isinstance(override.value(), IntervalSweep):
            continue  # drawn by the sweeper while it runs (see the module docstring)
        elif override.key_or_group == "seed":
            seeds += list(override.sweep_iterator())
        else:
            swept.append([f"{key}={value}" for value in override.sweep_string_iterator()])
    return [[*fixed, *combination] for combination in itertools.product(*swept)], seeds


def check_sweep(config: DictConfig) -> None:
    """Compose and build each distinct job of a multirun (see the module docstring); refuse
    a swept knob that some job would not use (oodmix.config.unused_settings)."""
    from hydra import compose

    from oodmix.runs.build import check_seed
    from oodmix.runs.parts import refusals_as_config_errors

    jobs, seeds = sweep_jobs(config)
    with refusals_as_config_errors():
        for seed in seeds:
            check_seed(seed)
    name = config.hydra.job.config_name
    runs = []
    for overrides in jobs:
        job = compose(config_name=name, overrides=overrides, return_hydra_config=True)
        runs.append((run_label(job.hydra.runtime.choices), job))
    searched = sweeper_params(config)
    every = task_overrides(config) + [f"{k}={v}" for k, v in searched.items()]
    check_settings_used(runs, every, searched=searched)
    for _, job in runs:
        check_job(job)
