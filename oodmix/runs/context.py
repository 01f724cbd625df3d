"""What Hydra says about the run in progress: the config-group options it was composed from,
and whether it is a job of a multirun (and of which launcher)."""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


def choice(group: str, fallback: str) -> str:
    """The config-group option this run uses (e.g. loss=ce_kl), when Hydra composed it."""
    if HydraConfig.initialized():
        chosen = HydraConfig.get().runtime.choices.get(group)
        if chosen:
            return str(chosen)
    return fallback


def in_multirun() -> bool:
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def in_stacked_sweep() -> bool:
    """Whether this run is a job of a multirun under the stacked launcher (which can continue
    a stopped sweep, hydra.launcher.resume=true)."""
    if not in_multirun():
        return False
    target = str(HydraConfig.get().launcher.get("_target_", ""))
    return target.endswith(".StackedLauncher")


def failure_file() -> Path:
    """<the current job's folder>/failure.json."""
    from oodmix.reporting.jobs import FAILURE_FILE

    return Path(HydraConfig.get().runtime.output_dir) / FAILURE_FILE


def make_current_job(cfg: DictConfig) -> None:
    """Register a job's composed config as Hydra's current one, what `${hydra:...}` and
    HydraConfig.get() read, as Hydra's run_job registers it (HydraConfig.set_config) but
    without copying Hydra's section (milliseconds a job, in a group of thousands): the config
    itself is registered, its `hydra` section made read-only as set_config makes it."""
    from omegaconf import OmegaConf

    OmegaConf.set_readonly(cfg.hydra, True)
    HydraConfig.instance().cfg = cfg  # type: ignore[assignment]
