"""Each data.* range is stated by the class that uses the value: its constructor, built here
directly from Python, refuses a bad value with one line naming the config key, and takes a good
one. Nothing here generates or loads data (the digits are never read)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from oodmix.allowed import shown
from oodmix.config.paths import config_dir
from oodmix.data import Mixup, ShapesDataModule, TwoDisksDataModule
from oodmix.data import digits as digits_module
from oodmix.data.digits import DigitsDataModule
from oodmix.data.geometry import Annulus, Disk
from oodmix.data.loaders import TrainBatches
from oodmix.data.npz import NpzDataModule

PI = math.pi
DISKS = [
    {"center": [-2.0, -2.0], "radius": 2.0, "n_train": 10},
    {"center": [2.0, 2.0], "radius": 2.0, "n_train": 10},
]
DISK = "oodmix.data.geometry.Disk"
ANNULUS = "oodmix.data.geometry.Annulus"
#: The upper half ring of data=moons, as its config gives it.
UPPER = {"_target_": ANNULUS, "center": [0.0, 0.0], "r_in": 0.8, "r_out": 1.2, "theta_end": PI}


def refusal(build) -> str:
    """The one-line message of the ValueError that `build()` raises."""
    with pytest.raises(ValueError) as error:
        build()
    message = str(error.value)
    assert "\n" not in message
    return message


def two_disks(**changes):
    return lambda: TwoDisksDataModule(**{"disks": DISKS, **changes})


def disks_with(i: int, **changes) -> list[dict]:
    disks = [dict(d) for d in DISKS]
    disks[i].update(changes)
    return disks


def shapes(*regions, **changes):
    classes = [{"region": region, "n_train": 10} for region in regions]
    return lambda: ShapesDataModule(**{"classes": classes, **changes})


def ring(**changes) -> dict:
    return {**UPPER, **changes}


# --- batches (every dataset: OODDataModule) ------------------------------------------------------

BATCHES = {
    "batch_size": (0, "data.batch_size=0 is not allowed: data.batch_size must be an integer >= 1"),
    "batch_size 2.5": (
        2.5,
        "data.batch_size=2.5 is not allowed: data.batch_size must be an integer >= 1",
    ),
    "ood_batch_size": (
        0,
        "data.ood_batch_size=0 is not allowed: data.ood_batch_size must be null (as many as ID) "
        "or an integer >= 1",
    ),
    "eval_batch_size": (
        0,
        "data.eval_batch_size=0 is not allowed: data.eval_batch_size must be an integer >= 1",
    ),
    "drop_last": (
        "maybe",
        "data.drop_last='maybe' is not allowed: data.drop_last must be true or false",
    ),
    "steps_per_chunk": (
        0,
        "data.steps_per_chunk=0 is not allowed: data.steps_per_chunk must be an integer >= 1",
    ),
}


@pytest.mark.parametrize("case", list(BATCHES))
def test_batch_settings_are_refused_by_the_datamodule(case) -> None:
    value, message = BATCHES[case]
    assert refusal(two_disks(**{case.split()[0]: value})) == message


def test_good_batch_settings_are_taken() -> None:
    datamodule = two_disks(
        batch_size=1, ood_batch_size=None, eval_batch_size=1, drop_last=True, steps_per_chunk=1
    )()
    assert (datamodule.batch_size, datamodule.ood_batch_size) == (1, None)
    assert (datamodule.drop_last, datamodule.steps_per_chunk) == (True, 1)
    assert two_disks(ood_batch_size=3)().ood_batch_size == 3


def test_a_loader_built_by_hand_states_the_same_chunk_rule() -> None:
    """TrainBatches refuses steps_per_chunk with the rule the datamodule uses, in its own name."""
    build = lambda: TrainBatches(  # noqa: E731
        torch.zeros(4, 2), torch.zeros(4), None, 2, None, 0, lambda: 0, steps_per_chunk=0
    )
    assert refusal(build) == (
        "steps_per_chunk=0 is not allowed: steps_per_chunk must be an integer >= 1"
    )


@pytest.mark.parametrize("alpha", [0, -1.0, float("nan")])
def test_mixup_alpha(alpha) -> None:
    message = f"mixup.alpha={shown(alpha)} is not allowed: mixup.alpha must be a finite number > 0"
    assert refusal(lambda: Mixup(alpha)) == message
    assert refusal(two_disks(mixup={"alpha": alpha})) == message
    assert Mixup(0.2).alpha == 0.2


# --- the 2-D datasets (ShapesDataModule, TwoDisksDataModule) -------------------------------------

SHAPES = {
    "box reversed": (
        {"box": [5, -5]},
        "data.box=[5, -5] is not allowed: data.box must be [low, high] with low < high: the "
        "square [low, high]^2",
    ),
    "box of one number": (
        {"box": [3.0]},
        "data.box=[3.0] is not allowed: data.box must be [low, high] with low < high: the square "
        "[low, high]^2",
    ),
    "box not finite": (
        {"box": [-10.0, math.inf]},
        "data.box=[-10.0, inf] is not allowed: data.box must be [low, high] with low < high: the "
        "square [low, high]^2",
    ),
    "n_ood_train": (
        {"n_ood_train": 0},
        "data.n_ood_train=0 is not allowed: data.n_ood_train must be an integer >= 1",
    ),
    "n_val": ({"n_val": 1}, "data.n_val=1 is not allowed: data.n_val must be an integer >= 2"),
    "n_test": (
        {"n_test": 1.5},
        "data.n_test=1.5 is not allowed: data.n_test must be an integer >= 2",
    ),
    "n_shift": (
        {"n_shift": 0},
        "data.n_shift=0 is not allowed: data.n_shift must be an integer >= 1",
    ),
    "near_margin": (
        {"near_margin": 0},
        "data.near_margin=0 is not allowed: data.near_margin must be a finite number > 0",
    ),
    "far_margin": (
        {"far_margin": -1.0},
        "data.far_margin=-1 is not allowed: data.far_margin must be a finite number > 0",
    ),
    "near beyond far": (
        {"near_margin": 5, "far_margin": 4.0},
        "data.near_margin=5 is not allowed: it must be <= data.far_margin=4.0 (near OOD lies "
        "closer to the ID support than far OOD)",
    ),
    "one disk": (
        {"disks": DISKS[:1]},
        "data.disks=[{'center': [-2.0, -2.0], 'radius': 2.0, 'n_train': 10}] is not allowed: "
        "data.disks must be a list of at least 2 disks",
    ),
    "disk radius": (
        {"disks": disks_with(1, radius=-2)},
        "data.disks[1].radius=-2 is not allowed: data.disks[1].radius must be a finite number > 0",
    ),
    "disk center": (
        {"disks": disks_with(0, center=[1])},
        "data.disks[0].center=[1] is not allowed: data.disks[0].center must be two numbers, e.g. "
        "[0.0, 1.5]",
    ),
    "disk n_train": (
        {"disks": disks_with(1, n_train=0)},
        "data.disks[1].n_train=0 is not allowed: data.disks[1].n_train must be an integer >= 1",
    ),
}


@pytest.mark.parametrize("case", list(SHAPES))
def test_two_disks_settings_are_refused_by_the_datamodule(case) -> None:
    changes, message = SHAPES[case]
    assert refusal(two_disks(**changes)) == message


REGIONS = {
    "r_in below 0": (
        ring(r_in=-0.5),
        "data.classes[0].region.r_in=-0.5 is not allowed: data.classes[0].region.r_in must be a "
        "finite number >= 0",
    ),
    "r_out": (
        ring(r_in=0.0, r_out=0),
        "data.classes[0].region.r_out=0 is not allowed: data.classes[0].region.r_out must be a "
        "finite number > 0",
    ),
    "r_in not below r_out": (
        ring(r_in=2),
        "data.classes[0].region.r_in=2 is not allowed: it must be below r_out=1.2",
    ),
    "theta_start below 0": (
        ring(theta_start=-0.1),
        "data.classes[0].region.theta_start=-0.1 is not allowed: "
        "data.classes[0].region.theta_start must be an angle in radians in [0, 2 pi]",
    ),
    "theta_end beyond 2 pi": (
        ring(theta_end=7.0),
        "data.classes[0].region.theta_end=7 is not allowed: data.classes[0].region.theta_end "
        "must be an angle in radians in [0, 2 pi]",
    ),
    "theta_start not below theta_end": (
        ring(theta_start=2.0, theta_end=1.0),
        "data.classes[0].region.theta_start=2.0 is not allowed: it must be below theta_end=1.0",
    ),
    "center": (
        ring(center=[0.0, "a"]),
        "data.classes[0].region.center=[0.0, 'a'] is not allowed: data.classes[0].region.center "
        "must be two numbers, e.g. [0.0, 1.5]",
    ),
    "disk radius": (
        {"_target_": DISK, "center": [0.0, 0.0], "radius": 0.0},
        "data.classes[0].region.radius=0 is not allowed: data.classes[0].region.radius must be "
        "a finite number > 0",
    ),
    "not a region": (
        {"center": [0.0, 0.0], "radius": 1.0},
        "data.classes[0].region={'center': [0.0, 0.0], 'radius': 1.0} is not allowed: "
        "data.classes[0].region must be a Disk or an Annulus (_target_: "
        "oodmix.data.geometry.Disk or oodmix.data.geometry.Annulus)",
    ),
}


@pytest.mark.parametrize("case", list(REGIONS))
def test_a_region_built_from_its_config_names_its_key(case) -> None:
    region, message = REGIONS[case]
    assert refusal(shapes(region, UPPER)) == message


def test_class_list_and_n_train() -> None:
    assert refusal(shapes(UPPER)) == (
        "data.classes=[{'region': {'_target_': 'oodmix.data.geometry.Annulus', 'center': [0.0, "
        "0.0], 'r_in': 0.8, 'r_out': 1.2, 'theta_end': 3.141592653589793}, 'n_train': 10}] is not "
        "allowed: data.classes must be a list of at least 2 classes"
    )
    classes = [{"region": UPPER, "n_train": 10}, {"region": UPPER, "n_train": 0}]
    assert refusal(lambda: ShapesDataModule(classes)) == (
        "data.classes[1].n_train=0 is not allowed: data.classes[1].n_train must be an integer >= 1"
    )


def test_regions_built_by_hand_name_themselves() -> None:
    assert refusal(lambda: Disk((0.0, 0.0), -1.0)) == (
        "Disk.radius=-1 is not allowed: Disk.radius must be a finite number > 0"
    )
    assert refusal(lambda: Annulus((0.0, 0.0), 2.0, 1.0)) == (
        "Annulus.r_in=2.0 is not allowed: it must be below r_out=1.0"
    )
    # Given to a datamodule as built, a region has checked itself; the datamodule takes it.
    ShapesDataModule([{"region": Disk((-2.0, -2.0), 2.0), "n_train": 5}] * 2)


def test_good_regions_are_built_from_their_config() -> None:
    lower = ring(center=[1.0, 0.5], theta_start=PI, theta_end=2 * PI)
    datamodule = shapes(UPPER, lower, box=[-3.0, 4.0])()
    assert datamodule.regions == [
        Annulus((0.0, 0.0), 0.8, 1.2, 0.0, PI),
        Annulus((1.0, 0.5), 0.8, 1.2, PI, 2 * PI),
    ]
    disk = {"_target_": DISK, "center": [4.0, 4.0], "radius": 1.5}
    assert shapes(UPPER, disk)().regions[1] == Disk((4.0, 4.0), 1.5)


# --- the box must contain the ID support ---------------------------------------------------------


def test_extents_hand_derived() -> None:
    """Exact bounding boxes (x_min, x_max, y_min, y_max), derived by hand."""

    def rounded(region) -> tuple[float, ...]:
        return tuple(round(v, 4) for v in region.extent())

    # A disk at (-2, -2) of radius 2 spans [-4, 0] in x and y.
    assert Disk((-2.0, -2.0), 2.0).extent() == (-4.0, 0.0, -4.0, 0.0)
    # The upper half ring around (0, 0), r 0.8..1.2: x from -1.2 (at pi) to 1.2 (at 0), y from
    # 0 (its ends lie on the x axis) to 1.2 (at pi / 2).
    assert rounded(Annulus((0.0, 0.0), 0.8, 1.2, 0.0, PI)) == (-1.2, 1.2, 0.0, 1.2)
    # The lower half ring around (1, 0.5), r 0.8..1.2: x 1 -+ 1.2, y from 0.5 - 1.2 up to 0.5.
    assert rounded(Annulus((1.0, 0.5), 0.8, 1.2, PI, 2 * PI)) == (-0.2, 2.2, -0.7, 0.5)
    # A quarter ring around (1, 1), r 1..2, angles 0..pi / 2: from (2, 1)-(3, 1) to (1, 2)-(1, 3).
    assert rounded(Annulus((1.0, 1.0), 1.0, 2.0, 0.0, PI / 2)) == (1.0, 3.0, 1.0, 3.0)
    # A full ring of outer radius 2 around the origin: the square [-2, 2]^2.
    assert rounded(Annulus((0.0, 0.0), 1.0, 2.0)) == (-2.0, 2.0, -2.0, 2.0)


def test_the_box_must_contain_every_disk() -> None:
    assert refusal(two_disks(box=[-3.5, 3.5])) == (
        "data.box=[-3.5, 3.5] is not allowed: the box must contain the ID support, and "
        "data.disks[0] spans x in [-4, 0], y in [-4, 0]"
    )
    assert refusal(two_disks(box=[-4.0, 3.0])) == (
        "data.box=[-4.0, 3.0] is not allowed: the box must contain the ID support, and "
        "data.disks[1] spans x in [0, 4], y in [0, 4]"
    )
    two_disks(box=[-4.0, 4.0])()  # touching the edge is inside


def test_the_box_must_contain_every_ring_sector() -> None:
    assert refusal(shapes(UPPER, UPPER, box=[-1.0, 1.0])) == (
        "data.box=[-1.0, 1.0] is not allowed: the box must contain the ID support, and "
        "data.classes[0].region spans x in [-1.2, 1.2], y in [0, 1.2]"
    )
    inner = {"_target_": ANNULUS, "center": [0.0, 0.0], "r_in": 1.0, "r_out": 2.0}
    outer = {"_target_": ANNULUS, "center": [0.0, 0.0], "r_in": 3.0, "r_out": 4.0}
    assert refusal(shapes(inner, outer, box=[-3, 3])) == (
        "data.box=[-3, 3] is not allowed: the box must contain the ID support, and "
        "data.classes[1].region spans x in [-4, 4], y in [-4, 4]"
    )
    shapes(UPPER, UPPER, box=[-1.2, 1.2])()


# --- values as Hydra hands them over (ListConfig, DictConfig) ------------------------------------


def test_config_nodes_are_checked_like_lists_and_mappings() -> None:
    assert refusal(two_disks(disks=OmegaConf.create(disks_with(1, radius=-2)))) == (
        "data.disks[1].radius=-2 is not allowed: data.disks[1].radius must be a finite number > 0"
    )
    assert refusal(two_disks(disks=OmegaConf.create(DISKS), box=OmegaConf.create([5, -5]))) == (
        "data.box=[5, -5] is not allowed: data.box must be [low, high] with low < high: the "
        "square [low, high]^2"
    )
    classes = OmegaConf.create([{"region": ring(r_in=2), "n_train": 10}] * 2)
    assert refusal(lambda: ShapesDataModule(classes)) == (
        "data.classes[0].region.r_in=2 is not allowed: it must be below r_out=1.2"
    )
    assert refusal(lambda: DigitsDataModule(OmegaConf.create([0, 1]), [5], [1, 9])) == (
        "data.ood_test_classes=[1, 9] is not allowed: digit 1 is also in data.id_classes (the "
        "three class lists must not overlap)"
    )


def test_shipped_classes_built_unrecursed_or_by_hydra_are_the_same() -> None:
    """A region's config reaches the datamodule as a mapping (instantiated without recursion,
    so that a refusal names its key) or built by Hydra: either way the same regions."""
    for name in ("moons", "rings", "blobs"):
        data = OmegaConf.load(Path(config_dir()) / "data" / f"{name}.yaml")
        by_hydra = instantiate(data.classes)
        built = ShapesDataModule(data.classes, box=data.box)
        assert built.regions == ShapesDataModule(by_hydra, box=data.box).regions
        kinds = {DISK: Disk, ANNULUS: Annulus}
        assert [type(r) for r in built.regions] == [kinds[c.region._target_] for c in data.classes]


# --- digits --------------------------------------------------------------------------------------

DIGITS = {
    "id_classes": (
        [3],
        "data.id_classes=[3] is not allowed: data.id_classes must be a list of at least 2 digits "
        "0-9, e.g. [0,1]",
    ),
    "ood_train_classes": (
        [],
        "data.ood_train_classes=[] is not allowed: data.ood_train_classes must be a non-empty list "
        "of digits 0-9, e.g. [0,1,2]",
    ),
    "ood_test_classes": (
        [8, 10],
        "data.ood_test_classes=[8, 10] is not allowed: data.ood_test_classes must be a non-empty "
        "list of digits 0-9, e.g. [0,1,2]",
    ),
    "fractions": (
        [0.5, 0.5, 0.5],
        "data.fractions=[0.5, 0.5, 0.5] is not allowed: data.fractions must be three positive "
        "fractions (train, val, test) summing to 1",
    ),
}


@pytest.fixture
def no_images(monkeypatch):
    """Reading the digit images fails: building a DigitsDataModule must not need them."""

    def refuse():
        raise AssertionError("the digit images were read")

    monkeypatch.setattr(digits_module, "load_digit_images", refuse)


@pytest.mark.parametrize("case", list(DIGITS))
def test_digit_settings_are_refused_before_any_image_is_read(no_images, case) -> None:
    value, message = DIGITS[case]
    assert refusal(lambda: DigitsDataModule(**{case: value})) == message


def test_digit_classes_must_not_overlap(no_images) -> None:
    assert refusal(lambda: DigitsDataModule([0, 1], [5, 9], [9])) == (
        "data.ood_test_classes=[9] is not allowed: digit 9 is also in data.ood_train_classes (the "
        "three class lists must not overlap)"
    )
    datamodule = DigitsDataModule([0, 1], [2], [3], fractions=[0.5, 0.25, 0.25])
    assert datamodule.num_classes == 2 and datamodule.fractions == (0.5, 0.25, 0.25)


# --- your own data (npz) -------------------------------------------------------------------------


def test_npz_paths_must_be_existing_files_checked_before_reading(tmp_path: Path) -> None:
    not_npz = tmp_path / "train.npz"
    not_npz.write_text("1,2,3\n")  # read, it would be refused as not an archive
    missing = tmp_path / "val.npz"
    build = lambda: NpzDataModule(train=str(not_npz), val=str(missing), test=None)  # noqa: E731
    assert refusal(build) == (
        f"data.val='{missing}' is not allowed: data.val must be the path of an existing file"
    )
    build = lambda: NpzDataModule(train=str(not_npz), val=str(not_npz), test=None)  # noqa: E731
    assert refusal(build) == (
        "data.test=null is not allowed: data.test must be the path of an existing file"
    )


def test_npz_existing_files_are_read(tmp_path: Path) -> None:
    train = tmp_path / "train.npz"
    np.savez(train, x_id=np.zeros((4, 2)), y_id=np.array([0, 1, 0, 1]), x_ood=np.ones((2, 2)))
    evaluation = tmp_path / "eval.npz"
    np.savez(evaluation, x=np.zeros((2, 2)), is_id=np.array([1, 0]))
    datamodule = NpzDataModule(train=train, val=str(evaluation), test=str(evaluation))
    assert datamodule.num_features == 2 and datamodule.num_classes == 2
