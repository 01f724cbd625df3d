"""Non-finite scores are refused with one line naming the set, the count and what to do."""

from __future__ import annotations

import pytest
import torch

from oodmix.metrics import FiniteScores, NonFiniteScores, check_finite

NAN, INF = float("nan"), float("inf")


def test_check_finite_names_the_set_and_the_count():
    scores = torch.tensor([0.5, NAN, INF, -INF, 0.9, 0.1, 0.2, 0.3, 0.4, 0.6])
    with pytest.raises(NonFiniteScores) as raised:
        check_finite(scores, "test_near")
    error = raised.value
    assert isinstance(error, RuntimeError)
    assert (error.set_name, error.count, error.total) == ("test_near", 3, 10)
    message = str(error)
    assert "\n" not in message
    assert message.startswith("3 of 10 test_near scores are not finite")
    assert message.endswith("the weights are not finite: the run diverged; lower model.lr or beta")


def test_finite_scores_pass():
    check_finite(torch.tensor([0.0, -1e30, 1e30]), "val")
    check_finite(torch.tensor([]), "val")


def test_finite_scores_metric_counts_over_batches_and_resets():
    metric = FiniteScores()
    metric.update(torch.tensor([0.1, 0.2]))
    metric.check("val")  # nothing wrong yet
    metric.update(torch.tensor([NAN, 0.3, NAN]))
    metric.update(torch.tensor([INF]))
    assert [int(v) for v in metric.compute()] == [3, 6]
    with pytest.raises(NonFiniteScores, match=r"^3 of 6 val scores are not finite"):
        metric.check("val")
    metric.reset()
    metric.update(torch.tensor([0.5]))
    metric.check("val")
