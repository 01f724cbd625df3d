"""Train one group of a sweep's jobs (see oodmix.stacking.groups) and write each job's folder.

`train_group` is what the stacked launcher calls for a group: it receives the jobs' composed
configs (each with its Hydra section, its folder already made and recorded in
hydra.runtime.output_dir) and returns, per job, the value a sweeper optimises, or None for a
job that failed (its folder then holds failure.json, as with any launcher).
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf


def job_config(cfg: DictConfig) -> DictConfig:
    """The task's config of a job: its composed config without Hydra's section."""
    return OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])


def train_group(configs: Sequence[DictConfig]) -> list[float | None]:
    """Train the jobs of one group; each job's folder gets what a solo run writes."""
    from oodmix.train import run_job_task

    values = []
    for cfg in configs:
        HydraConfig.instance().set_config(cfg)
        values.append(run_job_task(job_config(cfg)))
    return values
