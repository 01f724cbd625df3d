"""The range of delta, the threshold on a score, stated once for training (DetectionEvaluation),
oodmix-predict and load_detector: `check_threshold`.

A probability score lies in (0, 1] (at least 1/K for K classes): a threshold at or below 0 calls
no point OOD, one at or above 1 calls every point OOD, so neither is a detector. Scores without
a fixed scale (max logit, energy, entropy) take any finite threshold.
"""

from __future__ import annotations

import math
from typing import Any

from oodmix.allowed import shown

#: The words for delta's range in a refusal: "delta must be <DELTA_RANGE>".
DELTA_RANGE = "a number strictly between 0 and 1"


def check_threshold(delta: Any, fixed_scale: bool) -> float:
    """`delta` as a float: a finite real number (a number typed as text, as oodmix-predict
    reads it, counts), and for a score with a fixed scale (`fixed_threshold`: the max softmax
    probability) one strictly between 0 and 1. ValueError with the one-line reason otherwise."""
    try:
        value = float(delta)
    except (TypeError, ValueError):
        value = math.nan
    typed = delta if isinstance(delta, str) else shown(delta)  # as typed: 0, not 0.0
    if isinstance(delta, bool) or not math.isfinite(value):
        raise ValueError(f"delta={typed} is not allowed: delta must be a finite number")
    if fixed_scale and not 0 < value < 1:
        raise ValueError(
            f"delta={typed} is not allowed: the scores are probabilities (max softmax), so "
            f"delta must be {DELTA_RANGE}"
        )
    return value
