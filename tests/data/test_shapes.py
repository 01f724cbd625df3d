"""Annuli, half rings and the shapes datasets (moons, rings, blobs, two_disks), shifted sets."""

from __future__ import annotations

import math

import hydra.utils
import pytest
import torch

from oodmix.data import ShapesDataModule
from oodmix.data.geometry import Annulus, Disk
from oodmix.runs.job import train

PI = math.pi


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def polar(points: torch.Tensor, center: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """(radius, angle in [0, 2 pi)) of the points around `center`, in float64."""
    d = points.double() - torch.tensor(center, dtype=torch.float64)
    angle = torch.atan2(d[:, 1], d[:, 0])
    return d.norm(dim=1), torch.where(angle < 0, angle + 2 * PI, angle)


# --- Annulus and Disk ---------------------------------------------------------------------------


def test_annulus_contains_matches_direct_formula():
    """Full ring and upper half ring: r_in <= r <= r_out (and y >= 0) on random points."""
    points = torch.rand(5000, 2, generator=gen(0), dtype=torch.float64) * 6 - 3
    r = points.norm(dim=1)
    ring = (r >= 1) & (r <= 2)
    assert torch.equal(Annulus((0.0, 0.0), 1.0, 2.0).contains(points), ring)
    half = Annulus((0.0, 0.0), 1.0, 2.0, 0.0, PI)
    assert torch.equal(half.contains(points), ring & (points[:, 1] >= 0))


def test_annulus_contains_hand_points():
    """Boundary radii count as inside; the lower half is outside the upper half ring."""
    half = Annulus((1.0, 1.0), 1.0, 2.0, 0.0, PI)
    points = torch.tensor(
        [[2.0, 1.0], [3.0, 1.0], [1.0, 2.5], [1.0, 0.0], [1.0, 1.5], [3.5, 1.0], [-0.5, 1.2]]
    )
    assert half.contains(points).tolist() == [True, True, True, False, False, False, True]


def test_full_ring_distance_is_radial_gap():
    """Full ring r in [1, 2]: distance = max(1 - r, 0, r - 2)."""
    ring = Annulus((0.0, 0.0), 1.0, 2.0)
    points = torch.tensor([[0.0, 0.0], [0.5, 0.0], [0.0, 1.5], [-3.0, 4.0], [0.0, -2.0]])
    expected = [1.0, 0.5, 0.0, 3.0, 0.0]
    torch.testing.assert_close(ring.distance(points), torch.tensor(expected))


def test_half_ring_distance_hand_points():
    """Upper half ring r in [1, 2]: radial gap inside the sector, distance to an end otherwise."""
    half = Annulus((0.0, 0.0), 1.0, 2.0, 0.0, PI)
    cases = {
        (1.5, -1.0): 1.0,  # below the end segment [(1, 0), (2, 0)]
        (0.0, -3.0): math.sqrt(10.0),  # nearest points (+-1, 0)
        (0.0, 0.0): 1.0,  # the centre: angle 0, radial gap 1
        (0.0, 3.0): 1.0,  # above, in the sector
        (0.0, 1.5): 0.0,  # inside
        (-1.5, -0.5): 0.5,  # below the end segment [(-2, 0), (-1, 0)]
        (3.0, -4.0): math.sqrt(17.0),  # nearest point (2, 0)
        (-0.5, -0.5): math.sqrt(0.5),  # nearest point (-1, 0)
    }
    points = torch.tensor(list(cases), dtype=torch.float64)
    expected = torch.tensor(list(cases.values()), dtype=torch.float64)
    torch.testing.assert_close(half.distance(points), expected)


def test_half_ring_distance_against_dense_region_points():
    """Distance to the lower half ring equals the minimum over a dense polar grid of it."""
    center = (1.0, 0.5)
    half = Annulus(center, 0.8, 1.2, PI, 2 * PI)
    radii = torch.linspace(0.8, 1.2, 41, dtype=torch.float64)
    angles = torch.linspace(PI, 2 * PI, 1201, dtype=torch.float64)
    r, a = torch.meshgrid(radii, angles, indexing="ij")
    grid = torch.stack([center[0] + r * a.cos(), center[1] + r * a.sin()], dim=-1).reshape(-1, 2)
    points = torch.rand(300, 2, generator=gen(1), dtype=torch.float64) * 6 - torch.tensor(
        [2.0, 2.5], dtype=torch.float64
    )
    brute = torch.cdist(points, grid).amin(dim=1)
    # The grid spacing is at most 1.2 * pi / 1200 < 0.004 along the arc and 0.01 radially.
    assert float((half.distance(points) - brute).abs().max()) < 0.006


def test_annulus_sample_inside_and_area_uniform():
    """Samples lie in the half ring; about half have r^2 < 2.5 and half an angle below pi / 2."""
    # Uniform in r would give P(r^2 < 2.5) = sqrt(2.5) - 1 ~ 0.58; tolerance: 4 binomial sd.
    n = 20000
    half = Annulus((0.0, 0.0), 1.0, 2.0, 0.0, PI)
    points = half.sample(n, gen(2))
    assert points.shape == (n, 2)
    r, angle = polar(points, (0.0, 0.0))
    assert bool((r >= 1 - 1e-5).all()) and bool((r <= 2 + 1e-5).all())
    assert bool((points[:, 1] >= -1e-5).all())
    tolerance = 4 * math.sqrt(0.25 / n)
    assert abs((r**2 < 2.5).double().mean().item() - 0.5) < tolerance
    assert abs((angle < PI / 2).double().mean().item() - 0.5) < tolerance


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (
            (-0.5, 1.0, 0.0, 2 * PI),
            "r_in=-0.5 is not allowed: Annulus.r_in must be a finite number >= 0",
        ),
        ((2.0, 2.0, 0.0, 2 * PI), "r_in=2.0 is not allowed: it must be below r_out=2.0"),
        ((3.0, 2.0, 0.0, 2 * PI), "r_in=3.0 is not allowed: it must be below r_out=2.0"),
        (
            (1.0, 2.0, -0.1, PI),
            "theta_start=-0.1 is not allowed: Annulus.theta_start must be an angle in radians in "
            "[0, 2 pi]",
        ),
        ((1.0, 2.0, PI, PI), f"theta_start={PI} is not allowed: it must be below theta_end={PI}"),
        ((1.0, 2.0, 2.0, 1.0), "theta_start=2.0 is not allowed: it must be below theta_end=1.0"),
        (
            (1.0, 2.0, 0.0, 7.0),
            "theta_end=7 is not allowed: Annulus.theta_end must be an angle in radians in "
            "[0, 2 pi]",
        ),
    ],
)
def test_annulus_invalid_radii_or_angles_rejected(args, reason):
    """r_in < 0, r_in >= r_out, theta_start < 0, theta_start >= theta_end, theta_end > 2 pi:
    one line naming the field, its value and what it must be."""
    with pytest.raises(ValueError) as error:
        Annulus((0.0, 0.0), *args)
    assert str(error.value) == f"Annulus.{reason}"


def test_disk_distance_hand_points():
    """Disk at (1, 0), radius 2: 0 inside or on the circle, ||x - c|| - 2 outside."""
    disk = Disk((1.0, 0.0), 2.0)
    points = torch.tensor([[1.0, 0.0], [3.0, 0.0], [5.0, 0.0], [4.0, 4.0], [1.0, -2.5]])
    torch.testing.assert_close(disk.distance(points), torch.tensor([0.0, 0.0, 2.0, 3.0, 0.5]))


# --- the datasets, by direct formulas of their yaml ---------------------------------------------


def disk_distance(center, radius):
    return lambda p: (polar(p, center)[0] - radius).clamp(min=0)


def ring_distance(center, r_in, r_out):
    def distance(p):
        r = polar(p, center)[0]
        return (r_in - r).clamp(min=0) + (r - r_out).clamp(min=0)

    return distance


def half_ring_distance(center, r_in, r_out, upper: bool):
    """Radial gap in the half plane of the ring, else sqrt(g^2 + dy^2) to its two end segments."""
    # g is the gap from |dx| to [r_in, r_out]: the ends lie on the line through the centre.

    def distance(p):
        d = p.double() - torch.tensor(center, dtype=torch.float64)
        r = d.norm(dim=1)
        radial = (r_in - r).clamp(min=0) + (r - r_out).clamp(min=0)
        ax = d[:, 0].abs()
        g = (r_in - ax).clamp(min=0) + (ax - r_out).clamp(min=0)
        to_ends = (g**2 + d[:, 1] ** 2).sqrt()
        in_sector = d[:, 1] >= 0 if upper else d[:, 1] <= 0
        return torch.where(in_sector, radial, to_ends)

    return distance


# name -> (class distance functions, box, n_train per class, near_margin, far_margin)
DATASETS = {
    "moons": (
        [
            half_ring_distance((0.0, 0.0), 0.8, 1.2, upper=True),
            half_ring_distance((1.0, 0.5), 0.8, 1.2, upper=False),
        ],
        (-3.0, 4.0),
        1000,
        0.3,
        1.2,
    ),
    "rings": (
        [ring_distance((0.0, 0.0), 1.0, 2.0), ring_distance((0.0, 0.0), 3.0, 4.0)],
        (-6.0, 6.0),
        1000,
        0.4,
        1.5,
    ),
    "blobs": (
        [disk_distance(c, 1.5) for c in [(-4.0, -4.0), (-4.0, 4.0), (4.0, -4.0), (4.0, 4.0)]],
        (-10.0, 10.0),
        500,
        1.0,
        4.0,
    ),
    "two_disks": (
        [disk_distance((-2.0, -2.0), 2.0), disk_distance((2.0, 2.0), 2.0)],
        (-10.0, 10.0),
        1000,
        1.0,
        4.0,
    ),
}


def direct_labels(name: str, points: torch.Tensor) -> torch.Tensor:
    """Class of the first region at distance 0 (the point is inside), -1 when none."""
    distances = torch.stack([f(points) for f in DATASETS[name][0]])
    inside = distances == 0
    first = inside.double().argmax(dim=0)
    return torch.where(inside.any(dim=0), first, -1)


def support_distance(name: str, points: torch.Tensor) -> torch.Tensor:
    return torch.stack([f(points) for f in DATASETS[name][0]]).amin(dim=0)


def in_box(points: torch.Tensor, box: tuple[float, float]) -> bool:
    return bool(((points >= box[0]) & (points <= box[1])).all())


@pytest.fixture(scope="module")
def generated() -> dict:
    """Each dataset built from its composed config, generated twice (same seed)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from oodmix.config.paths import config_dir

    out = {}
    for name in DATASETS:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = compose("train", overrides=[f"data={name}"])
        first = hydra.utils.instantiate(cfg.data)
        second = hydra.utils.instantiate(cfg.data)
        out[name] = (first, first.generate(), second.generate())
    GlobalHydra.instance().clear()
    return out


@pytest.mark.parametrize("name", list(DATASETS))
def test_id_training_points_lie_in_their_region(generated, name):
    """n_train ID points per class, each inside its class's region (tolerance 1e-5)."""
    functions, _, n_train, _, _ = DATASETS[name]
    _, splits, _ = generated[name]
    assert splits.id_x.shape == (n_train * len(functions), 2)
    for k, distance in enumerate(functions):
        points = splits.id_x[splits.id_y == k]
        assert points.shape[0] == n_train
        assert float(distance(points).max()) < 1e-5


@pytest.mark.parametrize("name", list(DATASETS))
def test_ood_training_points_outside_every_region_inside_box(generated, name):
    """2000 OOD training points, all in the box, none in any region."""
    _, box, _, _, _ = DATASETS[name]
    _, splits, _ = generated[name]
    assert splits.ood_x.shape == (2000, 2)
    assert in_box(splits.ood_x, box)
    assert bool((support_distance(name, splits.ood_x) > 0).all())


@pytest.mark.parametrize("name", list(DATASETS))
def test_eval_labels_equal_direct_membership(generated, name):
    """val and test: 2000 box points whose is_id and y equal the direct membership."""
    _, box, _, _, _ = DATASETS[name]
    _, splits, _ = generated[name]
    for eval_set in (splits.val, splits.test):
        assert eval_set.x.shape == (2000, 2)
        assert in_box(eval_set.x, box)
        y = direct_labels(name, eval_set.x)
        assert torch.equal(eval_set.y.long(), y)
        assert torch.equal(eval_set.is_id.bool(), y >= 0)
        assert 0 < int((y >= 0).sum()) < 2000


@pytest.mark.parametrize("name", list(DATASETS))
def test_shifted_test_sets(generated, name):
    """test_near OOD within (0, near_margin], test_far OOD beyond far_margin; n_shift of each."""
    functions, box, _, near, far = DATASETS[name]
    datamodule, splits, _ = generated[name]
    assert set(splits.extra_tests) == {"test_near", "test_far"}
    for set_name in ("test_near", "test_far"):
        eval_set = splits.extra_tests[set_name]
        assert eval_set.x.shape == (2000, 2)
        assert in_box(eval_set.x, box)
        y = direct_labels(name, eval_set.x)
        assert torch.equal(eval_set.y.long(), y)
        assert torch.equal(eval_set.is_id.bool(), y >= 0)
        assert int((y >= 0).sum()) == 1000 and int((y < 0).sum()) == 1000
        assert set(y[y >= 0].tolist()) == set(range(len(functions)))
        distance = support_distance(name, eval_set.x[y < 0])
        assert float(distance.min()) > 0
        if set_name == "test_near":
            assert float(distance.max()) <= near + 1e-5
        else:
            assert float(distance.min()) > far - 1e-5
    datamodule.splits = splits
    assert datamodule.test_set_names == ["test", "test_near", "test_far"]


@pytest.mark.parametrize("name", list(DATASETS))
def test_same_seed_same_data(generated, name):
    """Two datamodules of one config generate bit-identical splits, shifted sets included."""
    _, a, b = generated[name]
    assert torch.equal(a.id_x, b.id_x) and torch.equal(a.id_y, b.id_y)
    assert torch.equal(a.ood_x, b.ood_x)
    pairs = [(a.val, b.val), (a.test, b.test)]
    pairs += [(a.extra_tests[n], b.extra_tests[n]) for n in ("test_near", "test_far")]
    for sa, sb in pairs:
        assert torch.equal(sa.x, sb.x) and torch.equal(sa.y, sb.y)
        assert torch.equal(sa.is_id, sb.is_id)


def reference_two_disks(seed: int) -> tuple[torch.Tensor, ...]:
    """The paper's ID, OOD, val and test points, re-drawn independently of oodmix."""
    # Per disk r = 2 sqrt(U), theta = 2 pi V; OOD by rejection from the box in rounds of
    # max(2 * missing, 64) candidates; then 2000 val and 2000 test points uniform in the box.
    g = gen(seed)
    centers = [(-2.0, -2.0), (2.0, 2.0)]
    id_parts = []
    for cx, cy in centers:
        u, v = torch.rand(2, 1000, generator=g, dtype=torch.float64)
        r, theta = 2.0 * u.sqrt(), 2 * PI * v
        points = torch.stack([r * theta.cos(), r * theta.sin()], dim=-1)
        id_parts.append((points + torch.tensor([cx, cy], dtype=torch.float64)).float())

    def box(n: int) -> torch.Tensor:
        return (-10.0 + 20.0 * torch.rand(n, 2, generator=g, dtype=torch.float64)).float()

    kept, count = [], 0
    while count < 2000:
        candidates = box(max(2 * (2000 - count), 64))
        outside = torch.ones(candidates.shape[0], dtype=torch.bool)
        for cx, cy in centers:
            outside &= (candidates[:, 0] - cx) ** 2 + (candidates[:, 1] - cy) ** 2 > 4.0
        kept.append(candidates[outside])
        count += int(outside.sum())
    ood = torch.cat(kept)[:2000]
    return torch.cat(id_parts), ood, box(2000), box(2000)


def test_two_disks_main_splits_unchanged_by_shifted_sets(generated):
    """ID, OOD, val and test points of two_disks equal the independent reference draw."""
    _, splits, _ = generated["two_disks"]
    id_x, ood_x, val_x, test_x = reference_two_disks(seed=0)
    torch.testing.assert_close(splits.id_x, id_x, rtol=0, atol=1e-6)
    assert splits.id_y.tolist() == [0] * 1000 + [1] * 1000
    torch.testing.assert_close(splits.ood_x, ood_x, rtol=0, atol=1e-6)
    torch.testing.assert_close(splits.val.x, val_x, rtol=0, atol=1e-6)
    torch.testing.assert_close(splits.test.x, test_x, rtol=0, atol=1e-6)


def test_two_disks_equals_shapes_with_the_same_disks(generated):
    """TwoDisksDataModule gives the same splits as ShapesDataModule with Disk regions."""
    _, expected, _ = generated["two_disks"]
    shapes = ShapesDataModule(
        classes=[
            {"region": Disk((-2.0, -2.0), 2.0), "n_train": 1000},
            {"region": Disk((2.0, 2.0), 2.0), "n_train": 1000},
        ],
        seed=0,
    ).generate()
    assert torch.equal(shapes.id_x, expected.id_x) and torch.equal(shapes.ood_x, expected.ood_x)
    assert torch.equal(shapes.val.x, expected.val.x) and torch.equal(shapes.test.x, expected.test.x)


def test_moons_end_to_end_writes_shifted_metrics(compose_config):
    """Two epochs on moons write auroc, fpr95 and f1 for test, test_near and test_far."""
    metrics = train(compose_config("data=moons", "trainer.max_epochs=2", "plots=false"))
    for prefix in ("test", "test_near", "test_far"):
        for metric in ("auroc", "fpr95", "f1"):
            value = metrics[f"{prefix}/{metric}"]
            assert 0.0 <= value <= 1.0, (prefix, metric)


def test_sector_ending_at_two_pi_contains_its_closing_ray() -> None:
    """The ray at angle 2 pi (= 0) closes a lower half ring: inside, like distance 0 says."""
    lower = Annulus((0.0, 0.0), 1.0, 2.0, math.pi, 2 * math.pi)
    on_ray = torch.tensor([[1.5, 0.0]])
    assert lower.contains(on_ray).tolist() == [True]
    assert lower.distance(on_ray).item() == pytest.approx(0.0, abs=1e-9)
    assert lower.contains(torch.tensor([[1.5, 0.1]])).tolist() == [False]
