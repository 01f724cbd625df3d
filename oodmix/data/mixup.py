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

Mixing works for any leading dimensions: x (..., B, D), y (..., B), lam (..., B, 1) and partner
(..., B), e.g. a stack of K runs' batches (K, B, D), each mixed with its own run's draws.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from oodmix.allowed import number_above
from oodmix.batch_parts import MIXED_PARTS


def one_hot(y: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """(..., N, C) one-hot rows of integer labels y (..., N), built on y's device.

    F.one_hot checks the label range with .item() calls, which wait for the GPU on every
    training step; the labels come from the datamodule, which has already checked them.
    """
    rows = torch.zeros(*y.shape, num_classes, dtype=dtype, device=y.device)
    return rows.scatter_(-1, y.unsqueeze(-1), 1.0)


@dataclass
class Draw:
    """The mixing of one batch part: weight lam (..., N, 1) and partner index (..., N) of each
    sample (leading dimensions: e.g. K stacked runs, each with its own draws)."""

    lam: torch.Tensor
    partner: torch.Tensor


def partners(t: torch.Tensor, partner: torch.Tensor) -> torch.Tensor:
    """Row partner[..., i] of t for every i: t (..., M, D), partner (..., N) -> (..., N, D).

    t[partner] for a single batch; with leading dimensions each batch takes its own partners
    (a partner without them is shared by all). A gather: the very values t[partner] copies.
    """
    index = partner.unsqueeze(-1).expand(*t.shape[:-2], partner.shape[-1], t.shape[-1])
    return torch.gather(t, -2, index)


class Mixup:
    """Mixup with lam ~ Beta(alpha, alpha): draws from a numpy Generator, mixing on the device.

    alpha (the config's mixup.alpha): a finite number > 0.
    """

    def __init__(self, alpha: float) -> None:
        self.alpha = float(number_above("mixup.alpha", alpha, 0))

    def draw(self, rng: np.random.Generator, n: int, pool: int | None = None) -> Draw:
        """n weights lam ~ Beta(alpha, alpha) and n partners: a permutation of range(n), or,
        with `pool`, n indices drawn uniformly from range(pool) (`draw_arrays`). On the CPU."""
        lam, partner = draw_arrays(rng, self.alpha, n, pool)
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
            x: inputs (..., N, D); leading dimensions are separate batches (stacked runs).
            y: integer class labels (..., N), or None for unlabelled (OOD) samples.
            num_classes: C, needed to one-hot encode y.
            draw: lam (..., N, 1) and partners (..., N) within each batch, on x's device; None
                draws one set from a generator seeded by torch's global one, shared by any
                leading dimensions (for interactive use; runs pass their own draws).

        Returns:
            (mixed inputs (..., N, D), soft labels (..., N, C) that sum to 1, or None when y
            is None).
        """
        if draw is None:
            draw = _on(self.draw(_torch_seeded_rng(), x.shape[-2]), x.device)
        lam = draw.lam.to(x.dtype)
        # lam * x + (1 - lam) * x[partner]
        x_mix = torch.lerp(partners(x, draw.partner), x, lam)
        if y is None:
            return x_mix, None
        if num_classes is None:
            raise ValueError("num_classes is needed to mix labelled samples")
        labels = one_hot(y, num_classes, x_mix.dtype)
        return x_mix, torch.lerp(partners(labels, draw.partner), labels, lam)

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

        Shapes: x_id (..., N, D), y (..., N), x_ood (..., M, D), draw.lam (..., N, 1),
        draw.partner (..., N) indices into each batch's M OOD samples; returns (..., N, D) and
        (..., N, C).
        """
        if draw is None:
            draw = _on(self.draw(_torch_seeded_rng(), x_id.shape[-2], x_ood.shape[-2]), x_id.device)
        lam = draw.lam.to(x_id.dtype)
        x_mix = torch.lerp(partners(x_ood, draw.partner), x_id, lam)
        labels = one_hot(y, num_classes, x_mix.dtype)
        uniform = torch.full_like(labels, 1.0 / num_classes)
        return x_mix, torch.lerp(uniform, labels, lam)


def draw_arrays(
    rng: np.random.Generator, alpha: float, n: int, pool: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One draw from a run's stream, what every draw of oodmix is: n weights lam ~ Beta(alpha,
    alpha) (float64, (n,)), then n partners (int64, (n,)): a permutation of range(n), or, with
    `pool`, n indices drawn uniformly from range(pool). The order of the two calls is part of
    the draws: changing it changes every run's numbers."""
    lam = rng.beta(alpha, alpha, size=n)
    return lam, rng.permutation(n) if pool is None else rng.integers(pool, size=n)


class MixupDraws:
    """An epoch's mixing draws for every step, from one stream per run, moved to the device at
    once.

    For each step (ID batch size b, OOD batch size m) and each requested part, in the order of
    MIXED_PARTS: id_mix draws (b; a permutation), ood_mix (m; a permutation), cross_mix (b;
    partners from m), one `draw_arrays` after another from the run's stream. `step(s)` hands out
    step s's draws as views: nothing is copied or drawn per step.

    The epoch's draws are kept whole, per part: `epoch[part]` holds every step's draws one
    after another (lam (T, 1), partner (T,)), and `spans[s][part]` is where step s's lie in
    them. `of_runs` draws several runs' epochs at once, on a leading dimension (lam (K, T, 1),
    partner (K, T)); its `step(s)` then hands out lam (K, n, 1) and partner (K, n), [k] run k's
    own, bit for bit.
    """

    parts: list[str]
    spans: list[dict[str, slice]]
    epoch: dict[str, Draw]

    def __init__(
        self,
        mixup: Mixup,
        parts: Iterable[str],
        sizes: Sequence[tuple[int, int]],
        rng: np.random.Generator,
        device: torch.device,
    ) -> None:
        """One run's epoch: `of_runs` for a single run, without the leading dimension."""
        run = self.of_runs([mixup], parts, sizes, [rng], device)
        epoch = {part: Draw(d.lam[0], d.partner[0]) for part, d in run.epoch.items()}
        self._set(run.parts, run.spans, epoch)

    @classmethod
    def of_runs(
        cls,
        mixups: Sequence[Mixup],
        parts: Iterable[str],
        sizes: Sequence[tuple[int, int]],
        rngs: Sequence[np.random.Generator],
        device: torch.device,
    ) -> MixupDraws:
        """K runs' epochs of the same parts and step sizes, run k drawing with mixups[k] from
        its own stream rngs[k], stacked on a leading dimension K and moved to `device` at once.

        A run's draws come one after another from its stream, so they are drawn one
        `draw_arrays` at a time, in numpy; the Python around those calls is one loop over the
        epoch's draws, and the tensors are built once for all runs (one conversion and one copy
        to the device per part).
        """
        parts = [p for p in MIXED_PARTS if p in set(parts)]
        # Every draw of an epoch in stream order: (part, n, pool), and where it lies in its part.
        calls: list[tuple[str, int, int | None]] = []
        spans: list[dict[str, slice]] = []
        ends = dict.fromkeys(parts, 0)
        for b, m in sizes:
            step: dict[str, slice] = {}
            for part in parts:
                n, pool = (
                    (m, None) if part == "ood_mix" else (b, m if part == "cross_mix" else None)
                )
                calls.append((part, n, pool))
                step[part] = slice(ends[part], ends[part] + n)
                ends[part] += n
            spans.append(step)
        draws = cls.__new__(cls)
        if not calls:
            draws._set(parts, spans, {})
            return draws
        # lam as float32: numpy rounds each float64 draw to nearest, as torch's .float() does.
        lam = {part: np.empty((len(rngs), n), dtype=np.float32) for part, n in ends.items()}
        partner = {part: np.empty((len(rngs), n), dtype=np.int64) for part, n in ends.items()}
        for k, (mixup, rng) in enumerate(zip(mixups, rngs, strict=True)):
            alpha = mixup.alpha
            drawn: dict[str, tuple[list, list]] = {part: ([], []) for part in parts}
            for part, n, pool in calls:
                lams, partners = drawn[part]
                lam_k, partner_k = draw_arrays(rng, alpha, n, pool)
                lams.append(lam_k)
                partners.append(partner_k)
            for part, (lams, partners) in drawn.items():
                np.concatenate(lams, out=lam[part][k], casting="same_kind")
                np.concatenate(partners, out=partner[part][k])
        epoch = {
            part: Draw(
                torch.from_numpy(lam[part])[..., None].to(device),
                torch.from_numpy(partner[part]).to(device),
            )
            for part in parts
        }
        draws._set(parts, spans, epoch)
        return draws

    def _set(self, parts: list[str], spans: list[dict[str, slice]], epoch: dict[str, Draw]) -> None:
        self.parts, self.spans, self.epoch = parts, spans, epoch
        # Each step's draws as views of the epoch's tensors (along the draw dimension).
        self._steps = [
            {
                part: Draw(self.epoch[part].lam[..., span, :], self.epoch[part].partner[..., span])
                for part, span in step.items()
            }
            for step in spans
        ]

    def step(self, s: int) -> dict[str, Draw]:
        return self._steps[s]


def _on(draw: Draw, device: torch.device) -> Draw:
    return Draw(draw.lam.to(device), draw.partner.to(device))


def _torch_seeded_rng() -> np.random.Generator:
    """A numpy Generator seeded from torch's global generator (so torch.manual_seed applies)."""
    return np.random.default_rng(int(torch.randint(2**62, ())))
