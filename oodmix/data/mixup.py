"""Mixup (Zhang et al., ICLR 2018) within one group of samples, or across two (MixOE).

    x~ = lam * x_i + (1 - lam) * x_j,   y~ = lam * y_i + (1 - lam) * y_j,   lam ~ Beta(alpha, alpha)

The partner j of each sample i is a random permutation of the same batch, so ID samples are
mixed only with ID samples and OOD samples only with OOD samples (the paper's "within" pairing);
`cross` pairs each ID sample with a random OOD sample of the batch. One lam is drawn per sample.

The draws (lam and partners) come from the run's own random stream, a numpy Generator that the
batch loader seeds with (seed, epoch, process) and draws from once per epoch (`MixupDraws`):
they depend neither on the device nor on anything else drawing random numbers in the process
(another run trained beside it included), and a resumed epoch draws them again exactly. The
mixing itself runs on the batch's device.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

#: The mixed batch parts, in the order their draws are taken.
MIXED_PARTS = ("id_mix", "ood_mix", "cross_mix")


def one_hot(y: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """(N, K) one-hot rows of integer labels y, built on y's device.

    F.one_hot checks the label range with .item() calls, which wait for the GPU on every
    training step; the labels come from the datamodule, which has already checked them.
    """
    rows = torch.zeros(y.shape[0], num_classes, dtype=dtype, device=y.device)
    return rows.scatter_(1, y[:, None], 1.0)


@dataclass
class Draw:
    """The mixing of one batch part: weight lam (N, 1) and partner index (N,) of each sample."""

    lam: torch.Tensor
    partner: torch.Tensor


class Mixup:
    """Mixup with lam ~ Beta(alpha, alpha): draws from a numpy Generator, mixing on the device."""

    def __init__(self, alpha: float) -> None:
        if not alpha > 0:
            raise ValueError(f"mixup.alpha={alpha} is not allowed: alpha must be > 0")
        self.alpha = float(alpha)

    def draw(self, rng: np.random.Generator, n: int, pool: int | None = None) -> Draw:
        """n weights lam ~ Beta(alpha, alpha) and n partners: a permutation of range(n), or,
        with `pool`, n indices drawn uniformly from range(pool). On the CPU."""
        lam = rng.beta(self.alpha, self.alpha, size=n)
        partner = rng.permutation(n) if pool is None else rng.integers(pool, size=n)
        return Draw(torch.from_numpy(lam).float()[:, None], torch.from_numpy(partner))

    def sample_lam(self, n: int, rng: np.random.Generator | None = None) -> torch.Tensor:
        """n mixing weights from Beta(alpha, alpha), shape (n, 1), on the CPU."""
        return self.draw(rng or _torch_seeded_rng(), n).lam

    def __call__(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        num_classes: int | None = None,
        draw: Draw | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Mix a batch with a random permutation of itself.

        Args:
            x: inputs (N, ...).
            y: integer class labels (N,), or None for unlabelled (OOD) samples.
            num_classes: K, needed to one-hot encode y.
            draw: lam and partners (on x's device); None draws them from a generator seeded
                by torch's global one (for interactive use; runs pass their own draws).

        Returns:
            (mixed inputs, soft labels (N, K) that sum to 1, or None when y is None).
        """
        if draw is None:
            draw = _on(self.draw(_torch_seeded_rng(), x.shape[0]), x.device)
        lam = draw.lam.to(x.dtype)
        x_mix = torch.lerp(x[draw.partner], x, lam)  # lam * x + (1 - lam) * x[partner]
        if y is None:
            return x_mix, None
        if num_classes is None:
            raise ValueError("num_classes is needed to mix labelled samples")
        labels = one_hot(y, num_classes, x_mix.dtype)
        return x_mix, torch.lerp(labels[draw.partner], labels, lam)

    def cross(
        self,
        x_id: torch.Tensor,
        y: torch.Tensor,
        x_ood: torch.Tensor,
        num_classes: int,
        draw: Draw | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix each ID sample with a random OOD sample of the batch (Mixture Outlier Exposure).

        x~ = lam * x_id + (1 - lam) * x_ood,  target = lam * onehot(y) + (1 - lam) * U.
        """
        if draw is None:
            draw = _on(self.draw(_torch_seeded_rng(), x_id.shape[0], x_ood.shape[0]), x_id.device)
        lam = draw.lam.to(x_id.dtype)
        x_mix = torch.lerp(x_ood[draw.partner], x_id, lam)
        labels = one_hot(y, num_classes, x_mix.dtype)
        uniform = torch.full_like(labels, 1.0 / num_classes)
        return x_mix, torch.lerp(uniform, labels, lam)


class MixupDraws:
    """An epoch's mixing draws for every step, from one stream, moved to the device at once.

    For each step (ID batch size b, OOD batch size m) and each requested part, in the order of
    MIXED_PARTS: id_mix draws (b; a permutation), ood_mix (m; a permutation), cross_mix (b;
    partners from m). `step(s)` hands out step s's draws as views: nothing is copied or drawn
    per step.
    """

    def __init__(
        self,
        mixup: Mixup,
        parts: Iterable[str],
        sizes: list[tuple[int, int]],
        rng: np.random.Generator,
        device: torch.device,
    ) -> None:
        parts = [p for p in MIXED_PARTS if p in set(parts)]
        per_step: list[dict[str, Draw]] = []
        for b, m in sizes:
            draws = {}
            for part in parts:
                if part == "id_mix":
                    draws[part] = mixup.draw(rng, b)
                elif part == "ood_mix":
                    draws[part] = mixup.draw(rng, m)
                else:
                    draws[part] = mixup.draw(rng, b, pool=m)
            per_step.append(draws)
        self._steps = _moved(per_step, parts, device)

    def step(self, s: int) -> dict[str, Draw]:
        return self._steps[s]


def _moved(per_step: list[dict[str, Draw]], parts: list[str], device) -> list[dict[str, Draw]]:
    """The same draws on `device`: one copy per part for the epoch, then views per step."""
    if not per_step or not parts:
        return [{} for _ in per_step]
    moved: list[dict[str, Draw]] = [{} for _ in per_step]
    for part in parts:
        lams = torch.cat([d[part].lam for d in per_step]).to(device)
        partners = torch.cat([d[part].partner for d in per_step]).to(device)
        start = 0
        for s, draws in enumerate(per_step):
            n = draws[part].lam.shape[0]
            moved[s][part] = Draw(lams[start : start + n], partners[start : start + n])
            start += n
    return moved


def _on(draw: Draw, device: torch.device) -> Draw:
    return Draw(draw.lam.to(device), draw.partner.to(device))


def _torch_seeded_rng() -> np.random.Generator:
    """A numpy Generator seeded from torch's global generator (so torch.manual_seed applies)."""
    return np.random.default_rng(int(torch.randint(2**62, ())))
