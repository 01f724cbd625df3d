"""oodmix: train and evaluate out-of-distribution detectors with PyTorch Lightning and Hydra.

`from oodmix import load_detector` gives the trained detector of a run (oodmix.inference);
it is imported on first use, so that `import oodmix` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from oodmix.inference import TrainedDetector, load_detector

__version__ = "0.1.0"

__all__ = ["TrainedDetector", "__version__", "load_detector"]


def __getattr__(name: str) -> Any:
    if name in ("TrainedDetector", "load_detector"):
        from oodmix import inference

        return getattr(inference, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
