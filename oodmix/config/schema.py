"""The shape of a run's config: the types, enumerations, required values and closed key sets
that Hydra and OmegaConf enforce themselves when they compose it.

`TrainConfig` is the schema of `conf/train.yaml` (its first default, `train_schema`): the root
knobs are typed (`seed=abc`, `beta=true`, `test_ckpt=first` and `mixup.colour=1` are refused by
OmegaConf while composing), and `???` marks a value the YAML must give. Ranges are not shapes:
each is stated by the class that uses the value, and the check before a run builds those
classes (oodmix.config.preflight). The config groups (data, loss, model, ...) are open here:
their keys are the arguments of the class they instantiate, which refuses what it cannot take.

Registered by the Hydra plugin package `hydra_plugins/oodmix_config_schema`, which Hydra
imports before it composes anything. Imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from omegaconf import MISSING

from oodmix.batch_parts import MixupPairs
from oodmix.console import Progress

# OmegaConf reads these annotations at run time: typing.Optional, not `X | None`, which it
# cannot read on Python 3.10.


class TestedWeights(str, Enum):
    """test_ckpt: which weights the test set sees. best: the checkpoint with the best
    monitored validation metric; last: the weights at the end of training."""

    best = "best"
    last = "last"

    def __str__(self) -> str:  # as typed on the command line, in messages and reports
        return self.value


@dataclass
class MixupConfig:
    """mixup: lam ~ Beta(alpha, alpha) (alpha: oodmix.data.mixup.Mixup), and which samples
    are mixed (null: the objective's own)."""

    alpha: float = MISSING
    pairs: MixupPairs | None = None


@dataclass
class TrainConfig:
    """The root of a run's config (conf/train.yaml says what each knob means)."""

    seed: int = MISSING
    beta: float = MISSING
    delta: float = MISSING
    mixup: MixupConfig | None = field(default_factory=MixupConfig)  # null: no mixup
    ckpt_path: str | None = None
    test_ckpt: TestedWeights = TestedWeights.best
    optimized_metric: str = MISSING
    plots: bool = True
    progress: Progress = Progress.auto
    quiet: Any = "auto"  # auto, true or false: OmegaConf has no such union (oodmix.console)
    output_dir: str = MISSING
    # Config groups: the arguments of what they instantiate.
    data: Any = MISSING
    loss: Any = MISSING
    model: Any = MISSING
    detector: Any = MISSING
    trainer: Any = MISSING
    callbacks: Any = None
    logger: Any = None


def register() -> None:
    """Store the schema in Hydra's ConfigStore as `train_schema`."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="train_schema", node=TrainConfig, provider="oodmix")
