"""Optimiser steps of stacked members: each member's update is the one it would take alone.

Adam, AdamW and SGD act on each element of a parameter by itself, so one optimiser over the
stacked parameters updates member k exactly as member k's own optimiser would, given the same
learning rate. Two things are not elementwise and are taken per member here:

- a learning rate that differs between members (`MemberLearningRates`): these optimisers'
  step is linear in the learning rate given their state, so the step is taken with member 0's
  rate and member k's change is scaled by lr_k / lr_0:
      p_k <- p_k + (lr_k / lr_0) * (step_0(p)_k - p_k)
- gradient clipping by global 2-norm (`clip_member_gradients`): the norm of member k's
  gradients alone, as torch.nn.utils.clip_grad_norm_ computes it for a single network.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _per_member(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(K,) values shaped to broadcast against a stacked tensor (K, ...)."""
    return values.reshape(-1, *([1] * (like.dim() - 1))).to(like.dtype)


class MemberLearningRates:
    """Scales each member's optimiser step to its own learning rate (see the module doc)."""

    def __init__(self, rates: Sequence[float]) -> None:
        rates = [float(r) for r in rates]
        self.base = rates[0]
        self.scale = torch.tensor([r / self.base for r in rates], dtype=torch.float64)
        self.needed = any(r != self.base for r in rates)

    def step(self, optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor]) -> None:
        """optimizer.step() (its learning rate must be member 0's), each member's change scaled."""
        if not self.needed:
            optimizer.step()
            return
        before = [p.detach().clone() for p in params]
        optimizer.step()
        with torch.no_grad():
            for p, old in zip(params, before):
                p.copy_(torch.lerp(old, p, _per_member(self.scale.to(p.device), p)))


def clip_member_gradients(
    params: Sequence[torch.Tensor], max_norm: float, algorithm: str = "norm"
) -> None:
    """Clip each member's gradients: by the 2-norm of all its gradients together
    (g_k <- g_k * min(1, c / (||g_k||_2 + 1e-6)), as clip_grad_norm_ for one network), or
    elementwise (`"value"`: g <- clamp(g, -c, c))."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    if algorithm == "value":
        for g in grads:
            g.clamp_(-max_norm, max_norm)
        return
    squares = torch.stack([g.pow(2).flatten(1).sum(dim=1) for g in grads]).sum(dim=0)
    factor = (max_norm / (squares.sqrt() + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(_per_member(factor, g))
