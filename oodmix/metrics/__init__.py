"""Detection metrics as torchmetrics Metric subclasses (sum states: exact under DDP)."""

from oodmix.metrics.threshold_detection import ThresholdDetection, precision_recall_f1

__all__ = ["ThresholdDetection", "precision_recall_f1"]
