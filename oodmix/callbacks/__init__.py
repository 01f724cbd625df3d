"""Lightning callbacks: evaluation of the detector, and what a run leaves to look at."""

from oodmix.callbacks.confidence_map import ConfidenceMap
from oodmix.callbacks.detection_evaluation import DetectionEvaluation
from oodmix.callbacks.saved_scores import SavedScores

__all__ = ["ConfidenceMap", "DetectionEvaluation", "SavedScores"]
