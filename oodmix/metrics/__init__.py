"""Detection metrics: the threshold rule and its F1, ranking metrics, and torchmetrics Metric
subclasses whose states are summed or gathered under DDP.

Names are imported on first use (oodmix.lazy): the sweep report needs only the F1 counting
(torch), not torchmetrics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from oodmix.lazy import lazy_getattr

# Imported now, not lazily: the function shares its module's name, and the module, once
# imported by anyone, would shadow a lazily found function (only torch is imported there).
from oodmix.metrics.publish import publish

if TYPE_CHECKING:
    from oodmix.metrics.accuracy import IDAccuracy
    from oodmix.metrics.non_finite import FiniteScores, NonFiniteScores, check_finite
    from oodmix.metrics.ranking import ScoreBank, best_f1_threshold, ranking_metrics
    from oodmix.metrics.threshold_detection import ThresholdDetection
    from oodmix.metrics.threshold_f1 import (
        counts_at_thresholds,
        f1_at_thresholds,
        f1_from_counts,
        precision_recall_f1,
        threshold_counts,
    )

__all__ = [
    "FiniteScores",
    "IDAccuracy",
    "NonFiniteScores",
    "ScoreBank",
    "ThresholdDetection",
    "best_f1_threshold",
    "check_finite",
    "counts_at_thresholds",
    "f1_at_thresholds",
    "f1_from_counts",
    "precision_recall_f1",
    "publish",
    "ranking_metrics",
    "threshold_counts",
]

_HOMES = {
    "FiniteScores": "oodmix.metrics.non_finite",
    "IDAccuracy": "oodmix.metrics.accuracy",
    "NonFiniteScores": "oodmix.metrics.non_finite",
    "check_finite": "oodmix.metrics.non_finite",
    "ScoreBank": "oodmix.metrics.ranking",
    "best_f1_threshold": "oodmix.metrics.ranking",
    "ranking_metrics": "oodmix.metrics.ranking",
    "ThresholdDetection": "oodmix.metrics.threshold_detection",
    "counts_at_thresholds": "oodmix.metrics.threshold_f1",
    "f1_at_thresholds": "oodmix.metrics.threshold_f1",
    "f1_from_counts": "oodmix.metrics.threshold_f1",
    "precision_recall_f1": "oodmix.metrics.threshold_f1",
    "threshold_counts": "oodmix.metrics.threshold_f1",
}


__getattr__ = lazy_getattr(__name__, _HOMES)
