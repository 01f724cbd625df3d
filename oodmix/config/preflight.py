"""The check before a run or a sweep writes anything: build what each job builds.

Hydra composes a config against its schema (oodmix.config.schema: types, enumerations,
required values, closed key sets). What is left are ranges and rules across keys, each stated
once, by the class that uses the value. So the check builds what a job builds, with the job's
own code (oodmix.runs.build.build_run: seeding, data module, objective, network, module and
optimiser, callbacks, logger, trainer), and the first refusal becomes the one line. The run
folder is pointed at a scratch folder that is removed afterwards, so that a constructor that
writes (a tracking store) writes nothing where the run will. A resumed run's checkpoint must
hold the same settings (oodmix.checkpoints.resume).

A multirun is checked before its first job: each combination of its swept config-group
options (from the command line and from the sweeper's parameters) is composed once, before
torch is imported, and each combination of its other swept values is set on it, where the
schema checks its type, and built: once per combination and not per seed, since a seed changes
no rule; each seed value is checked by the seeding's own rule. An interval (Optuna's search
space) has no values to list: a trial's values are checked by its job.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from oodmix.config.errors import ConfigError, describe
from oodmix.config.job import job_config
from oodmix.config.overrides import task_overrides
from oodmix.config.unused_settings import check_settings_used, run_label, sweeper_params


def check_job(config: DictConfig, values: Mapping[str, Any] | None = None) -> None:
    """Build what a job of `config` builds, writing nothing; the first refusal as ConfigError.
    `values` (key -> value) are set on the job first: a sweep's values, without composing
    again."""
    _check_built(config, _job(config, values or {}))


def _job(config: DictConfig, values: Mapping[str, Any]) -> DictConfig:
    """The task config of a job of `config` (a copy: the config Hydra runs is left as it made
    it), with `values` set on it."""
    job = job_config(config)
    _set_values(job, values)
    return job


def _check_built(config: DictConfig, job: DictConfig) -> None:
    """check_job for `job`, the task config of `config` (which has Hydra's section)."""
    from oodmix.runs.build import build_run
    from oodmix.runs.parts import refusals_as_config_errors

    hydra = HydraConfig.instance()
    before = hydra.cfg
    try:
        # The job's `${hydra:...}` values (its choices, in a title), as Hydra will set them.
        hydra.cfg = OmegaConf.masked_copy(config, "hydra")
        with tempfile.TemporaryDirectory(prefix="oodmix-check-") as scratch:
            job.output_dir = scratch
            try:
                # Every value read once, so that a bad interpolation is named by its key
                # (OmegaConf.resolve names none).
                for name in job:
                    if isinstance(job[name], (DictConfig, ListConfig)):
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


@dataclass
class SweepJobs:
    """The distinct jobs of a multirun: each config to compose (the fixed overrides with a
    combination of the swept config-group options), each combination of the other swept
    values (set on each composed config), and the seeds it sweeps."""

    composed: list[list[str]]
    values: list[dict[str, Any]]
    seeds: list[Any]


def sweep_jobs(config: DictConfig) -> SweepJobs:
    """The distinct jobs of the multirun whose base config is `config` (see SweepJobs)."""
    from hydra.core.override_parser.types import IntervalSweep

    groups = set(config.hydra.runtime.choices)
    fixed: list[str] = []
    swept_groups: list[list[str]] = []
    swept_values: dict[str, list[Any]] = {}
    seeds: list[Any] = []
    for override in _overrides(config):
        if not override.is_sweep_override():
            fixed.append(override.input_line)
        elif isinstance(override.value(), IntervalSweep):
            continue  # drawn by the sweeper while it runs (see the module docstring)
        elif override.key_or_group == "seed":
            seeds += list(override.sweep_iterator())
        elif override.key_or_group in groups:
            key = override.get_key_element()
            swept_groups.append([f"{key}={v}" for v in override.sweep_string_iterator()])
        else:
            key = override.get_key_element()  # +key adds it
            swept_values[key] = list(override.sweep_iterator())
    composed = [[*fixed, *choice] for choice in itertools.product(*swept_groups)]
    values = [dict(zip(swept_values, v)) for v in itertools.product(*swept_values.values())]
    return SweepJobs(composed, values, seeds)


def check_sweep(config: DictConfig) -> None:
    """Compose and build each distinct job of a multirun (see the module docstring); refuse
    a swept knob that some job would not use (oodmix.config.unused_settings)."""
    from hydra import compose

    jobs = sweep_jobs(config)
    name = config.hydra.job.config_name
    # Composed first: an unknown option or a swept value of the wrong type is refused before
    # torch is imported. The values are set on the composed config itself (ours to change),
    # where the schema checks their type as composing the job would; a job's copy is untyped.
    runs = []
    for overrides in jobs.composed:
        composed = compose(config_name=name, overrides=overrides, return_hydra_config=True)
        label = run_label(composed.hydra.runtime.choices)
        for values in jobs.values:
            _set_values(composed, values)
            runs.append((label, composed, _job(composed, values)))
    from oodmix.runs.build import check_seed  # imports torch and Lightning (seconds)
    from oodmix.runs.parts import refusals_as_config_errors

    with refusals_as_config_errors():
        for seed in jobs.seeds:
            check_seed(seed)
    searched = sweeper_params(config)
    every = task_overrides(config) + [f"{k}={v}" for k, v in searched.items()]
    check_settings_used([(label, job) for label, _, job in runs], every, searched=searched)
    for _, composed, job in runs:
        _check_built(composed, job)


def _set_values(config: DictConfig, values: Mapping[str, Any]) -> None:
    """Set each key (`+key`: a key the config does not have) to its value; a value the
    schema refuses as ConfigError."""
    try:
        for key, value in values.items():
            OmegaConf.update(config, key.lstrip("+"), value, force_add=key.startswith("+"))
    except OmegaConfBaseException as error:
        raise ConfigError(describe(error, []) or str(error)) from None
