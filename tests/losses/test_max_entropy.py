"""The worked-example objective, ce_maxent: CE + beta * KL(p || U) on OOD inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from oodmix.losses.max_entropy import MaxEntropyLoss
from oodmix.runs.job import train


def test_value_by_hand() -> None:
    """logits [0, ln 3] -> p = (1/4, 3/4); KL(p || U) = sum p log(2 p); CE on class 1 = -log 3/4."""
    logits = torch.tensor([[0.0, math.log(3.0)]])
    batch = {"id": (logits, torch.tensor([1])), "ood": logits}
    terms = MaxEntropyLoss(beta=0.5)({"id": logits, "ood": logits}, batch)
    kl_rev = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    ce = -math.log(0.75)
    assert terms["kl_rev"].item() == pytest.approx(kl_rev, rel=1e-6)
    assert terms["ce"].item() == pytest.approx(ce, rel=1e-6)
    assert terms["loss"].item() == pytest.approx(ce + 0.5 * kl_rev, rel=1e-6)


def test_zero_for_uniform_ood_prediction() -> None:
    logits = torch.zeros(4, 3)
    terms = MaxEntropyLoss()({"id": logits, "ood": logits}, {"id": (logits, torch.zeros(4).long())})
    assert terms["kl_rev"].item() == pytest.approx(0.0, abs=1e-7)


def test_negative_beta_is_refused() -> None:
    with pytest.raises(ValueError, match="beta"):
        MaxEntropyLoss(beta=-0.1)


def test_trains_through_hydra(compose_config) -> None:
    """loss=ce_maxent works with no edit of the core: one class, one YAML."""
    cfg = compose_config("loss=ce_maxent", "trainer.max_epochs=2")
    metrics = train(cfg)
    assert metrics["loss"] == "ce_maxent"
    assert json.loads((Path(cfg.output_dir) / "metrics.json").read_text()) == metrics


def test_temperature_by_hand() -> None:
    """T = 2 halves the logits: [0, ln 9] / 2 = [0, ln 3], so p_T = (1/4, 3/4) as above."""
    logits = torch.tensor([[0.0, math.log(9.0)]])
    batch = {"id": (logits, torch.tensor([1])), "ood": logits}
    terms = MaxEntropyLoss(temperature=2.0)({"id": logits, "ood": logits}, batch)
    assert terms["kl_rev"].item() == pytest.approx(
        0.25 * math.log(0.5) + 0.75 * math.log(1.5), rel=1e-6
    )


def test_a_new_key_needs_no_edit_of_the_core(compose_config, multirun_config) -> None:
    """loss.temperature, a key no other objective has, is typed, ranged and refused by the
    class alone: the check before a run builds the objective, and the config package never
    names the key."""
    from oodmix.config.errors import ConfigError
    from oodmix.config.preflight import check_job, check_sweep

    config_package = Path(__file__).parents[2] / "oodmix" / "config"
    assert not [p for p in config_package.glob("*.py") if "temperature" in p.read_text()]
    check_job(compose_config("loss=ce_maxent", "loss.temperature=2"))
    expected = "loss.temperature=0 is not allowed: loss.temperature must be a finite number > 0"
    with pytest.raises(ConfigError) as single:
        check_job(compose_config("loss=ce_maxent", "loss.temperature=0"))
    assert str(single.value) == expected
    # A sweep over it is refused before its first job.
    sweep = multirun_config("loss=ce_maxent", "loss.temperature=2,0", "seed=0,1")
    with pytest.raises(ConfigError) as swept:
        check_sweep(sweep)
    assert str(swept.value) == expected
