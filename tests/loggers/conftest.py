"""A short real run with one logger: what the logger tests read back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from oodmix.runs.job import train

#: Two epochs (16 optimiser steps each with the default data: publish logs at steps 16 and
#: 32), settings other than the defaults so that the hyperparameters read back prove
#: something, and no figure.
SHORT = ["trainer.max_epochs=2", "plots=false", "seed=3", "beta=0.5"]


@pytest.fixture
def logged_run(compose_config) -> Callable[..., tuple[Path, dict[str, Any]]]:
    """logged_run(logger, *overrides) -> (run folder, the metrics train() returned, which
    are metrics.json's)."""

    def _run(logger: str, *overrides: str) -> tuple[Path, dict[str, Any]]:
        cfg = compose_config(f"logger={logger}", *SHORT, *overrides)
        metrics = train(cfg)
        return Path(cfg.output_dir), metrics

    return _run
