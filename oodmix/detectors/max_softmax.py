"""The paper's detection score: the largest softmax probability."""

from __future__ import annotations

import torch
from torch import nn


class MaxSoftmaxScore(nn.Module):
    """s(x) = max_k softmax(f(x))_k, in [1/K, 1]; higher means more in-distribution.

    Hendrycks and Gimpel (ICLR 2017) baseline, used by the paper with threshold delta = 0.8.
    """

    #: delta is a probability here, so the paper's fixed delta = 0.8 means something; for
    #: scores without such a scale the threshold is tuned on the validation set instead.
    fixed_threshold = True
    label = "max softmax probability"

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.softmax(dim=-1).amax(dim=-1)
