"""Detection scores: higher means more in-distribution. Selected with `detector=<name>`.

Each has `fixed_threshold` (whether delta has a meaning on its scale: only for msp) and a
human-readable `label`. The range of delta itself is stated once, in `thresholds` (no torch:
the command-line checks read it).

Names are imported on first use (oodmix.lazy), so that importing `oodmix.detectors.thresholds`
does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from oodmix.lazy import lazy_getattr

if TYPE_CHECKING:
    from oodmix.detectors.energy import EnergyScore
    from oodmix.detectors.entropy import NegativeEntropyScore
    from oodmix.detectors.max_logit import MaxLogitScore
    from oodmix.detectors.max_softmax import MaxSoftmaxScore

__all__ = ["EnergyScore", "MaxLogitScore", "MaxSoftmaxScore", "NegativeEntropyScore"]

_HOMES = {
    "EnergyScore": "oodmix.detectors.energy",
    "MaxLogitScore": "oodmix.detectors.max_logit",
    "MaxSoftmaxScore": "oodmix.detectors.max_softmax",
    "NegativeEntropyScore": "oodmix.detectors.entropy",
}

__getattr__ = lazy_getattr(__name__, _HOMES)
