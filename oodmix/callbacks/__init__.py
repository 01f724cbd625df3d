"""Lightning callbacks: evaluation of the detector, checkpoints, and what a run leaves to look
at."""

from oodmix.callbacks.buffered_checkpoint import BufferedCheckpoint
from oodmix.callbacks.confidence_map import ConfidenceMap
from oodmix.callbacks.detection_evaluation import DetectionEvaluation
from oodmix.callbacks.saved_scores import SavedScores

__all__ = ["BufferedCheckpoint", "ConfidenceMap", "DetectionEvaluation", "SavedScores"]
