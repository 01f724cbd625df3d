"""MemberSelection.member_f1: each member's validation F1 is the one its solo run would log,
counted by oodmix.metrics' one rule and checked here against a hand count."""

from __future__ import annotations

import pytest
import torch

from oodmix.detectors.max_logit import MaxLogitScore
from oodmix.detectors.max_softmax import MaxSoftmaxScore
from oodmix.metrics import ScoreBank, ThresholdDetection, best_f1_threshold, threshold_counts
from oodmix.metrics.threshold_f1 import precision_recall_f1
from oodmix.stacking.selection import MemberSelection

K, N = 4, 40


def member_outputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (K, N, 2) on a coarse grid, so that scores tie within a member, and is_id (K, N)."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randint(-6, 7, (K, N, 2), generator=generator).float() / 2
    is_id = torch.rand(K, N, generator=generator) < 0.5
    is_id[0] = False  # a member without ID points: F1 = 0 (nothing positive)
    return logits, is_id


def hand_f1(scores: list[float], is_id: list[bool], delta: float) -> float:
    """2 tp / (2 tp + fp + fn), ID positive, of "ID when score >= delta", counted one by one."""
    tp = fp = fn = 0
    for score, truth in zip(scores, is_id):
        if score >= delta and truth:
            tp += 1
        elif score >= delta:
            fp += 1
        elif truth:
            fn += 1
    return 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 0.0


def as_float32(value: float) -> float:
    return torch.tensor(value, dtype=torch.float32).item()


def test_a_fixed_threshold_members_f1_is_counted_at_its_delta_as_its_solo_run_counts() -> None:
    logits, is_id = member_outputs()
    detector = MaxSoftmaxScore()
    scores = detector(logits)  # (K, N) float32
    # Below every score (member 0 has no ID point), one of the member's own scores (a tie,
    # decided by >=), the paper's 0.8, and above every score.
    deltas = [0.0, float(scores[1, 3]), 0.8, 1.5]
    f1 = MemberSelection(detector, deltas).member_f1(scores, is_id)
    assert f1.dtype == torch.float64 and f1.shape == (K,)
    for k, delta in enumerate(deltas):
        member_scores, member_is_id = scores[k].tolist(), is_id[k].tolist()
        # The scores are float32: delta is compared rounded to float32, as torch does.
        by_hand = hand_f1(member_scores, member_is_id, as_float32(delta))
        assert f1[k].item() == as_float32(by_hand)  # logged as float32, as the solo run's
        solo = ThresholdDetection(delta)
        solo.update(scores[k], is_id[k])
        assert f1[k].item() == solo.compute()["f1"].item()
    assert f1[0] == 0.0 and 0 < f1[1] < 1 and 0 < f1[2] < 1 and f1[3] == 0.0


def test_a_tuned_members_f1_is_the_best_over_its_thresholds_as_its_solo_run_finds() -> None:
    logits, is_id = member_outputs(seed=1)
    detector = MaxLogitScore()
    scores = detector(logits)  # (K, N) float32, many ties
    f1 = MemberSelection(detector, [0.5] * K).member_f1(scores, is_id)  # deltas unused here
    assert f1.dtype == torch.float64 and f1.shape == (K,)
    for k in range(K):
        member_scores, member_is_id = scores[k].tolist(), is_id[k].tolist()
        by_hand = max(hand_f1(member_scores, member_is_id, d) for d in set(member_scores))
        assert f1[k].item() == by_hand
        # The solo run: the score bank (float64), its best threshold, and val/f1 counted there.
        bank = ScoreBank()
        bank.update(scores[k], is_id[k])
        bank_scores, bank_is_id = bank.compute()
        delta_best, best = best_f1_threshold(bank_scores, bank_is_id)
        assert f1[k].item() == best
        solo = precision_recall_f1(*threshold_counts(bank_scores, bank_is_id, delta_best)[:3])
        assert f1[k].float() == solo["f1"]  # the solo run logs it as float32
    assert f1[0] == 0.0 and (f1[1:] > 0).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_a_delta_is_rounded_to_the_scores_dtype_as_in_the_solo_run(dtype) -> None:
    delta = 0.8  # not a float16 or bfloat16 number: rounded to one just below or above it
    rounded = torch.tensor(delta, dtype=dtype)
    scores = torch.stack([rounded, rounded.nextafter(torch.tensor(0.0, dtype=dtype))])
    scores = scores.expand(2, 2).clone()  # 2 members, each: the rounded delta, and just below
    is_id = torch.tensor([[True, True], [True, False]])
    f1 = MemberSelection(MaxSoftmaxScore(), [delta, delta]).member_f1(scores, is_id)
    for k in range(2):
        solo = ThresholdDetection(delta)
        solo.update(scores[k], is_id[k])
        assert f1[k].item() == solo.compute()["f1"].item()
    assert f1.tolist() == [as_float32(2 / 3), 1.0]  # the rounded delta itself is ID
