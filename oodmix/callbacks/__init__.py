"""Lightning callbacks: evaluation of the detector on the evaluation sets."""

from oodmix.callbacks.detection_evaluation import DetectionEvaluation

__all__ = ["DetectionEvaluation"]
