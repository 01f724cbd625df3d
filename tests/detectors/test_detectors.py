"""Detection scores against hand-computed values, their direction, and their config files."""

from __future__ import annotations

import math

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from oodmix.config.paths import config_dir
from oodmix.detectors import EnergyScore, MaxLogitScore, MaxSoftmaxScore, NegativeEntropyScore

E = math.e
# Logits [1, 3]: softmax p = (e, e^3) / (e + e^3).
P_LOW, P_HIGH = E / (E + E**3), E**3 / (E + E**3)


def score(detector, rows):
    """The detector's scores of float64 logits, as Python floats."""
    return detector(torch.tensor(rows, dtype=torch.float64)).tolist()


def test_max_softmax_by_hand():
    """msp([1, 3]) = e^3 / (e + e^3); msp([0, 0, 0]) = 1/3."""
    assert score(MaxSoftmaxScore(), [[1.0, 3.0]]) == pytest.approx([P_HIGH], rel=1e-12)
    assert score(MaxSoftmaxScore(), [[0.0, 0.0, 0.0]]) == pytest.approx([1 / 3], rel=1e-12)


def test_max_logit_by_hand():
    """max_logit([1, 3]) = 3, also for negative and several-class logits."""
    rows = [[1.0, 3.0, 0.0], [-4.0, -2.5, -7.0], [12.0, 11.0, -1.0]]
    assert score(MaxLogitScore(), rows) == [3.0, -2.5, 12.0]


def test_energy_by_hand():
    """T=1: log(e + e^3); T=2: 2 log(e^0.5 + e^1.5)."""
    assert score(EnergyScore(), [[1.0, 3.0]]) == pytest.approx([math.log(E + E**3)], rel=1e-12)
    assert score(EnergyScore(temperature=2.0), [[1.0, 3.0]]) == pytest.approx(
        [2 * math.log(E**0.5 + E**1.5)], rel=1e-12
    )


def test_energy_large_logits_do_not_overflow():
    """Logits around 1000 (e^1000 overflows): log(e^1000 + e^999) = 1000 + log(1 + 1/e)."""
    assert score(EnergyScore(), [[1000.0, 999.0]]) == pytest.approx(
        [1000 + math.log(1 + 1 / E)], rel=1e-12
    )
    scores = EnergyScore()(torch.tensor([[1000.0, 999.0]], dtype=torch.float32))
    assert torch.isfinite(scores).all()


def test_negative_entropy_by_hand():
    """sum_k p_k log p_k of softmax([1, 3]); -log 3 for uniform logits over 3 classes."""
    expected = P_LOW * math.log(P_LOW) + P_HIGH * math.log(P_HIGH)
    assert score(NegativeEntropyScore(), [[1.0, 3.0]]) == pytest.approx([expected], rel=1e-12)
    assert score(NegativeEntropyScore(), [[0.0, 0.0, 0.0]]) == pytest.approx(
        [-math.log(3)], rel=1e-12
    )


@pytest.mark.parametrize(
    "detector",
    [MaxSoftmaxScore(), MaxLogitScore(), EnergyScore(), EnergyScore(0.5), NegativeEntropyScore()],
    ids=["msp", "max_logit", "energy", "energy-T0.5", "entropy"],
)
def test_batch_gives_one_score_per_row(detector):
    """(N, K) logits -> N scores, each as the row alone would get."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 3, generator=generator, dtype=torch.float64) * 4
    scores = detector(logits)
    assert scores.shape == (5,)
    for i in range(5):
        assert scores[i].item() == pytest.approx(detector(logits[i : i + 1]).item(), rel=1e-12)


@pytest.mark.parametrize(
    "detector",
    [MaxSoftmaxScore(), MaxLogitScore(), EnergyScore(), EnergyScore(3.0), NegativeEntropyScore()],
    ids=["msp", "max_logit", "energy", "energy-T3", "entropy"],
)
def test_confident_prediction_scores_higher(detector):
    """[0, 5] (confident) scores above [0, 0] (undecided), and [0, 9] above [0, 5]."""
    undecided, confident, very = score(detector, [[0.0, 0.0], [0.0, 5.0], [0.0, 9.0]])
    assert undecided < confident < very


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan")])
def test_energy_temperature_must_be_positive(temperature):
    """T <= 0 (or NaN) is refused with a message naming the temperature."""
    with pytest.raises(ValueError, match="temperature"):
        EnergyScore(temperature=temperature)


def test_only_msp_has_a_fixed_threshold():
    """delta has a meaning on the probability scale only."""
    fixed = {
        cls.__name__: cls.fixed_threshold
        for cls in (MaxSoftmaxScore, MaxLogitScore, EnergyScore, NegativeEntropyScore)
    }
    assert fixed == {
        "MaxSoftmaxScore": True,
        "MaxLogitScore": False,
        "EnergyScore": False,
        "NegativeEntropyScore": False,
    }


CONFIGS = {
    "msp": MaxSoftmaxScore,
    "max_logit": MaxLogitScore,
    "energy": EnergyScore,
    "entropy": NegativeEntropyScore,
}


def test_every_detector_config_is_known():
    """conf/detector holds exactly the configs checked below."""
    assert {p.stem for p in (config_dir() / "detector").glob("*.yaml")} == set(CONFIGS)


@pytest.mark.parametrize(("name", "cls"), list(CONFIGS.items()))
def test_detector_config_instantiates(name, cls):
    """conf/detector/<name>.yaml builds the right class, which scores logits."""
    detector = instantiate(OmegaConf.load(config_dir() / "detector" / f"{name}.yaml"))
    assert type(detector) is cls
    assert detector(torch.tensor([[1.0, 3.0]])).shape == (1,)


def test_energy_config_is_the_paper_temperature():
    """The shipped energy config uses T = 1 (Liu et al.)."""
    detector = instantiate(OmegaConf.load(config_dir() / "detector" / "energy.yaml"))
    assert detector.temperature == 1.0
