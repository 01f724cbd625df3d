"""The paper's detection score: the largest softmax probability."""

from __future__ import annotations

import torch
from torch import nn


class MaxSoftmaxScore(nn.Module):
    """s(x) = max_k softmax(f(x))_k, in [1/K, 1]; higher means more in-distribution.

    Hendrycks and Gimpel (ICLR 2017) baseline, used by the paper with threshold delta = 0.8.
    """

    #: The range a threshold on this score is meaningful in.
    score_range = (0.0, 1.0)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.softmax(dim=-1).amax(dim=-1)
