"""Ranking metrics (AUROC, AUPR-In/Out, FPR95), the best-F1 threshold, ScoreBank and
threshold_counts, each checked against a plain-Python computation from the definitions."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest
import torch

from oodmix.metrics import ScoreBank, best_f1_threshold, ranking_metrics, threshold_counts
from oodmix.metrics.ranking import rank_to_unit_interval

# ---------------------------------------------------------------------------------------------
# Plain-Python references, straight from the definitions (no torch, no torchmetrics).


def plain_auroc(scores, is_id):
    """Mann-Whitney: over all (ID, OOD) pairs, 1 if the ID score is higher, 1/2 if equal."""
    ids = [s for s, t in zip(scores, is_id, strict=True) if t]
    oods = [s for s, t in zip(scores, is_id, strict=True) if not t]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in ids for b in oods)
    return wins / (len(ids) * len(oods))


def plain_average_precision(scores, positive):
    """Sum over distinct thresholds t (descending) of (R(t) - R(t_prev)) * P(t); everything with
    score >= t is predicted positive, so tied scores enter together."""
    n_pos = sum(positive)
    ap, previous_recall = 0.0, 0.0
    for t in sorted(set(scores), reverse=True):
        predicted = [p for s, p in zip(scores, positive, strict=True) if s >= t]
        tp = sum(predicted)
        recall, precision = tp / n_pos, tp / len(predicted)
        ap += (recall - previous_recall) * precision
        previous_recall = recall
    return ap


def plain_aupr_in(scores, is_id):
    return plain_average_precision(list(scores), [bool(t) for t in is_id])


def plain_aupr_out(scores, is_id):
    return plain_average_precision([-s for s in scores], [not t for t in is_id])


def plain_fpr95(scores, is_id):
    """The smallest FPR over thresholds t among the scores ("ID when score >= t") whose TPR is at
    least 95 % (compared exactly, in integers)."""
    n_id = sum(1 for t in is_id if t)
    n_ood = len(is_id) - n_id
    best = math.inf
    for t in set(scores):
        tp = sum(1 for s, y in zip(scores, is_id, strict=True) if y and s >= t)
        fp = sum(1 for s, y in zip(scores, is_id, strict=True) if not y and s >= t)
        if 100 * tp >= 95 * n_id:
            best = min(best, fp / n_ood)
    return best


def plain_best_f1(scores, is_id):
    """Every score as a candidate delta; F1 = 2tp / (2tp + fp + fn) exactly; the highest F1, and
    among equal F1 the highest delta."""
    best = None
    for delta in sorted(set(scores)):
        tp = sum(1 for s, y in zip(scores, is_id, strict=True) if y and s >= delta)
        fp = sum(1 for s, y in zip(scores, is_id, strict=True) if not y and s >= delta)
        fn = sum(1 for s, y in zip(scores, is_id, strict=True) if y and s < delta)
        f1 = Fraction(2 * tp, 2 * tp + fp + fn) if 2 * tp + fp + fn else Fraction(0)
        if best is None or f1 >= best[1]:  # ascending deltas: ">=" keeps the highest
            best = (delta, f1)
    return best


def plain_counts(scores, is_id, delta, positive):
    tp = fp = fn = tn = 0
    for s, y in zip(scores, is_id, strict=True):
        predicted = s >= delta
        if positive == "ood":
            predicted, y = not predicted, not y
        tp += predicted and y
        fp += predicted and not y
        fn += (not predicted) and y
        tn += (not predicted) and not y
    return tp, fp, fn, tn


def plain_all(scores, is_id):
    return {
        "auroc": plain_auroc(scores, is_id),
        "aupr_in": plain_aupr_in(scores, is_id),
        "aupr_out": plain_aupr_out(scores, is_id),
        "fpr95": plain_fpr95(scores, is_id),
    }


def computed(scores, is_id, dtype=torch.float64):
    result = ranking_metrics(torch.tensor(scores, dtype=dtype), torch.tensor(is_id))
    return {k: v.item() for k, v in result.items()}


def assert_close(result, expected, tol=1e-6):
    assert set(result) == set(expected)
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, abs=tol), key


def random_case(seed, n=120, decimals=1, id_share=0.4):
    """Scores in [0, 1] rounded to `decimals` (many ties across ID and OOD), ID scored higher
    on average so the metrics are away from 1/2."""
    rng = random.Random(seed)
    is_id = [rng.random() < id_share for _ in range(n)]
    if all(is_id) or not any(is_id):
        is_id[0], is_id[1] = True, False
    scores = [
        round(min(1.0, max(0.0, rng.gauss(0.65 if y else 0.4, 0.2))), decimals) for y in is_id
    ]
    return scores, is_id


# ---------------------------------------------------------------------------------------------
# Hand-made cases.

HAND_SCORES = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
HAND_IS_ID = [True, True, False, True, False, False]


def test_hand_case_by_hand():
    """scores .9 .8 .7 .6 .5 .4, ID = 1 1 0 1 0 0: AUROC 8/9, both AUPRs 11/12, FPR95 1/3."""
    # AUROC: 0.9 and 0.8 beat all three OOD scores, 0.6 beats 0.5 and 0.4 -> 8 of 9 pairs.
    # AUPR-In: recall steps 1/3 at precision 1, 1 (0.9, 0.8), then 1/3 at 3/4 (0.6).
    # AUPR-Out (by -score): OOD 0.4, 0.5 at precision 1, then 0.7 at precision 3/4.
    # FPR95: every ID point must be accepted (TPR 1), threshold 0.6 accepts the OOD 0.7.
    expected = {
        "auroc": 8 / 9,
        "aupr_in": (1 + 1 + 3 / 4) / 3,
        "aupr_out": (1 + 1 + 3 / 4) / 3,
        "fpr95": 1 / 3,
    }
    assert_close(computed(HAND_SCORES, HAND_IS_ID), expected)
    assert_close(plain_all(HAND_SCORES, HAND_IS_ID), expected, tol=1e-12)


def test_hand_case_with_ties_by_hand():
    """Ties between ID and OOD count 1/2 in AUROC and enter AP as one step."""
    scores = [0.9, 0.5, 0.5, 0.5, 0.2]
    is_id = [True, True, False, False, True]
    # Pairs (ID, OOD): 0.9 beats both (2), 0.5 ties both (1), 0.2 loses both (0) -> 3 / 6.
    # AUPR-In: t=0.9 R=1/3 P=1; t=0.5 R=2/3 P=2/4; t=0.2 R=1 P=3/5.
    # AUPR-Out (-score, OOD positive): t=-0.2 R=0 (an ID point); t=-0.5 R=1 P=2/4 (the three
    # 0.5 enter together).
    # FPR95: TPR >= 0.95 needs all three ID, threshold 0.2 -> both OOD accepted -> 1.
    expected = {
        "auroc": 3 / 6,
        "aupr_in": 1 / 3 * 1 + 1 / 3 * 2 / 4 + 1 / 3 * 3 / 5,
        "aupr_out": 1 * 2 / 4,
        "fpr95": 1.0,
    }
    assert_close(computed(scores, is_id), expected)
    assert_close(plain_all(scores, is_id), expected, tol=1e-12)


@pytest.mark.parametrize(
    ("scores", "is_id"),
    [
        ([0.3, 0.3, 0.3, 0.3], [True, False, True, False]),  # one value for everyone
        ([1.0, 0.0, 1.0, 0.0, 0.5], [True, False, False, True, True]),
        ([0.1, 0.2, 0.3, 0.4], [True, True, False, False]),  # perfectly wrong ranking
        ([0.4, 0.3, 0.2, 0.1], [True, True, False, False]),  # perfect ranking
        ([0.7, 0.7, 0.2, 0.7, 0.2], [True, False, True, True, False]),
    ],
)
def test_small_cases_match_plain_python(scores, is_id):
    """Small cases, ties included, against the direct Mann-Whitney / AP / FPR95 computations."""
    assert_close(computed(scores, is_id), plain_all(scores, is_id))


def test_all_tied_is_chance():
    """A constant score has AUROC 1/2, AUPR-In the ID share, and accepts every OOD point."""
    result = computed([0.3] * 5, [True, False, True, True, False])
    assert_close(result, {"auroc": 0.5, "aupr_in": 3 / 5, "aupr_out": 2 / 5, "fpr95": 1.0})


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_random_scores_with_many_ties_match_plain_python(seed):
    """Seeded random scores rounded to one decimal (11 values, ties everywhere)."""
    scores, is_id = random_case(seed)
    assert len(set(scores)) <= 11
    assert_close(computed(scores, is_id), plain_all(scores, is_id))


@pytest.mark.parametrize("seed", [10, 11])
def test_random_scores_two_decimals_match_plain_python(seed):
    """Finer rounding: fewer ties, more distinct thresholds."""
    scores, is_id = random_case(seed, n=200, decimals=2)
    assert_close(computed(scores, is_id), plain_all(scores, is_id))


def test_fpr95_at_exactly_95_percent_tpr():
    """20 ID points: accepting 19 of them is TPR 0.95 exactly, which qualifies."""
    # Descending: 19 ID, then 1 OOD, then the 20th ID, then 19 OOD.
    scores = [float(40 - i) for i in range(40)]
    is_id = [True] * 19 + [False] + [True] + [False] * 19
    # Threshold at the 19th ID point: TPR 19/20, FPR 0. Lower ones accept the OOD point.
    assert computed(scores, is_id)["fpr95"] == 0.0
    assert plain_fpr95(scores, is_id) == 0.0


def test_fpr95_just_below_95_percent_needs_the_next_threshold():
    """21 ID points: 19 of 21 is below 95 %, so the OOD point between must be accepted."""
    scores = [float(50 - i) for i in range(50)]
    is_id = [True] * 19 + [False] + [True] * 2 + [False] * 28
    # 19/21 = 0.905 < 0.95, 20/21 = 0.952: the threshold reaches past the OOD point: FPR 1/29.
    assert computed(scores, is_id)["fpr95"] == pytest.approx(1 / 29, abs=1e-7)
    assert plain_fpr95(scores, is_id) == pytest.approx(1 / 29)


def test_fpr95_with_ties_at_the_threshold():
    """OOD points tied with the last needed ID point are all accepted with it."""
    scores = [0.9, 0.8, 0.5, 0.5, 0.5, 0.1]
    is_id = [True, True, True, False, False, False]
    assert computed(scores, is_id)["fpr95"] == pytest.approx(2 / 3, abs=1e-7)
    assert plain_fpr95(scores, is_id) == pytest.approx(2 / 3)


# ---------------------------------------------------------------------------------------------
# Scores outside [0, 1]: logit and energy scales.


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "transform",
    [
        lambda s: 20 + 40 * s,  # logit / energy scale
        lambda s: -50 + 30 * s,  # negative scores (entropy, energy)
        lambda s: 1e4 + 1e3 * s,  # a sigmoid saturates every one of these to 1.0
        lambda s: 1e4 * s**3 - 5e3,  # increasing, non-linear, both signs
    ],
    ids=["logit", "negative", "huge", "cubic"],
)
@pytest.mark.parametrize("seed", [4, 5])
def test_outside_unit_interval_same_as_the_same_ranking(transform, dtype, seed):
    """A strictly increasing rescaling leaves every metric as on [0, 1]."""
    scores, is_id = random_case(seed)
    rescaled = [transform(s) for s in scores]
    # The rescaling keeps the order and ties in this dtype (the premise of the test).
    as_dtype = torch.tensor(rescaled, dtype=dtype).tolist()
    for i in range(len(scores)):
        for j in range(len(scores)):
            assert (scores[i] < scores[j]) == (as_dtype[i] < as_dtype[j])
            assert (scores[i] == scores[j]) == (as_dtype[i] == as_dtype[j])
    assert_close(computed(rescaled, is_id, dtype=dtype), plain_all(scores, is_id))


def test_huge_scores_would_be_tied_by_a_sigmoid():
    """Scores near 1e4 in float32: a sigmoid ties them all, the metrics still see the ranking."""
    scores = torch.tensor([1e4 + 3, 1e4 + 2, 1e4 + 1, 1e4], dtype=torch.float32)
    is_id = [True, False, True, False]
    assert torch.sigmoid(scores).eq(1.0).all()  # what torchmetrics would have seen
    result = computed(scores.tolist(), is_id, dtype=torch.float32)
    # Ranked 1 0 1 0: pairs 3 of 4, AUPR-In (1 + 2/3)/2, AUPR-Out by -score: 0 1 0 1 -> (1+2/3)/2
    assert_close(
        result,
        {"auroc": 3 / 4, "aupr_in": (1 + 2 / 3) / 2, "aupr_out": (1 + 2 / 3) / 2, "fpr95": 0.5},
    )


def test_rank_to_unit_interval_exact_values():
    """The i-th smallest distinct value goes to i / (m - 1)."""
    unit = rank_to_unit_interval(torch.tensor([5.0, -1.0, 5.0, 3.0, 1e6]))
    assert unit.tolist() == [2 / 3, 0.0, 2 / 3, 1 / 3, 1.0]


def test_rank_to_unit_interval_single_value():
    """One distinct value: everything maps to one point in [0, 1]."""
    unit = rank_to_unit_interval(torch.tensor([7.0, 7.0, 7.0]))
    assert unit.tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("seed", [0, 1])
def test_rank_to_unit_interval_keeps_order_and_ties(seed):
    """Every pair keeps its order and every tie stays a tie; the range is [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    scores = (torch.randn(300, generator=generator) * 50).round() * 1e3 / 7  # ties, wide range
    unit = rank_to_unit_interval(scores)
    s, u = scores.tolist(), unit.tolist()
    assert len(set(s)) < len(s)  # the premise: there are ties
    for i in range(len(s)):
        for j in range(len(s)):
            assert (s[i] < s[j]) == (u[i] < u[j])
            assert (s[i] == s[j]) == (u[i] == u[j])
    assert min(u) == 0.0 and max(u) == 1.0


# ---------------------------------------------------------------------------------------------
# Degenerate evaluation sets.


@pytest.mark.parametrize(
    "is_id",
    [[True, True, True], [False, False, False], [True], [False]],
    ids=["all-id", "all-ood", "one-id", "one-ood"],
)
def test_single_class_gives_nan(is_id):
    """Without both classes every ranking metric is NaN, without raising."""
    scores = [0.2, 0.9, 0.5][: len(is_id)]
    result = computed(scores, is_id)
    assert set(result) == {"auroc", "aupr_in", "aupr_out", "fpr95"}
    assert all(math.isnan(v) for v in result.values())


# ---------------------------------------------------------------------------------------------
# best_f1_threshold.


def test_best_f1_equal_f1_takes_the_highest_delta():
    """scores .9 .8 .7 .6, ID 1 0 0 1: delta .9 and .6 both give F1 2/3; .9 is returned."""
    # delta .9: tp 1 fp 0 fn 1 -> 2/3; .8: 2/4; .7: 2/5; .6: tp 2 fp 2 fn 0 -> 4/6 = 2/3.
    delta, f1 = best_f1_threshold(
        torch.tensor([0.9, 0.8, 0.7, 0.6], dtype=torch.float64),
        torch.tensor([True, False, False, True]),
    )
    assert delta == 0.9
    assert f1 == pytest.approx(2 / 3)


def test_best_f1_with_ties():
    """scores .7 .7 .5 .5 .2, ID 1 0 1 1 0: delta .7 -> 2/5, .5 -> 6/7, .2 -> 6/8."""
    delta, f1 = best_f1_threshold(
        torch.tensor([0.7, 0.7, 0.5, 0.5, 0.2], dtype=torch.float64),
        torch.tensor([True, False, True, True, False]),
    )
    assert delta == 0.5
    assert f1 == pytest.approx(6 / 7)


def test_best_f1_on_logit_scale_float32():
    """Unbounded float32 scores: the threshold is one of the scores, as given."""
    scores = torch.tensor([35.5, 12.25, -3.0, 12.25, 40.0], dtype=torch.float32)
    is_id = torch.tensor([True, True, False, False, True])
    # delta 40: 2/4; 35.5: 4/5; 12.25: tp 3 fp 1 -> 6/7; -3: 6/8.
    delta, f1 = best_f1_threshold(scores, is_id)
    assert delta == 12.25
    assert f1 == pytest.approx(6 / 7)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_best_f1_matches_brute_force(seed):
    """Seeded random scores with ties against a brute force over every candidate delta."""
    scores, is_id = random_case(seed, n=80, decimals=1 if seed % 2 else 2)
    expected_delta, expected_f1 = plain_best_f1(scores, is_id)
    delta, f1 = best_f1_threshold(torch.tensor(scores, dtype=torch.float64), torch.tensor(is_id))
    assert delta == expected_delta
    assert f1 == pytest.approx(float(expected_f1), abs=1e-12)


def test_best_f1_three_equal_maxima():
    """F1 = 2/3 at three deltas (2, 5 and 8 points accepted): the highest of them wins."""
    # Descending labels 1 1 0 0 1 0 0 1 0 0 (4 ID): F1 = 2 tp / (accepted + 4) is
    # 2/5, 2/3, 4/7, 4/8, 2/3, 6/10, 6/11, 2/3, 8/13, 8/14 -> maxima at 0.9, 0.6 and 0.3.
    labels = [True, True, False, False, True, False, False, True, False, False]
    scores = [1.0 - 0.1 * k for k in range(10)]
    order = list(range(10))
    random.Random(0).shuffle(order)  # the input order must not matter
    scores, labels = [scores[k] for k in order], [labels[k] for k in order]
    assert plain_best_f1(scores, labels) == (scores[order.index(1)], Fraction(2, 3))
    delta, f1 = best_f1_threshold(torch.tensor(scores, dtype=torch.float64), torch.tensor(labels))
    assert delta == scores[order.index(1)] == pytest.approx(0.9)
    assert f1 == pytest.approx(2 / 3)


# ---------------------------------------------------------------------------------------------
# ScoreBank.


def test_score_bank_concatenates_batches():
    """Several update() calls, then compute(): the batches in order, scores as float64."""
    bank = ScoreBank()
    batches = [
        ([0.5, 0.25], [True, False]),
        ([1.5], [False]),
        ([-2.0, 3.0, 0.125], [True, True, False]),
    ]
    for scores, is_id in batches:
        bank.update(torch.tensor(scores, dtype=torch.float32), torch.tensor(is_id))
    scores, is_id = bank.compute()
    assert scores.dtype == torch.float64 and is_id.dtype == torch.bool
    assert scores.tolist() == [0.5, 0.25, 1.5, -2.0, 3.0, 0.125]
    assert is_id.tolist() == [True, False, False, True, True, False]


def test_score_bank_reset_empties_it():
    """After reset() only the batches given since are returned."""
    bank = ScoreBank()
    bank.update(torch.tensor([0.1, 0.2]), torch.tensor([True, False]))
    bank.compute()
    bank.reset()
    bank.update(torch.tensor([0.75, -1.0]), torch.tensor([False, True]))
    scores, is_id = bank.compute()
    assert scores.tolist() == [0.75, -1.0]
    assert is_id.tolist() == [False, True]


def test_score_bank_single_point_still_gives_a_threshold():
    """One stored point (which torchmetrics hands back 0-d) still gives a threshold."""
    bank = ScoreBank()
    bank.update(torch.tensor([0.75]), torch.tensor([True]))
    scores, is_id = bank.compute()
    assert scores.numel() == 1 and is_id.numel() == 1
    assert best_f1_threshold(scores, is_id) == (0.75, 1.0)


def test_score_bank_integer_labels_become_bool():
    """is_id given as 0/1 integers is stored as a boolean mask."""
    bank = ScoreBank()
    bank.update(torch.tensor([0.3, 0.6, 0.9]), torch.tensor([0, 1, 1]))
    _, is_id = bank.compute()
    assert is_id.tolist() == [False, True, True]


# ---------------------------------------------------------------------------------------------
# threshold_counts.


@pytest.mark.parametrize("positive", ["id", "ood"])
def test_threshold_counts_hand_case(positive):
    """A score exactly at delta is predicted ID; counts for either positive class."""
    scores = [0.8, 0.8, 0.79, 0.95, 0.1, 0.81]
    is_id = [True, False, True, True, False, False]
    # predicted ID: T T F T F T. ID positive: tp 2 (0.8, 0.95), fp 2, fn 1, tn 1.
    expected = {"id": (2, 2, 1, 1), "ood": (1, 1, 2, 2)}[positive]
    counts = threshold_counts(
        torch.tensor(scores, dtype=torch.float64), torch.tensor(is_id), 0.8, positive
    )
    assert tuple(int(c) for c in counts) == expected
    assert plain_counts(scores, is_id, 0.8, positive) == expected


@pytest.mark.parametrize("positive", ["id", "ood"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_threshold_counts_match_plain_count(positive, seed):
    """Seeded random scores, delta equal to one of them, against a plain count."""
    scores, is_id = random_case(seed, n=150)
    delta = scores[7]
    counts = threshold_counts(
        torch.tensor(scores, dtype=torch.float64), torch.tensor(is_id), delta, positive
    )
    assert tuple(int(c) for c in counts) == plain_counts(scores, is_id, delta, positive)
    assert sum(int(c) for c in counts) == len(scores)
