"""The terms the objectives are built from, each a batch mean (per-group means)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def soft_cross_entropy(logits: torch.Tensor, soft_targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of CE(q, p) = -sum_k q_k log p_k, with p = softmax(logits).

    For one-hot q this is the ordinary cross-entropy; mixup gives soft q.
    """
    return -(soft_targets * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


def kl_uniform(logits: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of KL(U || p) = -log K - (1/K) sum_k log p_k, p = softmax(logits).

    Equals CE(U, p) - log K: zero exactly when p is uniform over the K classes, positive
    otherwise (Lee et al., ICLR 2018, the "confidence loss").
    """
    num_classes = logits.shape[-1]
    return -F.log_softmax(logits, dim=-1).mean(dim=-1).mean() - math.log(num_classes)
