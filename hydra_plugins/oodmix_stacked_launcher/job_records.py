"""A group's jobs started and ended as Hydra's run_job starts and ends a job, for all at once.

For each job, Hydra's `run_job` (hydra.core.utils) registers its config, makes its folder,
writes `.hydra/config.yaml`, `hydra.yaml` and `overrides.yaml`, opens its log file, calls the
callbacks' on_job_start, runs the task, then calls on_job_end with its JobReturn. Done job by
job, that is two deep copies of the config, two registrations (copies of Hydra's section) and
three YAML dumps, about 50 ms a job, more than a member's share of the fit. A group's jobs
differ in a few values only, so here:

    the records     are OmegaConf.to_yaml of each job's config, made from one dump for the
                    group (oodmix.stacking.yaml_texts) and written atomically
    the registration is the job's config itself (oodmix.runs.context.make_current_job)
    the log file    each file handler of hydra.job_logging creates its file (empty; the group
                    logs to the sweep's log, as before)
    the callbacks   on_job_start for every job before the group trains, on_job_end for every
                    job after it, with the job's result (run_job calls both around its task)

tests/stacking/test_job_records.py compares such a job folder file by file with run_job's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobRuntime, _flush_loggers, env_override
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


@contextmanager
def as_current_job(cfg: DictConfig) -> Iterator[None]:
    """`cfg` as Hydra's registered config (what `${hydra:...}` and HydraConfig.get() read)
    without copying it; the one registered before comes back afterwards."""
    from oodmix.runs.context import make_current_job

    instance = HydraConfig.instance()
    outer = instance.cfg
    make_current_job(cfg)
    try:
        yield
    finally:
        instance.cfg = outer


def _log_files(cfg: DictConfig) -> list[Path]:
    """The files hydra.job_logging's handlers write (opened when run_job configures logging;
    a handler with delay=true opens its file only when it first writes)."""
    handlers = OmegaConf.select(cfg, "hydra.job_logging.handlers") or {}
    return [
        Path(str(handler.filename))
        for handler in handlers.values()
        if isinstance(handler, DictConfig) and "filename" in handler and not handler.get("delay")
    ]


def start_jobs(
    configs: Sequence[DictConfig], hydra_context: HydraContext, task_function: TaskFunction
) -> list[JobReturn]:
    """Each job's folder, records and log file, and the callbacks' on_job_start, as run_job
    makes them before it runs the task; the jobs' JobReturns (their results come later:
    `end_jobs`). Each config holds its job's folder in hydra.runtime.output_dir."""
    from oodmix.files import write_text_atomic
    from oodmix.stacking.yaml_texts import yaml_texts

    containers = [OmegaConf.to_container(cfg, resolve=False, enum_to_str=True) for cfg in configs]
    hydra_sections = [{"hydra": container.pop("hydra")} for container in containers]
    overrides = [list(cfg.hydra.overrides.task) for cfg in configs]
    records = zip(
        yaml_texts(containers), yaml_texts(hydra_sections), yaml_texts(overrides), strict=True
    )
    returns = []
    for cfg, (task_yaml, hydra_yaml, overrides_yaml), own in zip(configs, records, overrides):
        with as_current_job(cfg):
            output_dir = Path(str(cfg.hydra.runtime.output_dir))
            output_dir.mkdir(parents=True, exist_ok=True)
            for log_file in _log_files(cfg):
                log_file.parent.mkdir(parents=True, exist_ok=True)
                log_file.touch()
            if cfg.hydra.output_subdir is not None:
                record = output_dir / str(cfg.hydra.output_subdir)
                write_text_atomic(record / "config.yaml", task_yaml)
                write_text_atomic(record / "hydra.yaml", hydra_yaml)
                write_text_atomic(record / "overrides.yaml", overrides_yaml)
            # The task config (ret.cfg) is the group's to fill in: it resolves each job's. A
            # group's jobs run in the sweep's working directory (no chdir).
            ret = JobReturn(overrides=own, hydra_cfg=cfg, working_dir=os.getcwd())
            with env_override(cfg.hydra.job.env_set):
                hydra_context.callbacks.on_job_start(config=cfg, task_function=task_function)
            ret.task_name = JobRuntime.instance().get("name")
        returns.append(ret)
    return returns


def end_jobs(
    configs: Sequence[DictConfig], returns: Sequence[JobReturn], hydra_context: HydraContext
) -> None:
    """The callbacks' on_job_end for each job of a trained group, with its result."""
    _flush_loggers()
    for cfg, ret in zip(configs, returns, strict=True):
        with as_current_job(cfg):
            hydra_context.callbacks.on_job_end(config=cfg, job_return=ret)
