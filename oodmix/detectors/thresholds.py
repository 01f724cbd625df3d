"""The range of delta, the threshold on a probability score (the max softmax probability,
MaxSoftmaxScore), stated once for training (the config check), oodmix-predict and
load_detector.

A probability score lies in (0, 1] (at least 1/K for K classes): a threshold at or below 0 calls
no point OOD, one at or above 1 calls every point OOD, so neither is a detector. Scores without
a fixed scale (max logit, energy, entropy) take any finite threshold.
"""

from __future__ import annotations

import math
from typing import Any

#: The words for delta's range in a refusal: "delta must be <DELTA_RANGE>".
DELTA_RANGE = "a number strictly between 0 and 1"


def is_probability_threshold(value: Any) -> bool:
    """Whether `value` is a threshold a probability score can use: a finite real number
    strictly between 0 and 1 (not a bool, not a string)."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 < value < 1
    )
