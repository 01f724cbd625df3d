"""Negative free energy (Liu et al., NeurIPS 2020, "Energy-based Out-of-distribution Detection")."""

from __future__ import annotations

import torch
from torch import nn

from oodmix.allowed import number_above


class EnergyScore(nn.Module):
    """s(x) = -E(x; T) = T * logsumexp_k(f_k(x) / T); higher means more in-distribution.

    T = 1 in the paper. The threshold is tuned on the validation set.
    """

    fixed_threshold = False
    label = "negative energy"

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        self.temperature = float(number_above("detector.temperature", temperature, 0))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return self.temperature * torch.logsumexp(logits / self.temperature, dim=-1)
