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


def uniform_cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of CE(U, p) = -(1/K) sum_k log p_k: Outlier Exposure's OOD term.

    Equals KL(U || p) + log K, so its gradients are those of `kl_uniform`.
    """
    return -F.log_softmax(logits, dim=-1).mean(dim=-1).mean()


def free_energy(logits: torch.Tensor) -> torch.Tensor:
    """Per sample E(x) = -logsumexp_k f_k(x) (temperature 1); low on ID, high on OOD."""
    return -torch.logsumexp(logits, dim=-1)
