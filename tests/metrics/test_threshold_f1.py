"""The one counting rule ("ID when score >= delta") and the one F1 formula, and the three places
that report F1 at a threshold agreeing with them: ThresholdDetection, best_f1_threshold and the
F1-against-delta curves of a sweep."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from oodmix.metrics import (
    ThresholdDetection,
    best_f1_threshold,
    counts_at_thresholds,
    f1_at_thresholds,
    f1_from_counts,
    threshold_counts,
)
from oodmix.metrics.threshold_f1 import DIRECT_COMPARISONS
from oodmix.plots.sweeps import f1_against_threshold


def plain_counts(scores, is_id, delta):
    """(tp, fp, fn, tn), ID positive, counted one point at a time in Python floats."""
    tp = fp = fn = tn = 0
    for score, truth in zip(scores, is_id, strict=True):
        accepted = score >= delta
        tp += accepted and truth
        fp += accepted and not truth
        fn += truth and not accepted
        tn += not (accepted or truth)
    return tp, fp, fn, tn


def plain_f1(scores, is_id, delta):
    tp, fp, fn, _ = plain_counts(scores, is_id, delta)
    return 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 0.0


def random_case(seed, n=200):
    """Scores on a coarse grid (many ties, ID and OOD alike) and random labels."""
    rng = random.Random(seed)
    is_id = [rng.random() < 0.4 for _ in range(n)]
    scores = [round(rng.uniform(-1.0, 2.0), 1) for _ in range(n)]
    return scores, is_id


def as_tuple(counts):
    return tuple(tuple(int(v) for v in c.reshape(-1)) for c in counts)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n_deltas", [1, DIRECT_COMPARISONS, DIRECT_COMPARISONS + 1, 40])
def test_counts_match_a_plain_count(seed, n_deltas):
    """Both ways of counting (direct comparison for a few thresholds, sort and bisect for
    many) give the counts of a loop, deltas on score values (ties) and between them."""
    scores, is_id = random_case(seed)
    rng = random.Random(seed + 100)
    deltas = [
        rng.choice(scores) if k % 2 else round(rng.uniform(-1.2, 2.2), 3) for k in range(n_deltas)
    ]
    tp, fp, fn, tn = counts_at_thresholds(
        torch.tensor(scores, dtype=torch.float64),
        torch.tensor(is_id),
        torch.tensor(deltas, dtype=torch.float64),
    )
    expected = [plain_counts(scores, is_id, d) for d in deltas]
    assert [tuple(int(c[k]) for c in (tp, fp, fn, tn)) for k in range(n_deltas)] == expected
    assert tp.shape == (n_deltas,)


def test_hand_counts_and_f1():
    """delta 0.5 on scores .2 .5 .5 .9 .7 (ID 1 1 0 0 1): the two 0.5s are accepted;
    tp 2 (.5, .7), fp 2 (.5, .9), fn 1 (.2), tn 0; F1 = 4 / 7. Above every score: F1 0."""
    scores = torch.tensor([0.2, 0.5, 0.5, 0.9, 0.7])
    is_id = torch.tensor([True, True, False, False, True])
    assert as_tuple(counts_at_thresholds(scores, is_id, 0.5)) == ((2,), (2,), (1,), (0,))
    assert f1_at_thresholds(scores, is_id, torch.tensor([0.5, 0.95])).tolist() == [4 / 7, 0.0]


def test_a_scalar_delta_gives_0d_counts():
    counts = counts_at_thresholds(torch.tensor([0.1, 0.9]), torch.tensor([False, True]), 0.5)
    assert all(c.shape == () for c in counts)
    assert [int(c) for c in counts] == [1, 0, 0, 1]


@pytest.mark.parametrize("n_deltas", [1, 2 * DIRECT_COMPARISONS])
def test_delta_is_compared_in_the_scores_precision(n_deltas):
    """A float32 score printed as 0.7 (0.699999988...) is ID at delta = 0.7, as torch's
    `scores >= 0.7` decides (the inference API's rule): delta is rounded to float32 first. In
    float64 the same score is below 0.7."""
    score32 = torch.tensor([0.7], dtype=torch.float32)
    assert float(score32) < 0.7 and bool((score32 >= 0.7).item())
    deltas = torch.full((n_deltas,), 0.7, dtype=torch.float64)
    tp, *_ = counts_at_thresholds(score32, torch.tensor([True]), deltas)
    assert tp.tolist() == [1] * n_deltas
    tp, *_ = counts_at_thresholds(score32.double(), torch.tensor([True]), deltas)
    assert tp.tolist() == [0] * n_deltas


@pytest.mark.parametrize("n_deltas", [1, 2 * DIRECT_COMPARISONS])
def test_nan_is_never_accepted_and_infinities_are_ordered(n_deltas):
    """NaN >= delta is false (predicted OOD) in both ways of counting; +inf is accepted at
    any finite delta, -inf at none."""
    scores = torch.tensor([float("nan"), float("nan"), float("inf"), float("-inf"), 0.5])
    is_id = torch.tensor([True, False, True, False, True])
    deltas = torch.linspace(-1.0, 0.9, n_deltas)
    tp, fp, fn, tn = counts_at_thresholds(scores, is_id, deltas)
    for k, delta in enumerate(deltas.tolist()):
        expected = plain_counts(scores.tolist(), is_id.tolist(), delta)
        assert (int(tp[k]), int(fp[k]), int(fn[k]), int(tn[k])) == expected


def test_sizes_must_agree():
    with pytest.raises(ValueError, match="differ in size"):
        counts_at_thresholds(torch.rand(3), torch.ones(4, dtype=torch.bool), 0.5)


def test_f1_from_counts_by_hand():
    """2tp / (2tp + fp + fn): 3, 1, 2 -> 6/9; all zero -> 0 (nothing predicted, nothing ID)."""
    t = torch.tensor
    assert f1_from_counts(t(3), t(1), t(2)).item() == pytest.approx(6 / 9, abs=1e-15)
    assert f1_from_counts(t(0), t(0), t(0)).item() == 0.0
    assert f1_from_counts(t([0, 5]), t([4, 0]), t([0, 0])).tolist() == [0.0, 1.0]
    assert f1_from_counts(t(3), t(1), t(2)).dtype == torch.float64


def test_threshold_counts_swaps_roles_for_ood_positive():
    """With OOD positive: tp = tn_id, fp = fn_id, fn = fp_id, tn = tp_id."""
    scores, is_id = random_case(5)
    scores, is_id = torch.tensor(scores), torch.tensor(is_id)
    tp, fp, fn, tn = (int(c) for c in threshold_counts(scores, is_id, 0.3, "id"))
    assert tuple(int(c) for c in threshold_counts(scores, is_id, 0.3, "ood")) == (tn, fn, fp, tp)


# --- The three users agree with the one function ----------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_all_three_users_agree(seed):
    """At every candidate delta: the sweep's curve (numpy in, numpy out), the streaming
    ThresholdDetection and f1_at_thresholds give one F1, that of a plain count; the tuned
    threshold is the highest delta reaching the curve's maximum."""
    scores, is_id = random_case(seed)
    scores32 = np.array(scores, dtype=np.float32)  # as stored in scores.npz
    deltas = np.unique(scores32).astype(np.float64)
    curve = f1_against_threshold(scores32, np.array(is_id), deltas)
    reference = [plain_f1(scores32.tolist(), is_id, d) for d in deltas.tolist()]
    assert curve.tolist() == pytest.approx(reference, abs=1e-12)
    direct = f1_at_thresholds(torch.from_numpy(scores32), torch.tensor(is_id), deltas)
    assert direct.tolist() == curve.tolist()
    for k in range(0, len(deltas), 7):
        metric = ThresholdDetection(float(deltas[k]))
        metric.update(torch.from_numpy(scores32), torch.tensor(is_id))
        assert metric.compute()["f1"].item() == pytest.approx(curve[k], abs=1e-7)
    delta, f1 = best_f1_threshold(torch.from_numpy(scores32).double(), torch.tensor(is_id))
    best = curve.max()
    assert f1 == pytest.approx(best, abs=1e-15)
    assert delta == deltas[np.flatnonzero(curve == best)[-1]]
