"""Detection scores: higher means more in-distribution. Selected with `detector=<name>`."""

from oodmix.detectors.max_softmax import MaxSoftmaxScore

__all__ = ["MaxSoftmaxScore"]
