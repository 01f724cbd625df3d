"""Threshold detection (predicted ID when score >= delta) scored by precision, recall and F1."""

from __future__ import annotations

import pytest
import torch

from oodmix.metrics import ThresholdDetection, precision_recall_f1

# A hand-made example at delta = 0.8. The third score is exactly delta: predicted ID.
SCORES = [0.95, 0.85, 0.8, 0.79, 0.3, 0.9, 0.81, 0.1, 0.5, 0.2]
IS_ID = [True, True, True, True, True, False, False, False, False, False]
#  predicted ID (score >= 0.8): T T T F F T T F F F
#  positive "id":  tp = 3, fp = 2, fn = 2, tn = 3
#  positive "ood": tp = 3 (true OOD, predicted OOD), fp = 2 (ID predicted OOD), fn = 2
#  The numbers coincide by design of the split; the second example below breaks the symmetry.


def plain_counts(scores, is_id, delta, positive):
    """tp, fp, fn counted with Python loops."""
    tp = fp = fn = 0
    for s, truth in zip(scores, is_id, strict=True):
        pred = s >= delta
        if positive == "ood":
            pred, truth = not pred, not truth
        tp += pred and truth
        fp += pred and not truth
        fn += (not pred) and truth
    return tp, fp, fn


def plain_prf(tp, fp, fn):
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def assert_result(result, precision, recall, f1, tol=1e-6):
    assert abs(result["precision"].item() - precision) < tol
    assert abs(result["recall"].item() - recall) < tol
    assert abs(result["f1"].item() - f1) < tol


def run(scores, is_id, delta, positive="id", dtype=torch.float32):
    metric = ThresholdDetection(delta, positive=positive)
    metric.update(torch.tensor(scores, dtype=dtype), torch.tensor(is_id))
    return metric


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_hand_example(dtype):
    """tp = 3, fp = 2, fn = 2 either way: P = R = F1 = 3/5; the score equal to delta is ID."""
    metric = run(SCORES, IS_ID, 0.8, "id", dtype)
    assert (metric.tp.item(), metric.fp.item(), metric.fn.item(), metric.tn.item()) == (3, 2, 2, 3)
    assert_result(metric.compute(), 0.6, 0.6, 0.6)
    metric = run(SCORES, IS_ID, 0.8, "ood", dtype)
    assert (metric.tp.item(), metric.fp.item(), metric.fn.item(), metric.tn.item()) == (3, 2, 2, 3)
    assert_result(metric.compute(), 0.6, 0.6, 0.6)


def test_boundary_score_counts_as_id():
    """A single ID point with score == delta is a true positive (not a miss, as with `>`)."""
    result = run([0.8], [True], 0.8).compute()
    assert_result(result, 1.0, 1.0, 1.0)
    result = run([0.8], [True], 0.8, "ood").compute()
    assert_result(result, 0.0, 0.0, 0.0)


def test_asymmetric_example_both_positives():
    """delta = 0.5, scores/labels chosen so that the two conventions give different numbers.

    predicted ID:  [T, T, T, T, F, T, F, F]  (0.5 exactly is ID)
    truth ID:      [T, T, T, F, T, F, F, F]
    positive id:  tp 3, fp 2, fn 1 -> P = 3/5, R = 3/4, F1 = 6/9
    positive ood: tp 2, fp 1, fn 2 -> P = 2/3, R = 2/4, F1 = 4/7
    """
    scores = [0.9, 0.7, 0.5, 0.6, 0.2, 0.55, 0.1, 0.49]
    is_id = [True, True, True, False, True, False, False, False]
    assert_result(run(scores, is_id, 0.5, "id").compute(), 3 / 5, 3 / 4, 6 / 9)
    assert_result(run(scores, is_id, 0.5, "ood").compute(), 2 / 3, 2 / 4, 4 / 7)


@pytest.mark.parametrize("positive", ["id", "ood"])
def test_random_example_matches_plain_python_count(positive):
    """On 300 random scores, the metric equals counts made with Python loops."""
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(300, generator=g, dtype=torch.float64)
    is_id = torch.rand(300, generator=g) < 0.4
    delta = 0.6
    metric = ThresholdDetection(delta, positive=positive)
    metric.update(scores, is_id)
    tp, fp, fn = plain_counts(scores.tolist(), is_id.tolist(), delta, positive)
    assert (metric.tp.item(), metric.fp.item(), metric.fn.item()) == (tp, fp, fn)
    assert_result(metric.compute(), *plain_prf(tp, fp, fn))


def test_accumulation_over_updates_equals_one_update():
    """Several update() calls give the same counts and result as one on the concatenation."""
    g = torch.Generator().manual_seed(1)
    scores = torch.rand(100, generator=g)
    is_id = torch.rand(100, generator=g) < 0.5
    once = ThresholdDetection(0.7)
    once.update(scores, is_id)
    chunked = ThresholdDetection(0.7)
    for start, end in [(0, 13), (13, 50), (50, 51), (51, 100)]:
        chunked.update(scores[start:end], is_id[start:end])
    for name in ("tp", "fp", "fn", "tn"):
        assert getattr(once, name).item() == getattr(chunked, name).item()
    tp, fp, fn = plain_counts(scores.tolist(), is_id.tolist(), 0.7, "id")
    assert_result(chunked.compute(), *plain_prf(tp, fp, fn))


def test_zero_division_gives_zero():
    """Nothing predicted ID and no ID points: every ratio is 0, not NaN."""
    result = run([0.1, 0.2], [False, False], 0.8).compute()
    assert_result(result, 0.0, 0.0, 0.0)
    # ID points exist but none is predicted ID: precision 0/0 -> 0, recall 0/2 = 0.
    result = run([0.1, 0.2], [True, True], 0.8).compute()
    assert_result(result, 0.0, 0.0, 0.0)


def test_reset_clears_counts():
    """After reset() the metric only sees the new data."""
    metric = run(SCORES, IS_ID, 0.8)
    metric.reset()
    assert (metric.tp.item(), metric.fp.item(), metric.fn.item(), metric.tn.item()) == (0, 0, 0, 0)
    metric.update(torch.tensor([0.9, 0.9, 0.1]), torch.tensor([True, False, True]))
    # tp 1, fp 1, fn 1 -> P = R = F1 = 1/2
    assert_result(metric.compute(), 0.5, 0.5, 0.5)


def test_scores_outside_unit_interval_are_not_squashed():
    """delta = 2.0: a score of 2.5 is ID, 2.0 is ID, 1.5 and -3 are OOD (no sigmoid applied)."""
    result = run([2.5, 2.0, 1.5, -3.0], [True, True, False, False], 2.0).compute()
    assert_result(result, 1.0, 1.0, 1.0)
    # Scores in logit range with a threshold inside [0, 1]: 0.7 < 0.8 stays OOD.
    result = run([0.7, 5.0], [False, True], 0.8).compute()
    assert_result(result, 1.0, 1.0, 1.0)


def test_invalid_arguments():
    """positive must be "id" or "ood", delta finite, scores and labels the same shape."""
    with pytest.raises(ValueError, match="positive"):
        ThresholdDetection(0.8, positive="in")
    with pytest.raises(ValueError, match="delta"):
        ThresholdDetection(float("nan"))
    with pytest.raises(ValueError, match="shape"):
        ThresholdDetection(0.8).update(torch.rand(3), torch.ones(4, dtype=torch.bool))


def test_precision_recall_f1_direct():
    """tp 3, fp 1, fn 2: P = 3/4, R = 3/5, F1 = 6/9; zero denominators give 0."""
    t = torch.tensor
    assert_result(precision_recall_f1(t(3), t(1), t(2)), 0.75, 0.6, 6 / 9)
    assert_result(precision_recall_f1(t(0), t(0), t(0)), 0.0, 0.0, 0.0)
    assert_result(precision_recall_f1(t(0), t(2), t(0)), 0.0, 0.0, 0.0)
    assert_result(precision_recall_f1(t(0), t(0), t(5)), 0.0, 0.0, 0.0)
    assert_result(precision_recall_f1(t(5), t(0), t(0)), 1.0, 1.0, 1.0)
    # Large counts stay exact enough (double arithmetic inside).
    assert_result(precision_recall_f1(t(10**7), t(10**7), t(0)), 0.5, 1.0, 2 / 3)
