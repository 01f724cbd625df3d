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
