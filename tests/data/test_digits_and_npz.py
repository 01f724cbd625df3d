"""scikit-learn's digits as an OOD benchmark, and user data from .npz files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import hydra.utils
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from oodmix.config.errors import ConfigError
from oodmix.data.digits import DigitsDataModule
from oodmix.data.npz import DataError, NpzDataModule
from oodmix.runs.job import train

# --- digits -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference() -> dict[bytes, int]:
    """Each of the 1797 images (its 64 raw intensities 0..16) -> its digit; all are distinct."""
    digits = load_digits()
    table = {row.astype(np.int64).tobytes(): int(t) for row, t in zip(digits.data, digits.target)}
    assert len(table) == len(digits.target)
    return table


def keys(x: torch.Tensor) -> list[bytes]:
    """The lookup keys of scaled images: round back to integer intensities 0..16."""
    raw = np.rint(x.double().numpy() * 16.0).astype(np.int64)
    assert np.abs(raw - x.double().numpy() * 16.0).max() < 1e-5  # exactly k / 16
    return [row.tobytes() for row in raw]


def digits_of(x: torch.Tensor, reference: dict[bytes, int]) -> list[int]:
    return [reference[k] for k in keys(x)]


@pytest.fixture(scope="module")
def digit_splits():
    """The composed data=digits datamodule, generated twice with seed 0 and once with seed 1."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from oodmix.config.paths import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=["data=digits"])
        other = compose("train", overrides=["data=digits", "seed=1"])
    GlobalHydra.instance().clear()
    datamodule = hydra.utils.instantiate(cfg.data)
    return (
        datamodule,
        datamodule.generate(),
        hydra.utils.instantiate(cfg.data).generate(),
        hydra.utils.instantiate(other.data).generate(),
    )


def test_digits_features(digit_splits):
    """64 features in [0, 1] in every split; 5 ID classes."""
    datamodule, splits, _, _ = digit_splits
    assert datamodule.num_features == 64 and datamodule.num_classes == 5
    for x in (splits.id_x, splits.ood_x, splits.val.x, splits.test.x):
        assert x.shape[1] == 64
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def test_digits_id_training_labels_are_the_digits(digit_splits, reference):
    """ID training labels are 0..4 and each equals the digit of its image in load_digits."""
    _, splits, _, _ = digit_splits
    labels = splits.id_y.tolist()
    assert set(labels) == {0, 1, 2, 3, 4}
    assert digits_of(splits.id_x, reference) == labels
    n_id = sum(1 for d in reference.values() if d <= 4)
    assert len(labels) == int(0.6 * n_id)


def test_digits_ood_training_images_are_5_to_7(digit_splits, reference):
    """OOD training images are digits 5, 6 and 7 only, three quarters of them."""
    _, splits, _, _ = digit_splits
    found = Counter(digits_of(splits.ood_x, reference))
    assert set(found) == {5, 6, 7}
    n_pool = sum(1 for d in reference.values() if d in (5, 6, 7))
    assert splits.ood_x.shape[0] == n_pool - n_pool // 4


def test_digits_test_ood_is_every_8_and_9(digit_splits, reference):
    """The test OOD images are exactly all images of 8 and 9, none seen in training or val."""
    _, splits, _, _ = digit_splits
    test_ood = splits.test.x[~splits.test.is_id.bool()]
    expected = {k for k, d in reference.items() if d in (8, 9)}
    found = keys(test_ood)
    assert len(found) == len(expected) == 174 + 180
    assert set(found) == expected
    seen = set(keys(splits.id_x)) | set(keys(splits.ood_x)) | set(keys(splits.val.x))
    assert not expected & seen
    assert torch.equal(splits.test.y[~splits.test.is_id.bool()], torch.full((len(found),), -1))
    test_id = splits.test.x[splits.test.is_id.bool()]
    assert digits_of(test_id, reference) == splits.test.y[splits.test.is_id.bool()].tolist()


def test_digits_validation_ood_from_5_to_7_disjoint_from_training(digit_splits, reference):
    """Validation OOD images are 5-7, a quarter of them, none also an OOD training image."""
    _, splits, _, _ = digit_splits
    val_ood = splits.val.x[~splits.val.is_id.bool()]
    assert set(digits_of(val_ood, reference)) == {5, 6, 7}
    n_pool = sum(1 for d in reference.values() if d in (5, 6, 7))
    assert val_ood.shape[0] == n_pool // 4
    assert not set(keys(val_ood)) & set(keys(splits.ood_x))
    val_id = splits.val.x[splits.val.is_id.bool()]
    assert not set(keys(val_id)) & set(keys(splits.id_x))
    assert digits_of(val_id, reference) == splits.val.y[splits.val.is_id.bool()].tolist()


def test_digits_same_seed_same_splits(digit_splits):
    """One seed twice gives identical splits; another seed shuffles differently."""
    _, a, b, other = digit_splits
    for x, y in [(a.id_x, b.id_x), (a.ood_x, b.ood_x), (a.val.x, b.val.x), (a.test.x, b.test.x)]:
        assert torch.equal(x, y)
    assert torch.equal(a.id_y, b.id_y)
    assert not torch.equal(a.id_x, other.id_x)


@pytest.mark.parametrize(
    "classes",
    [
        {"id_classes": [0, 1, 2], "ood_train_classes": [2, 3], "ood_test_classes": [8]},
        {"id_classes": [0, 1], "ood_train_classes": [5], "ood_test_classes": [1, 9]},
        {"id_classes": [0, 1], "ood_train_classes": [5, 9], "ood_test_classes": [9]},
    ],
)
def test_digits_overlapping_classes_rejected(classes):
    """A digit in two of the class lists is refused."""
    with pytest.raises(ValueError, match="overlap"):
        DigitsDataModule(**classes)


def test_digits_end_to_end(compose_config):
    """data=digits with model=mlp_digits trains two epochs and reports test/auroc."""
    cfg = compose_config("data=digits", "model=mlp_digits", "trainer.max_epochs=2")
    metrics = train(cfg)
    assert 0.0 <= metrics["test/auroc"] <= 1.0
    assert (Path(cfg.output_dir) / "metrics.json").is_file()


# --- npz ----------------------------------------------------------------------------------------


def train_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """Three classes in 2-D: 60 ID points, 40 OOD points."""
    rng = np.random.default_rng(seed)
    return {
        "x_id": rng.normal(size=(60, 2)).astype(np.float32),
        "y_id": np.arange(60) % 3,
        "x_ood": (rng.normal(size=(40, 2)) * 4).astype(np.float32),
    }


def eval_arrays(seed: int, bool_is_id: bool) -> dict[str, np.ndarray]:
    """20 points, the first 12 ID (classes 0..2), the rest OOD (y = -1)."""
    rng = np.random.default_rng(seed)
    is_id = np.arange(20) < 12
    y = np.where(is_id, np.arange(20) % 3, -1)
    return {
        "x": rng.normal(size=(20, 2)),
        "is_id": is_id if bool_is_id else is_id.astype(np.int64),
        "y": y,
    }


def write(path: Path, **arrays: np.ndarray) -> str:
    np.savez(path, **arrays)
    return str(path)


@pytest.fixture
def npz_files(tmp_path: Path) -> dict[str, str]:
    """Valid train, val (bool is_id) and test (0/1 integer is_id) files."""
    return {
        "train": write(tmp_path / "train.npz", **train_arrays()),
        "val": write(tmp_path / "val.npz", **eval_arrays(1, bool_is_id=True)),
        "test": write(tmp_path / "test.npz", **eval_arrays(2, bool_is_id=False)),
    }


def test_npz_loads_valid_files(npz_files):
    """Shapes, num_features, num_classes and the arrays themselves come through."""
    datamodule = NpzDataModule(**npz_files)
    assert datamodule.num_features == 2 and datamodule.num_classes == 3
    splits = datamodule.generate()
    reference = train_arrays()
    assert splits.id_x.shape == (60, 2) and splits.ood_x.shape == (40, 2)
    np.testing.assert_array_equal(splits.id_x.numpy(), reference["x_id"])
    assert splits.id_y.tolist() == (np.arange(60) % 3).tolist()
    expected_is_id = [True] * 12 + [False] * 8
    expected_y = [k % 3 for k in range(12)] + [-1] * 8
    for eval_set in (splits.val, splits.test):
        assert eval_set.x.shape == (20, 2)
        assert eval_set.is_id.tolist() == expected_is_id
        assert eval_set.y.tolist() == expected_y


def test_npz_trains_end_to_end(compose_config, npz_files):
    """A two-epoch run on the files writes metrics.json with test/auroc."""
    cfg = compose_config(
        "data=npz",
        f"data.train={npz_files['train']}",
        f"data.val={npz_files['val']}",
        f"data.test={npz_files['test']}",
        "trainer.max_epochs=2",
    )
    metrics = train(cfg)
    assert 0.0 <= metrics["test/auroc"] <= 1.0
    assert (Path(cfg.output_dir) / "metrics.json").is_file()


def object_array() -> np.ndarray:
    array = np.empty(60, dtype=object)
    array[:] = [[0.0, 1.0]] * 60
    return array


# which file, what changes in it, words the message must hold (a missing file is a value the
# constructor refuses before reading: tests/data/test_owned_ranges.py)
BAD_INPUTS = {
    "missing key": ("train", {"drop": "x_ood"}, ["missing array 'x_ood'"]),
    "1-D features": ("train", {"x_id": np.zeros(60)}, ["'x_id'", "2-D"]),
    "NaN in x": ("val", {"x": np.full((20, 2), np.nan)}, ["'x'", "NaN or inf"]),
    "inf in x_ood": ("train", {"x_ood": np.array([[np.inf, 0.0]] * 40)}, ["'x_ood'", "NaN or inf"]),
    "feature mismatch": ("test", {"x": np.zeros((20, 3))}, ["'x'", "3 features"]),
    "negative y_id": ("train", {"y_id": np.arange(60) % 3 - 1}, ["'y_id'", "must lie in"]),
    "is_id = 2": ("val", {"is_id": np.full(20, 2)}, ["'is_id'", "must lie in [0, 1]"]),
    "float labels": ("train", {"y_id": np.arange(60) % 3 + 0.5}, ["'y_id'", "integer labels"]),
    "object array": ("train", {"x_id": object_array()}, ["pickle"]),
    "a class missing": ("train", {"y_id": (np.arange(60) % 2) * 5},
                        ["'y_id'", "every class from 0 to 5", "no point of class 1, 2, 3, 4"]),
    "only ID points": ("val", {"is_id": np.ones(20, dtype=bool)},
                       ["'is_id'", "both ID (1) and OOD (0)", "marks 20 ID and 0 OOD"]),
    "only OOD points": ("test", {"is_id": np.zeros(20, dtype=int)},
                        ["'is_id'", "marks 0 ID and 20 OOD"]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_npz_bad_input_is_one_line_naming_file_and_problem(tmp_path, npz_files, case):
    """Each bad file raises DataError (a ConfigError), one line with the path and the problem."""
    which, change, words = BAD_INPUTS[case]
    path = Path(npz_files[which])
    with np.load(path) as stored:
        arrays = {name: stored[name] for name in stored.files}
    change = dict(change)
    arrays.pop(change.pop("drop", None), None)
    arrays.update(change)
    np.savez(path, **arrays)
    with pytest.raises(DataError) as error:
        NpzDataModule(**npz_files)
    assert isinstance(error.value, ConfigError)
    message = str(error.value)
    assert "\n" not in message
    assert f"data.{which}={path}" in message
    for word in words:
        assert word in message, (word, message)


def test_npz_without_paths_names_the_missing_keys(compose_config):
    """data=npz without files stops in train() with a ConfigError naming data.train/val/test."""
    cfg = compose_config("data=npz")
    with pytest.raises(ConfigError) as error:
        train(cfg)
    for key in ("data.train", "data.val", "data.test"):
        assert key in str(error.value)
    assert not Path(cfg.output_dir).exists()


def test_npz_nan_file_is_a_config_error_before_metrics(compose_config, npz_files, tmp_path):
    """A NaN in the training file reaches the caller as ConfigError, not Hydra's wrapper."""
    arrays = train_arrays()
    arrays["x_id"][5, 1] = np.nan
    bad = write(tmp_path / "bad.npz", **arrays)
    cfg = compose_config(
        "data=npz", f"data.train={bad}", f"data.val={npz_files['val']}",
        f"data.test={npz_files['test']}",
    )  # fmt: skip
    with pytest.raises(ConfigError) as error:
        train(cfg)
    assert type(error.value) is DataError
    message = str(error.value)
    assert "\n" not in message and bad in message and "row 5" in message
    assert not (Path(cfg.output_dir) / "metrics.json").exists()


def test_a_file_that_is_not_an_npz_archive_is_named_as_such(tmp_path: Path) -> None:
    """A text file with an .npz name: one line saying it is not an archive (not a pickle hint)."""
    fake = tmp_path / "train.npz"
    fake.write_text("1,2,3\n")
    with pytest.raises(DataError, match=r"^data\.train=.*train\.npz: not an \.npz archive"):
        NpzDataModule(train=str(fake), val=str(fake), test=str(fake))
