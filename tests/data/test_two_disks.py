"""The paper's dataset, built with the numbers of conf/data/two_disks.yaml."""

from __future__ import annotations

import pytest
import torch

from oodmix.data import TwoDisksDataModule

CENTERS = [(-2.0, -2.0), (2.0, 2.0)]
RADIUS = 2.0


def make_datamodule(seed: int = 0) -> TwoDisksDataModule:
    """TwoDisksDataModule with the values of conf/data/two_disks.yaml."""
    return TwoDisksDataModule(
        disks=[
            {"center": [-2.0, -2.0], "radius": 2.0, "n_train": 1000},
            {"center": [2.0, 2.0], "radius": 2.0, "n_train": 1000},
        ],
        box=[-10.0, 10.0],
        n_ood_train=2000,
        n_val=2000,
        n_test=2000,
        batch_size=128,
        ood_batch_size=None,
        eval_batch_size=4096,
        drop_last=False,
        seed=seed,
        mixup={"alpha": 1.0},
    )


def distance(points: torch.Tensor, center: tuple[float, float]) -> torch.Tensor:
    return (points.double() - torch.tensor(center, dtype=torch.float64)).norm(dim=1)


def expected_labels(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground truth by the direct formula ||x - c_k|| <= 2: (is_id, y with -1 for OOD)."""
    in0 = distance(points, CENTERS[0]) <= RADIUS
    in1 = distance(points, CENTERS[1]) <= RADIUS
    y = torch.where(in0, 0, torch.where(in1, 1, -1)).long()
    return in0 | in1, y


@pytest.fixture(scope="module")
def splits():
    dm = make_datamodule(seed=0)
    dm.setup("fit")
    return dm.splits


def test_datamodule_shape_constants():
    """Two features, one class per disk."""
    dm = make_datamodule()
    assert dm.num_features == 2
    assert dm.num_classes == 2


def test_id_training_points_lie_in_their_disk(splits):
    """1000 points per class, class k inside disk k."""
    assert splits.id_x.shape == (2000, 2)
    assert splits.id_y.shape == (2000,)
    for k, center in enumerate(CENTERS):
        class_points = splits.id_x[splits.id_y == k]
        assert class_points.shape[0] == 1000
        assert bool((distance(class_points, center) <= RADIUS + 1e-5).all())
    assert set(splits.id_y.tolist()) == {0, 1}


def test_ood_training_points_outside_disks_inside_box(splits):
    """2000 OOD training points, none in either disk, all in [-10, 10]^2."""
    ood = splits.ood_x
    assert ood.shape == (2000, 2)
    assert bool((ood >= -10).all()) and bool((ood <= 10).all())
    for center in CENTERS:
        assert bool((distance(ood, center) > RADIUS).all())


@pytest.mark.parametrize("stage", ["val", "test"])
def test_eval_set_labels_match_direct_formula(splits, stage):
    """2000 points in the box; is_id and y agree with the disk-distance formula."""
    eval_set = getattr(splits, stage)
    assert eval_set.x.shape == (2000, 2)
    assert bool((eval_set.x >= -10).all()) and bool((eval_set.x <= 10).all())
    is_id, y = expected_labels(eval_set.x)
    assert torch.equal(eval_set.is_id.bool(), is_id)
    assert torch.equal(eval_set.y.long(), y)
    # Both disks cover 8*pi/400 ~ 6.3% of the box: both kinds of point are present.
    n_id = int(is_id.sum())
    assert 60 < n_id < 200
    assert int((y == 0).sum()) > 0 and int((y == 1).sum()) > 0


def test_same_seed_gives_identical_tensors():
    """Generating twice with one seed gives bit-identical splits."""
    a, b = make_datamodule(seed=3).generate(), make_datamodule(seed=3).generate()
    assert torch.equal(a.id_x, b.id_x) and torch.equal(a.id_y, b.id_y)
    assert torch.equal(a.ood_x, b.ood_x)
    for stage in ("val", "test"):
        sa, sb = getattr(a, stage), getattr(b, stage)
        assert torch.equal(sa.x, sb.x)
        assert torch.equal(sa.is_id, sb.is_id) and torch.equal(sa.y, sb.y)


def test_different_seed_gives_different_data():
    """Another seed changes every random split."""
    a, b = make_datamodule(seed=0).generate(), make_datamodule(seed=1).generate()
    assert not torch.equal(a.id_x, b.id_x)
    assert not torch.equal(a.ood_x, b.ood_x)
    assert not torch.equal(a.val.x, b.val.x)
    assert not torch.equal(a.test.x, b.test.x)


def test_val_and_test_differ(splits):
    """Validation and test are independent draws, not the same points."""
    assert not torch.equal(splits.val.x, splits.test.x)
    # Not even one shared point (probability ~0 for independent continuous draws).
    shared = (splits.val.x[:, None, :] == splits.test.x[None, :, :]).all(dim=-1)
    assert not bool(shared.any())


def test_label_boundary_points():
    """label() counts the circle as ID and gives the right class, with -1 outside."""
    dm = make_datamodule()
    points = torch.tensor([[0.0, -2.0], [2.0, 4.0], [5.0, 5.0], [-2.0, -2.0], [0.0, 2.0]])
    result = dm.label(points)
    assert result.is_id.tolist() == [True, True, False, True, True]
    assert result.y.tolist() == [0, 1, -1, 0, 1]
