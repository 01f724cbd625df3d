"""Regions of the plane with exact membership tests, and uniform samplers over them.

Evaluation labels come from `contains`, so they are exact rather than estimated.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
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

    def distance(self, points: torch.Tensor) -> torch.Tensor:
        """Euclidean distance from each point to the disk (0 inside)."""
        center = torch.as_tensor(self.center, dtype=points.dtype, device=points.device)
        return ((points - center).norm(dim=-1) - self.radius).clamp(min=0)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n points uniform in the disk: r = R * sqrt(U), theta = 2 * pi * V (area-uniform)."""
        u, v = torch.rand(2, n, generator=generator, dtype=torch.float64)
        r = self.radius * u.sqrt()
        theta = 2 * math.pi * v
        points = torch.stack([r * theta.cos(), r * theta.sin()], dim=-1)
        return (points + torch.tensor(self.center, dtype=torch.float64)).float()


def ring_sector_problem(
    r_in: float,
    r_out: float,
    theta_start: float = 0.0,
    theta_end: float = 2 * math.pi,
    where: str = "Annulus",
) -> str | None:
    """Why these radii and angles are not a ring sector, in one line naming `<where>.<field>`;
    None when they are one: 0 <= r_in < r_out and 0 <= theta_start < theta_end <= 2 pi.

    The one statement of the rule: Annulus refuses with it, and the config check before a run
    (oodmix.config.consistency) calls it with the config key of the region as `where`.
    """
    bounds = [
        ("r_in", r_in, 0 <= r_in, "it must be >= 0"),
        ("r_in", r_in, r_in < r_out, f"it must be below r_out={r_out}"),
        ("theta_start", theta_start, 0 <= theta_start, "it must be >= 0"),
        (
            "theta_start",
            theta_start,
            theta_start < theta_end,
            f"it must be below theta_end={theta_end}",
        ),
        ("theta_end", theta_end, theta_end <= 2 * math.pi + 1e-9, "it must be at most 2 pi"),
    ]
    for name, value, holds, requirement in bounds:
        if not holds:
            return f"{where}.{name}={value} is not allowed: {requirement}"
    return None


@dataclass(frozen=True)
class Annulus:
    """{x : r_in <= ||x - center|| <= r_out, angle of x - center in [theta_start, theta_end]}.

    The full ring by default; a half ring (theta from 0 to pi, or pi to 2 pi) is one "moon".
    Angles are in radians, measured counter-clockwise from the x axis, within [0, 2 pi].
    """

    center: tuple[float, float]
    r_in: float
    r_out: float
    theta_start: float = 0.0
    theta_end: float = 2 * math.pi

    def __post_init__(self) -> None:
        reason = ring_sector_problem(self.r_in, self.r_out, self.theta_start, self.theta_end)
        if reason:
            raise ValueError(reason)

    def _polar(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        offset = points - torch.as_tensor(self.center, dtype=points.dtype, device=points.device)
        angle = torch.atan2(offset[:, 1], offset[:, 0]) % (2 * math.pi)
        return offset.norm(dim=-1), angle

    def _in_sector(self, angle: torch.Tensor) -> torch.Tensor:
        # atan2 % 2 pi gives the closing ray of a sector that ends at 2 pi as angle 0.
        inside = (angle >= self.theta_start) & (angle <= self.theta_end)
        return inside | (angle + 2 * math.pi <= self.theta_end)

    def contains(self, points: torch.Tensor) -> torch.Tensor:
        radius, angle = self._polar(points)
        return (radius >= self.r_in) & (radius <= self.r_out) & self._in_sector(angle)

    def distance(self, points: torch.Tensor) -> torch.Tensor:
        """Euclidean distance to the region: radial inside the sector, else to an end segment."""
        radius, angle = self._polar(points)
        radial = (self.r_in - radius).clamp(min=0) + (radius - self.r_out).clamp(min=0)
        if self.theta_end - self.theta_start >= 2 * math.pi - 1e-9:
            return radial
        ends = [
            _segment_distance(points, self._at(self.r_in, theta), self._at(self.r_out, theta))
            for theta in (self.theta_start, self.theta_end)
        ]
        return torch.where(self._in_sector(angle), radial, torch.minimum(*ends))

    def _at(self, radius: float, theta: float) -> tuple[float, float]:
        return (
            self.center[0] + radius * math.cos(theta),
            self.center[1] + radius * math.sin(theta),
        )

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n points uniform in the region: r^2 uniform in [r_in^2, r_out^2], theta uniform."""
        u, v = torch.rand(2, n, generator=generator, dtype=torch.float64)
        r = (self.r_in**2 + u * (self.r_out**2 - self.r_in**2)).sqrt()
        theta = self.theta_start + v * (self.theta_end - self.theta_start)
        points = torch.stack([r * theta.cos(), r * theta.sin()], dim=-1)
        return (points + torch.tensor(self.center, dtype=torch.float64)).float()


def _segment_distance(
    points: torch.Tensor, a: tuple[float, float], b: tuple[float, float]
) -> torch.Tensor:
    """Distance from each point to the segment [a, b]."""
    start = torch.as_tensor(a, dtype=points.dtype, device=points.device)
    direction = torch.as_tensor(b, dtype=points.dtype, device=points.device) - start
    t = ((points - start) @ direction / direction.dot(direction)).clamp(0, 1)
    return (points - start - t[:, None] * direction).norm(dim=-1)


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


Region = Disk | Annulus


def distance_to_support(regions: Sequence[Region], points: torch.Tensor) -> torch.Tensor:
    """Distance from each point to the nearest region (0 inside the support)."""
    return torch.stack([region.distance(points) for region in regions]).amin(dim=0)


def sample_box_where(
    box: Box, keep: Callable[[torch.Tensor], torch.Tensor], n: int, generator: torch.Generator
) -> torch.Tensor:
    """n points uniform in `box` restricted to where `keep(points)` holds, by rejection."""
    kept: list[torch.Tensor] = []
    count = 0
    for _ in range(1000):
        candidates = box.sample(max(2 * (n - count), 64), generator)
        accepted = candidates[keep(candidates)]
        kept.append(accepted)
        count += accepted.shape[0]
        if count >= n:
            return torch.cat(kept)[:n]
    raise ValueError("the requested part of the box is (almost) empty: cannot sample points there")


def inside_any(regions: Sequence[Region], points: torch.Tensor) -> torch.Tensor:
    """Mask of the points that lie in at least one region."""
    mask = torch.zeros(points.shape[0], dtype=torch.bool, device=points.device)
    for region in regions:
        mask |= region.contains(points)
    return mask


def sample_box_outside(
    box: Box, regions: Sequence[Region], n: int, generator: torch.Generator
) -> torch.Tensor:
    """n points uniform in `box` minus the union of `regions`, by rejection sampling.

    Raises ValueError when the regions cover (almost) the whole box, since rejection sampling
    would then never finish.
    """
    try:
        return sample_box_where(box, lambda p: ~inside_any(regions, p), n, generator)
    except ValueError:
        raise ValueError(
            "the ID regions cover almost all of the box: no room to sample OOD points"
        ) from None
