"""Regions of the plane with exact membership tests, and uniform samplers over them.

Evaluation labels come from `contains`, so they are exact rather than estimated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Disk:
    """The closed disk ||x - center|| <= radius in R^2."""

    center: tuple[float, float]
    radius: float

    def contains(self, points: torch.Tensor) -> torch.Tensor:
        """Boolean mask of the points (N, 2) that lie in the disk (boundary included)."""
        center = torch.as_tensor(self.center, dtype=points.dtype, device=points.device)
        return (points - center).pow(2).sum(dim=-1) <= self.radius**2

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n points uniform in the disk: r = R * sqrt(U), theta = 2 * pi * V (area-uniform)."""
        u, v = torch.rand(2, n, generator=generator, dtype=torch.float64)
        r = self.radius * u.sqrt()
        theta = 2 * math.pi * v
        points = torch.stack([r * theta.cos(), r * theta.sin()], dim=-1)
        return (points + torch.tensor(self.center, dtype=torch.float64)).float()


@dataclass(frozen=True)
class Box:
    """The axis-aligned square [low, high]^dim."""

    low: float
    high: float
    dim: int = 2

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n points uniform in the box."""
        u = torch.rand(n, self.dim, generator=generator, dtype=torch.float64)
        return (self.low + (self.high - self.low) * u).float()


def inside_any(regions: Sequence[Disk], points: torch.Tensor) -> torch.Tensor:
    """Mask of the points that lie in at least one region."""
    mask = torch.zeros(points.shape[0], dtype=torch.bool, device=points.device)
    for region in regions:
        mask |= region.contains(points)
    return mask


def sample_box_outside(
    box: Box, regions: Sequence[Disk], n: int, generator: torch.Generator
) -> torch.Tensor:
    """n points uniform in `box` minus the union of `regions`, by rejection sampling.

    Raises ValueError when the regions cover (almost) the whole box, since rejection sampling
    would then never finish.
    """
    kept: list[torch.Tensor] = []
    count = 0
    for _ in range(1000):
        candidates = box.sample(max(2 * (n - count), 64), generator)
        outside = candidates[~inside_any(regions, candidates)]
        kept.append(outside)
        count += outside.shape[0]
        if count >= n:
            return torch.cat(kept)[:n]
    raise ValueError("the ID regions cover almost all of the box: no room to sample OOD points")
