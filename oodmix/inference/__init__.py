"""Using a trained detector: the Python API (`load_detector`) and `oodmix-predict`.

    from oodmix import load_detector
    detector = load_detector("outputs/runs/<date>/<time>/checkpoints/last.ckpt")
    detector.scores(x), detector.is_ood(x), detector.predict(x)

Names are imported on first use, so that `oodmix-predict` answers a mistyped command line
before importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from oodmix.lazy import lazy_getattr

if TYPE_CHECKING:
    from oodmix.inference.detector import Detection, TrainedDetector, load_detector
    from oodmix.inference.errors import InferenceError

__all__ = ["Detection", "InferenceError", "TrainedDetector", "load_detector"]

_MODULES = {
    "Detection": "oodmix.inference.detector",
    "TrainedDetector": "oodmix.inference.detector",
    "load_detector": "oodmix.inference.detector",
    "InferenceError": "oodmix.inference.errors",
}

__getattr__ = lazy_getattr(__name__, _MODULES)
