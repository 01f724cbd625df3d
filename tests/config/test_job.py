"""A job's config without Hydra's section, and what its interpolations refer to."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from oodmix.config.job import job_config, references, refers_to


def test_job_config_leaves_out_hydra_and_keeps_interpolations() -> None:
    cfg = OmegaConf.create({"beta": 0.5, "loss": {"beta": "${beta}"}, "hydra": {"job": {"num": 3}}})
    job = job_config(cfg)
    assert list(job) == ["beta", "loss"]
    assert job.loss.beta == 0.5  # still resolves against its root
    assert "hydra" in cfg  # the composed config is left as it was


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("${beta}", ["beta"]),
        ("${oc.select:mixup.pairs,null}", ["oc.select:mixup.pairs,null"]),
        ("${hydra:runtime.output_dir}/checkpoints", ["hydra:runtime.output_dir"]),
        ("seed ${seed}, lr ${model.lr}", ["seed", "model.lr"]),
        ("${oc.env:${name}}", ["name"]),  # the innermost only
        ("no interpolation", []),
    ],
)
def test_references_are_the_innermost_interpolations(text, found) -> None:
    assert references(text) == found


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("${beta}", "beta", True),
        ("${mixup.pairs}", "mixup", True),  # a key below it
        ("${oc.select:mixup.pairs,null}", "mixup.pairs", True),
        ("${oc.select:mixup.pairs,null}", "mixup", True),
        ("${betas}", "beta", False),  # another key that starts alike
        ("${mixup_alpha}", "mixup", False),
        ("{'x': '${seed}', 'y': 1}", "seed", True),  # a container written out
        ("beta", "beta", False),  # not an interpolation
    ],
)
def test_refers_to_a_key_directly_or_through_oc_select(text, key, expected) -> None:
    assert refers_to(text, key) is expected


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
    from oodmix.config.job import resolved_job_configs

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
    from oodmix.config.job import resolved_job_configs

    jobs = like_jobs()[:3]
    made = resolved_job_configs(jobs, lambda k: _register(jobs[k]))
    made[1].fixed.lr = 1.0
    made[1].model.hidden[0] = 7
    assert made[0].fixed.lr == made[2].fixed.lr == 0.001 and made[2].model.hidden[0] == 64


def test_only_interpolations_that_may_read_a_differing_value_are_read_again() -> None:
    from oodmix.config.job import _may_differ

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
