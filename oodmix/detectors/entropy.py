"""Negative predictive entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class NegativeEntropyScore(nn.Module):
    """s(x) = -H(p) = sum_k p_k log p_k, p = softmax(f(x)), in [-log K, 0]; higher means more
    in-distribution (a confident prediction). The threshold is tuned on the validation set."""

    fixed_threshold = False
    label = "negative entropy"

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits, dim=-1)
        return (log_p.exp() * log_p).sum(dim=-1)
