"""A job's own config: what Hydra composed, without Hydra's section."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf


def job_config(cfg: DictConfig) -> DictConfig:
    """The task's config of a job: its composed config without Hydra's section (a copy that
    keeps the flags and the parent links interpolations need)."""
    return OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
