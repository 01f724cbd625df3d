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
