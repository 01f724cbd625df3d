"""Regions of the plane: exact membership and uniform samplers."""

from __future__ import annotations

import math

import pytest
import torch

from oodmix.data.geometry import Box, Disk, sample_box_outside

TWO_DISKS = [Disk((-2.0, -2.0), 2.0), Disk((2.0, 2.0), 2.0)]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_disk_contains_includes_boundary_and_excludes_outside():
    """Points exactly on the circle count as inside; points just beyond it do not."""
    disk = Disk((-2.0, -2.0), 2.0)
    points = torch.tensor(
        [
            [-2.0, -2.0],  # centre
            [0.0, -2.0],  # boundary, right
            [-2.0, -4.0],  # boundary, bottom
            [-4.0, -2.0],  # boundary, left
            [-2.0, 0.0],  # boundary, top
            [0.001, -2.0],  # just outside
            [0.0, 0.0],  # distance 2*sqrt(2) > 2
            [2.0, 2.0],  # the other disk's centre
        ]
    )
    expected = [True, True, True, True, True, False, False, False]
    assert disk.contains(points).tolist() == expected


def test_disk_contains_matches_direct_distance_formula():
    """contains() agrees with ||x - c|| <= r computed in float64 on random points."""
    disk = Disk((1.5, -0.5), 3.0)
    points = torch.rand(5000, 2, generator=gen(1), dtype=torch.float64) * 20 - 10
    direct = ((points[:, 0] - 1.5) ** 2 + (points[:, 1] + 0.5) ** 2).sqrt() <= 3.0
    assert torch.equal(disk.contains(points), direct)


def test_disk_sample_all_inside():
    """Every sampled point lies in the closed disk, with the requested count and shape."""
    disk = Disk((2.0, 2.0), 2.0)
    points = disk.sample(5000, gen(0))
    assert points.shape == (5000, 2)
    dist = (points.double() - torch.tensor([2.0, 2.0], dtype=torch.float64)).norm(dim=1)
    assert bool((dist <= 2.0 + 1e-5).all())


def test_disk_sample_is_area_uniform():
    """Half the area lies within R/sqrt(2) of the centre, so about half the points do.

    A sampler uniform in the radius (rather than the area) would put ~71% there. Quadrants of
    the disk each get a quarter of the points. Tolerances are 4 binomial standard deviations.
    """
    n = 20000
    disk = Disk((-2.0, -2.0), 2.0)
    points = disk.sample(n, gen(2)).double() + 2.0  # relative to the centre
    radius = points.norm(dim=1)
    tolerance_half = 4 * math.sqrt(0.5 * 0.5 / n)
    inner = (radius <= 2.0 / math.sqrt(2)).double().mean().item()
    assert abs(inner - 0.5) < tolerance_half
    # The ring between radius 1 and 2 holds 3/4 of the area.
    ring = (radius > 1.0).double().mean().item()
    assert abs(ring - 0.75) < 4 * math.sqrt(0.75 * 0.25 / n)
    tolerance_quarter = 4 * math.sqrt(0.25 * 0.75 / n)
    for sx in (1, -1):
        for sy in (1, -1):
            frac = ((sx * points[:, 0] > 0) & (sy * points[:, 1] > 0)).double().mean().item()
            assert abs(frac - 0.25) < tolerance_quarter


def test_disk_sample_reproducible_with_generator():
    """The same generator seed gives the same points; another seed gives others."""
    disk = Disk((0.0, 0.0), 1.0)
    assert torch.equal(disk.sample(100, gen(3)), disk.sample(100, gen(3)))
    assert not torch.equal(disk.sample(100, gen(3)), disk.sample(100, gen(4)))


def test_box_sample_in_range_and_spread():
    """Box samples lie in [low, high]^dim, fill it (means ~ centre), with the right shape."""
    box = Box(-10.0, 10.0)
    points = box.sample(10000, gen(5))
    assert points.shape == (10000, 2)
    assert bool((points >= -10.0).all()) and bool((points <= 10.0).all())
    # Uniform on [-10, 10]: mean 0, std 20/sqrt(12); 5 standard errors.
    se = (20 / math.sqrt(12)) / math.sqrt(10000)
    assert bool((points.double().mean(dim=0).abs() < 5 * se).all())
    assert points.min().item() < -9.9 and points.max().item() > 9.9


def test_box_sample_other_dim():
    """dim sets the number of coordinates."""
    points = Box(0.0, 1.0, dim=3).sample(50, gen(6))
    assert points.shape == (50, 3)
    assert bool((points >= 0).all()) and bool((points <= 1).all())


def test_sample_box_outside_two_disks():
    """Exactly n points, each inside the box and outside every disk (direct distance check)."""
    points = sample_box_outside(Box(-10.0, 10.0), TWO_DISKS, 777, gen(7)).double()
    assert points.shape == (777, 2)
    assert bool((points >= -10).all()) and bool((points <= 10).all())
    d0 = (points - torch.tensor([-2.0, -2.0], dtype=torch.float64)).norm(dim=1)
    d1 = (points - torch.tensor([2.0, 2.0], dtype=torch.float64)).norm(dim=1)
    assert bool((d0 > 2.0).all()) and bool((d1 > 2.0).all())


def test_sample_box_outside_needs_several_rounds():
    """When most candidates are rejected (only the corners are free) the count is still exact."""
    disk = Disk((0.0, 0.0), 1.3)  # leaves ~5% of [-1, 1]^2 free, in the corners
    points = sample_box_outside(Box(-1.0, 1.0), [disk], 300, gen(8)).double()
    assert points.shape == (300, 2)
    assert bool((points.norm(dim=1) > 1.3).all())
    assert bool((points.abs() <= 1.0).all())


def test_sample_box_outside_raises_when_disks_cover_box():
    """Rejection sampling cannot succeed when the disks cover the whole box: ValueError."""
    with pytest.raises(ValueError, match="cover"):
        sample_box_outside(Box(-1.0, 1.0), [Disk((0.0, 0.0), 5.0)], 10, gen(9))
