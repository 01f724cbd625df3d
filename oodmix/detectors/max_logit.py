"""Maximum logit (Hendrycks et al., ICML 2022, "Scaling Out-of-Distribution Detection")."""

from __future__ import annotations

import torch
from torch import nn


class MaxLogitScore(nn.Module):
    """s(x) = max_k f_k(x), unbounded; higher means more in-distribution. The threshold is
    tuned on the validation set (delta has no fixed meaning on this scale)."""

    fixed_threshold = False
    label = "max logit"

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.amax(dim=-1)
