"""Two tiny training runs shared by the inference tests, each trained once per session:
the default detector (max softmax probability, fixed delta) and max_logit (tuned threshold)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from oodmix.config.paths import config_dir

QUICK = ["trainer.max_epochs=2", "plots=false"]


@dataclass(frozen=True)
class TrainedRun:
    """A finished run folder: <dir>/metrics.json, scores.npz, checkpoints/."""

    dir: Path

    @property
    def metrics(self) -> dict[str, Any]:
        return json.loads((self.dir / "metrics.json").read_text())

    @property
    def tested_ckpt(self) -> Path:
        """The checkpoint the run tested (test_ckpt=best: the best by val/f1)."""
        (path,) = (self.dir / "checkpoints").glob("best-*.ckpt")
        return path

    @property
    def config(self) -> dict[str, Any]:
        checkpoint = torch.load(self.tested_ckpt, map_location="cpu", weights_only=True)
        return checkpoint["hyper_parameters"]["config"]


def train_run(run_dir: Path, *overrides: str) -> TrainedRun:
    """Train `oodmix-train <overrides>` in this process, composed as tests/conftest.py does."""
    from oodmix.runs.job import train

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=[*QUICK, *overrides], return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    try:
        train(cfg)
    finally:
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None
    return TrainedRun(run_dir)


@pytest.fixture(scope="session")
def msp_run(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """The default objective and detector (max softmax probability, delta = 0.8)."""
    return train_run(tmp_path_factory.mktemp("inference") / "msp")


@pytest.fixture(scope="session")
def max_logit_run(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """detector=max_logit: the run tunes its threshold on validation data (val/delta_best)."""
    return train_run(tmp_path_factory.mktemp("inference") / "max_logit", "detector=max_logit")
