"""Like configs resolved at once: each job's config as OmegaConf.resolve makes it, from a
copy of the first's with the differing values read again."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from oodmix.config.job import job_config


def _register(cfg):
    from hydra.core.hydra_config import HydraConfig

    OmegaConf.set_readonly(cfg.hydra, True)
    HydraConfig.instance().cfg = cfg


def _fully_resolved(cfg):
    job = job_config(cfg)
    OmegaConf.resolve(job)
    return job


@pytest.fixture
def hydra_resolver():
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.utils import setup_globals

    setup_globals()
    yield
    HydraConfig.instance().cfg = None


def like_jobs():
    """Jobs differing in values, read by interpolations (also through Hydra's section, into a
    container and inside longer text); the last has another shape."""
    jobs = []
    for k, (beta, title) in enumerate([(0.5, "a"), (1e-05, "b"), (3, "c c"), (0.5, "a")]):
        jobs.append(
            OmegaConf.create(
                {
                    "hydra": {"job": {"num": k}, "runtime": {"output_dir": f"/sweep/{k}"}},
                    "seed": k,
                    "beta": beta,
                    "title": title,
                    "output_dir": "${hydra:runtime.output_dir}",
                    "loss": {"beta": "${beta}", "name": "beta=${beta} seed=${seed}"},
                    "model": {"hidden": [64, "${seed}"], "net": "${data}"},
                    "data": {"n": 10, "tag": "${title}", "missing": "???"},
                    "fixed": {"lr": 0.001, "empty": {}, "same": "${fixed.lr}"},
                    "chain": "${loss.beta}",
                    "selected": "${oc.select:beta,1}",
                }
            )
        )
    jobs[-1].fixed.extra = 1
    return jobs


def test_resolved_job_configs_are_each_jobs_own_resolution(hydra_resolver) -> None:
    from oodmix.stacking.like_configs import resolved_job_configs

    jobs = like_jobs()
    expected = []
    for cfg in jobs:
        _register(cfg)
        expected.append(OmegaConf.to_container(_fully_resolved(cfg)))
    made = resolved_job_configs(jobs, lambda k: _register(jobs[k]))
    got = [OmegaConf.to_container(job) for job in made]
    assert got == expected
    # Values of their own type, not just equal ones (3 is not 3.0).
    assert [type(job.beta) for job in made] == [float, float, int, float]
    assert got[2]["loss"]["name"] == "beta=3 seed=2" and got[1]["output_dir"] == "/sweep/1"
    assert got[3]["model"]["net"]["tag"] == "a" and OmegaConf.is_missing(made[1].data, "missing")
    assert [job.chain for job in made] == [job.selected for job in made] == [0.5, 1e-05, 3, 0.5]
    assert all("hydra" not in job for job in made)


def test_resolving_a_copy_leaves_the_others_alone(hydra_resolver) -> None:
    from oodmix.stacking.like_configs import resolved_job_configs

    jobs = like_jobs()[:3]
    made = resolved_job_configs(jobs, lambda k: _register(jobs[k]))
    made[1].fixed.lr = 1.0
    made[1].model.hidden[0] = 7
    assert made[0].fixed.lr == made[2].fixed.lr == 0.001 and made[2].model.hidden[0] == 64


def test_only_interpolations_that_may_read_a_differing_value_are_read_again() -> None:
    from oodmix.stacking.like_configs import _may_differ

    interpolations = {
        ("a",): "${b}",  # b reads seed: read again
        ("b",): "${seed}",
        ("c",): "${model}",  # model.lr differs below it
        ("d",): "${model.hidden}",  # not model.lr
        ("e",): "${oc.select:seed,0}",
        ("f",): "${hydra:runtime.output_dir}",  # a resolver: always
        ("g",): "${..x}",  # relative: always
        ("h",): "lr ${model.lr} x",
        ("i",): "${fixed}",
    }
    assert _may_differ(interpolations, {("seed",), ("model", "lr")}) == {
        ("a",),
        ("b",),
        ("c",),
        ("e",),
        ("f",),
        ("g",),
        ("h",),
    }
    assert _may_differ(interpolations, set()) == {("f",), ("g",)}
