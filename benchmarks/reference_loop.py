"""The plain-PyTorch training loop oodmix is measured against.

What a careful hand-written loop does: the data sits in memory (on the training device), each
epoch draws one permutation, every step slices a batch out of it, mixes it up, runs one forward
pass and one optimiser step. No framework, no logging, no validation.

It does the same work as `oodmix-train` in the same order with the same random draws (the
per-(seed, epoch) shuffling generator of oodmix.data.loaders, and mixup's lam and partners for
the whole epoch from a numpy Generator seeded with (seed, epoch, 0), as oodmix.data.mixup draws
them), so that the two end with the same weights: the benchmark checks this, which is how it
knows the two did identical work.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

OBJECTIVES = ("ce", "ce_kl", "ce_kl_mixup")


def _mixup_draws(
    seed: int, epoch: int, sizes: list[int], alpha: float, device: torch.device
) -> list[tuple[torch.Tensor, ...]]:
    """Per step of an epoch (batch size b): lam (b, 1) and a permutation for the ID batch, then
    the same for the OOD batch, in that order from the epoch's numpy stream; on `device`."""
    rng = np.random.default_rng([seed, epoch, 0])
    draws = []
    for b in sizes:
        lam_id, partner_id = rng.beta(alpha, alpha, size=b), rng.permutation(b)
        lam_ood, partner_ood = rng.beta(alpha, alpha, size=b), rng.permutation(b)
        draws.append(
            tuple(
                torch.from_numpy(v).to(device)
                for v in (
                    lam_id.astype(np.float32)[:, None],
                    partner_id,
                    lam_ood.astype(np.float32)[:, None],
                    partner_ood,
                )
            )
        )
    return draws


def reference_fit(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    id_x: torch.Tensor,
    id_y: torch.Tensor,
    ood_x: torch.Tensor,
    objective: str,
    steps: int,
    batch_size: int = 128,
    beta: float = 1.0,
    alpha: float = 1.0,
    seed: int = 0,
) -> None:
    """Take `steps` optimiser steps of `objective` on the given tensors (in place on `net`).

    ce:           CE(y, p(x))
    ce_kl:        CE(y, p(x)) + beta * KL(U || p(x_ood))
    ce_kl_mixup:  the above + CE(y~, p(x~)) + beta * KL(U || p(x~_ood)),
                  x~ = lam x_i + (1 - lam) x_j within ID and within OOD, lam ~ Beta(alpha, alpha)
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective={objective!r} is not allowed: one of {', '.join(OBJECTIVES)}")
    device = id_x.device
    num_classes = int(id_y.max()) + 1
    n_id, n_ood = id_x.shape[0], ood_x.shape[0]
    steps_per_epoch = math.ceil(n_id / batch_size)
    uses_ood = objective != "ce"
    sizes = [min(batch_size, n_id - i * batch_size) for i in range(steps_per_epoch)]
    step = epoch = 0
    while step < steps:
        generator = torch.Generator(device=device)
        generator.manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(n_id, generator=generator, device=device)
        if uses_ood:
            repeats = math.ceil(steps_per_epoch * batch_size / n_ood)
            ood_order = torch.cat(
                [torch.randperm(n_ood, generator=generator, device=device) for _ in range(repeats)]
            )
        if objective == "ce_kl_mixup":
            draws = _mixup_draws(seed, epoch, sizes, alpha, device)
        for i in range(steps_per_epoch):
            if step == steps:
                break
            index = order[i * batch_size : (i + 1) * batch_size]
            m = index.shape[0]
            x, y = id_x[index], id_y[index]
            inputs = [x]
            if uses_ood:
                x_ood = ood_x[ood_order[i * batch_size : i * batch_size + m]]
                inputs.append(x_ood)
            if objective == "ce_kl_mixup":
                lam, partner, lam_ood, partner_ood = draws[i]
                x_mix = torch.lerp(x[partner], x, lam)
                one_hot = F.one_hot(y, num_classes).to(x.dtype)
                y_mix = torch.lerp(one_hot[partner], one_hot, lam)
                inputs += [x_mix, torch.lerp(x_ood[partner_ood], x_ood, lam_ood)]
            logits = net(torch.cat(inputs)).split([t.shape[0] for t in inputs])
            loss = F.cross_entropy(logits[0], y)
            if uses_ood:
                kl = -F.log_softmax(logits[1], dim=-1).mean(dim=-1).mean() - math.log(num_classes)
                loss = loss + beta * kl
            if objective == "ce_kl_mixup":
                ce_mix = -(y_mix * F.log_softmax(logits[2], dim=-1)).sum(dim=-1).mean()
                log_p = F.log_softmax(logits[3], dim=-1)
                kl_mix = -log_p.mean(dim=-1).mean() - math.log(num_classes)
                loss = loss + (ce_mix + beta * kl_mix)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        epoch += 1
