"""Regions of the plane with exact membership tests, and uniform samplers over them.

Evaluation labels come from `contains`, so they are exact rather than estimated.

A region refuses a value it cannot use when it is built, in one line naming `<where>.<field>`:
`where` is the region's config key when a datamodule builds it from its config
(data.disks[1], data.classes[0].region), else the class's name (Disk, Annulus).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import InitVar, dataclass

import torch

from oodmix.allowed import is_number, number_above, number_at_least, point, require

#: Rounding slack of an angle written with finitely many digits (6.283185307179586 in yaml).
_ANGLE_SLACK = 1e-9

Extent = tuple[float, float, float, float]


def sector_angle(key: str, value: float) -> float:
    """An angle in radians in [0, 2 pi] (where a ring sector starts or ends)."""
    holds = is_number(value) and 0 <= value <= 2 * math.pi + _ANGLE_SLACK
    return require(key, value, holds, "an angle in radians in [0, 2 pi]")


@dataclass(frozen=True)
class Disk:
    """The closed disk ||x - center|| <= radius in R^2.

    center: two finite numbers; radius: a finite number > 0. `where` names the disk in a
    refusal (its config key, e.g. data.disks[1]); it is not part of the disk.
    """

    center: tuple[float, float]
    radius: float
    where: InitVar[str] = "Disk"

    def __post_init__(self, where: str) -> None:
        # A tuple whatever sequence came in (a config's ListConfig): hashable, like the disk.
        object.__setattr__(self, "center", point(f"{where}.center", self.center))
        number_above(f"{where}.radius", self.radius, 0)

    def extent(self) -> Extent:
        """(x_min, x_max, y_min, y_max): the disk's exact bounding box."""
        (cx, cy), r = self.center, self.radius
        return cx - r, cx + r, cy - r, cy + r

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


def check_ring_sector(
    r_in: float, r_out: float, theta_start: float, theta_end: float, where: str
) -> None:
    """Radii and angles, each in its own range, make a ring sector: r_in < r_out and
    theta_start < theta_end (the refusal names `<where>.<field>`)."""
    if not r_in < r_out:
        raise ValueError(f"{where}.r_in={r_in} is not allowed: it must be below r_out={r_out}")
    if not theta_start < theta_end:
        raise ValueError(
            f"{where}.theta_start={theta_start} is not allowed: it must be below "
            f"theta_end={theta_end}"
        )


@dataclass(frozen=True)
class Annulus:
    """{x : r_in <= ||x - center|| <= r_out, angle of x - center in [theta_start, theta_end]}.

    The full ring by default; a half ring (theta from 0 to pi, or pi to 2 pi) is one "moon".
    Angles are in radians, measured counter-clockwise from the x axis.

    center: two finite numbers; r_in: a finite number >= 0, below r_out, a finite number > 0;
    theta_start and theta_end: angles in [0, 2 pi], theta_start below theta_end. `where` names
    the ring in a refusal (its config key, e.g. data.classes[0].region); it is not part of it.
    """

    center: tuple[float, float]
    r_in: float
    r_out: float
    theta_start: float = 0.0
    theta_end: float = 2 * math.pi
    where: InitVar[str] = "Annulus"

    def __post_init__(self, where: str) -> None:
        object.__setattr__(self, "center", point(f"{where}.center", self.center))
        number_at_least(f"{where}.r_in", self.r_in, 0)
        number_above(f"{where}.r_out", self.r_out, 0)
        sector_angle(f"{where}.theta_start", self.theta_start)
        sector_angle(f"{where}.theta_end", self.theta_end)
        check_ring_sector(self.r_in, self.r_out, self.theta_start, self.theta_end, where)

    def extent(self) -> Extent:
        """(x_min, x_max, y_min, y_max): the ring sector's exact bounding box."""
        start, end = self.theta_start, self.theta_end
        # The extremes of a ring sector lie at its end angles or where it crosses an axis
        # direction (0, pi/2, pi, 3 pi/2, 2 pi), on its inner or outer circle.
        axes = [k * math.pi / 2 for k in range(5) if start <= k * math.pi / 2 <= end]
        radii = (self.r_in, self.r_out)
        xs, ys = zip(*(self._at(r, theta) for theta in [start, end, *axes] for r in radii))
        return min(xs), max(xs), min(ys), max(ys)

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
