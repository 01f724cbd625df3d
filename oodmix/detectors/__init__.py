"""Detection scores: higher means more in-distribution. Selected with `detector=<name>`.

Each has `fixed_threshold` (whether delta has a meaning on its scale: only for msp) and a
human-readable `label`.
"""

from oodmix.detectors.energy import EnergyScore
from oodmix.detectors.entropy import NegativeEntropyScore
from oodmix.detectors.max_logit import MaxLogitScore
from oodmix.detectors.max_softmax import MaxSoftmaxScore

__all__ = ["EnergyScore", "MaxLogitScore", "MaxSoftmaxScore", "NegativeEntropyScore"]
