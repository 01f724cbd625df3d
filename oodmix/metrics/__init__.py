"""Detection metrics as torchmetrics Metric subclasses (states summed or gathered under DDP)."""

from oodmix.metrics.publish import publish
from oodmix.metrics.ranking import ScoreBank, best_f1_threshold, ranking_metrics
from oodmix.metrics.threshold_detection import (
    ThresholdDetection,
    precision_recall_f1,
    threshold_counts,
)

__all__ = [
    "ScoreBank",
    "ThresholdDetection",
    "best_f1_threshold",
    "precision_recall_f1",
    "publish",
    "ranking_metrics",
    "threshold_counts",
]
