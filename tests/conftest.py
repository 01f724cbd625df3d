"""Shared fixtures and checks: configs composed with Hydra exactly as `oodmix-train` composes
them, one torch thread per test process, and the check that keeps `pytest -m "not slow"` fast."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from console_scripts import python_program
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from oodmix.config.paths import config_dir

# One torch thread per process (unless set): the tests run in one process per core (pytest-xdist)
# and start processes of their own, and the networks are too small to gain from more threads;
# several threads per process on shared cores only make each one wait (about 10 % slower).
# Set before anything imports torch, so this process and every process it starts agree.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# pytester: tests/test_slow_marks.py runs small pytest sessions with this conftest.
pytest_plugins = ("pytester",)

# Short runs: the shipped data and model, fewer epochs, and no confidence map (drawing its PNG
# takes longer than the 3 epochs) unless the test sets `plots` itself.
FAST = ["trainer.max_epochs=3", "plots=false"]


def shorter(overrides: tuple[str, ...]) -> list[str]:
    """The FAST overrides that `overrides` do not set themselves."""
    given = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    return [o for o in FAST if o.split("=", 1)[0] not in given]


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
                overrides=[*(shorter(overrides) if fast else []), *overrides],
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


@pytest.fixture
def multirun_config(tmp_path: Path) -> Iterator[Callable[..., DictConfig]]:
    """multirun_config(*overrides) -> a multirun's config as Hydra gives it to
    on_multirun_start: composed with the fixed overrides, all of them in hydra.overrides.task,
    its sweep folder tmp_path/sweep. Hydra stays initialised for the test, as it is while a
    multirun starts (oodmix.config.preflight.check_sweep composes each job)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    def _compose(*overrides: str) -> DictConfig:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
        fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
        GlobalHydra.instance().clear()
        initialize_config_dir(config_dir=str(config_dir()), version_base="1.3")
        cfg = compose("train", overrides=fixed, return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.overrides.task = list(overrides)
            cfg.hydra.sweep.dir = str(tmp_path / "sweep")
        return cfg

    yield _compose
    GlobalHydra.instance().clear()


# ---------------------------------------------------------------------------------------------
# The inner loop (`pytest -m "not slow"`) stays fast: a test that starts a Python process (about
# 5.5 s of imports for an oodmix console script) or trains more than one run is marked slow, and
# this hook fails an unmarked test that does either, so a new test cannot slow the tier down.


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """In the body of a test not marked slow, starting a Python process (seconds of imports
    each) or calling Lightning's Trainer.fit a second time fails the test.

    Only the body is watched: fixtures are set up before it, so a session fixture that trains
    one run for many tests counts for none of them. Trainer.fit is watched when Lightning is
    already imported (in a whole run, by the collected test modules); importing it here would
    add seconds to a run of a few tests that never train.
    """
    if item.get_closest_marker("slow") is not None:
        return (yield)

    def refuse_python(self, args, *rest, **kwargs):
        program = python_program(args)
        if program is not None:
            pytest.fail(
                f"{item.nodeid} starts a Python process ({program}) but is not marked slow: run "
                "the entry point in this process (tests/console_scripts.py) or mark the test "
                "@pytest.mark.slow",
                pytrace=False,
            )
        saved_popen(self, args, *rest, **kwargs)

    fits: list[None] = []
    lightning = sys.modules.get("lightning")
    real_fit = lightning.Trainer.fit if lightning is not None else None

    def counting_fit(trainer, *args, **kwargs):
        fits.append(None)
        if len(fits) > 1:
            pytest.fail(
                f"{item.nodeid} trains more than one run (a second Trainer.fit) but is not "
                "marked slow: share a trained run through a fixture or mark the test "
                "@pytest.mark.slow",
                pytrace=False,
            )
        return real_fit(trainer, *args, **kwargs)

    saved_popen = subprocess.Popen.__init__
    subprocess.Popen.__init__ = refuse_python
    if lightning is not None:
        lightning.Trainer.fit = counting_fit
    try:
        return (yield)
    finally:
        subprocess.Popen.__init__ = saved_popen
        if lightning is not None:
            lightning.Trainer.fit = real_fit
