"""SiblingConfigs: a sweep job's config derived from a sibling's equals the one Hydra composes.

Each sweep below is loaded twice with Hydra's own config loader: every job composed by Hydra
(`ConfigLoaderImpl.load_sweep_config`), and through SiblingConfigs, which composes the first
job of each kind and derives the others. The two must be equal, Hydra's section included
(hydra.overrides.task, hydra.job.override_dirname, the choices), value for value and flag for
flag, without resolving anything.
"""

from __future__ import annotations

import itertools

import pytest
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.utils import create_config_search_path
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.oodmix_stacked_launcher.sibling_configs import SiblingConfigs
from oodmix.config.paths import config_dir


@pytest.fixture
def loader() -> ConfigLoaderImpl:
    GlobalHydra.instance().clear()
    return ConfigLoaderImpl(config_search_path=create_config_search_path(str(config_dir())))


def master(loader: ConfigLoaderImpl, *overrides: str) -> DictConfig:
    """The sweep's config, as `oodmix-train -m <overrides>` loads it before the sweep."""
    return loader.load_configuration("train", list(overrides), run_mode=RunMode.MULTIRUN)


def grid(**params: list[str]) -> list[list[str]]:
    """Every job's overrides of a grid, in the basic sweeper's order (key=value)."""
    keys = list(params)
    return [
        [f"{key}={value}" for key, value in zip(keys, values, strict=True)]
        for values in itertools.product(*params.values())
    ]


def assert_same(derived: DictConfig, composed: DictConfig) -> None:
    assert OmegaConf.to_container(derived) == OmegaConf.to_container(composed)
    for a, b in ((derived, composed), (derived.hydra, composed.hydra)):
        assert OmegaConf.is_struct(a) == OmegaConf.is_struct(b)
        assert OmegaConf.is_readonly(a) == OmegaConf.is_readonly(b)


SWEEPS = {
    "beta x alpha x seed": (
        (),
        grid(beta=["0.1", "3"], **{"mixup.alpha": ["0.2", "2"]}, seed=["0", "1"]),
    ),
    "objectives and seeds": ((), grid(loss=["ce_kl", "ce_kl_mixup"], seed=["0", "1", "2"])),
    "an objective's numbers": (
        (),
        grid(loss=["energy"], **{"loss.margin_in": ["-6", "-8"], "loss.weight": ["0.1", "1e-2"]}),
    ),
    "learning rate, delta, a string and null": (
        (),
        grid(
            **{"model.lr": ["0.001", "0.01"]},
            delta=["0.7", "0.9"],
            test_ckpt=["last", "best"],
            **{"data.ood_batch_size": ["null", "64"]},
        ),
    ),
    "experiment=paper": (("experiment=paper",), grid(loss=["ce", "ce_kl"], seed=["0", "1", "2"])),
    "with a fixed override and a hydra one": (
        ("plots=false", "hydra.job.chdir=false"),
        [[*job, "plots=false"] for job in grid(seed=["0", "1"], beta=["1", "3"])],
    ),
}


@pytest.mark.parametrize("name", list(SWEEPS))
def test_a_derived_job_config_is_the_composed_one(loader, name: str) -> None:
    master_overrides, jobs = SWEEPS[name]
    cfg = master(loader, *master_overrides)
    siblings = SiblingConfigs(loader)
    for job in jobs:
        assert_same(siblings.load_sweep_config(cfg, job), loader.load_sweep_config(cfg, job))
    kinds = {tuple(o for o in job if o.startswith("loss=")) for job in jobs}
    assert (siblings.composed, siblings.derived) == (len(kinds), len(jobs) - len(kinds))


def test_a_derived_config_does_not_share_its_siblings_nodes(loader) -> None:
    cfg = master(loader)
    siblings = SiblingConfigs(loader)
    first = siblings.load_sweep_config(cfg, ["seed=0"])
    second = siblings.load_sweep_config(cfg, ["seed=1"])
    first.model.lr = 123.0  # a launcher may set values in a job's config
    third = siblings.load_sweep_config(cfg, ["seed=2"])
    assert (second.seed, third.seed) == (1, 2)
    assert second.model.lr == third.model.lr == loader.load_sweep_config(cfg, ["seed=2"]).model.lr


@pytest.mark.parametrize(
    "jobs",
    [
        [["model.hidden=[64,64]"], ["model.hidden=[32]"]],  # not a plain value
        [["+extra=1"], ["+extra=2"]],  # adds a key
        [["++seed=1"], ["++seed=2"]],  # force-adds
        [["seed=1", "seed=2"], ["seed=3", "seed=4"]],  # a key set twice
        [["hydra.job.name=a"], ["hydra.job.name=b"]],  # Hydra's own section
        [["loss=ce"], ["loss=oe"]],  # a config group
    ],
    ids=["list", "add", "force-add", "twice", "hydra", "group"],
)
def test_other_differences_are_composed_by_hydra(loader, jobs: list[list[str]]) -> None:
    cfg = master(loader)
    siblings = SiblingConfigs(loader)
    for job in jobs:
        assert_same(siblings.load_sweep_config(cfg, job), loader.load_sweep_config(cfg, job))
    assert (siblings.composed, siblings.derived) == (len(jobs), 0)


def test_a_derived_config_takes_the_sweeps_resolved_values(loader) -> None:
    """As Hydra's load_sweep_config does, the values the sweep's config has resolved and cached
    (`${now:...}` in a sweep's folder name) are copied to each job's config, also those resolved
    after the sibling was composed."""
    clock = itertools.count()
    OmegaConf.register_new_resolver("sibling_test_clock", lambda: next(clock), use_cache=True)
    try:
        probe = "+probe=${sibling_test_clock:}"
        cfg = master(loader, probe)
        siblings = SiblingConfigs(loader)
        siblings.load_sweep_config(cfg, [probe, "seed=0"])
        resolved = cfg.probe  # resolved (and cached) by the sweep's config only now
        derived = siblings.load_sweep_config(cfg, [probe, "seed=1"])
        assert siblings.derived == 1 and derived.probe == resolved == 0
    finally:
        OmegaConf.clear_resolver("sibling_test_clock")
