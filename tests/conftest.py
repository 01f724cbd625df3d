"""Shared fixtures: configs composed with Hydra exactly as `oodmix-train` composes them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from oodmix.config.paths import config_dir

# Short runs: the shipped data and model, fewer epochs, no logger files.
FAST = ["trainer.max_epochs=3"]


@pytest.fixture
def compose_config(tmp_path: Path) -> Iterator[Callable[..., DictConfig]]:
    """compose_config(*overrides, run="run") -> the run config, its run folder tmp_path/<run>.

    The Hydra config is registered as a real run would have it, so `${hydra:...}`
    interpolations and the config-group choices (loss name) resolve.
    """

    def _compose(*overrides: str, fast: bool = True, run: str = "run") -> DictConfig:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = compose(
                "train",
                overrides=[*(FAST if fast else []), *overrides],
                return_hydra_config=True,
            )
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(tmp_path / run)
            cfg.hydra.job.num = 0
        HydraConfig.instance().set_config(cfg)
        return cfg

    yield _compose
    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None
