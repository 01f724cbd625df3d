"""Your own data from .npz files, checked before anything trains."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from oodmix.allowed import require
from oodmix.config.errors import ConfigError
from oodmix.data.datamodule import EvalSet, OODDataModule, OODSplits


class DataError(ConfigError):
    """Input data that cannot be used; the message is one line naming the file and the problem."""


def _load(path: str | Path, what: str) -> dict[str, np.ndarray]:
    """The arrays of an existing file (NpzDataModule has checked that it is one)."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise DataError(f"data.{what}={path}: not an .npz archive (write it with numpy.savez)")
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}
    except ValueError as error:  # pickled object arrays are refused
        raise DataError(f"data.{what}={path}: cannot be read without pickle ({error})") from None
    except Exception as error:
        raise DataError(f"data.{what}={path}: not a readable .npz file ({error})") from None


def _features(arrays: dict, key: str, where: str, dim: int | None) -> np.ndarray:
    if key not in arrays:
        raise DataError(f"{where}: missing array '{key}' (has: {', '.join(sorted(arrays))})")
    x = arrays[key]
    if x.ndim != 2 or x.shape[0] == 0:
        raise DataError(
            f"{where}: '{key}' must be a non-empty 2-D array (points x features), "
            f"got shape {x.shape}"
        )
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise DataError(f"{where}: '{key}' must hold real numbers, got dtype {x.dtype}")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise DataError(
            f"{where}: '{key}' has NaN or inf in {int(bad.sum())} rows "
            f"(first: row {int(np.argmax(bad))})"
        )
    if dim is not None and x.shape[1] != dim:
        raise DataError(
            f"{where}: '{key}' has {x.shape[1]} features, the ID training data has {dim}"
        )
    return x.astype(np.float32)


def _labels(arrays: dict, key: str, where: str, n: int, low: int, high: int) -> np.ndarray:
    if key not in arrays:
        raise DataError(f"{where}: missing array '{key}' (has: {', '.join(sorted(arrays))})")
    y = arrays[key]
    if y.dtype == np.bool_:
        y = y.astype(np.int64)
    if y.shape != (n,):
        raise DataError(f"{where}: '{key}' must have shape ({n},), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) and not (
        np.issubdtype(y.dtype, np.floating) and np.isfinite(y).all() and (y == np.round(y)).all()
    ):
        raise DataError(f"{where}: '{key}' must hold integer labels, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.min() < low or y.max() > high:
        raise DataError(
            f"{where}: '{key}' must lie in [{low}, {high}], found [{y.min()}, {y.max()}]"
        )
    return y


class NpzDataModule(OODDataModule):
    """ID, OOD and evaluation data from three .npz files (loaded with allow_pickle=False):

      train:  x_id (N, D) features, y_id (N,) integer classes 0..K-1, x_ood (M, D) features
      val:    x (n, D), is_id (n,) 0/1 or bool, y (n,) class of ID points (optional; -1 for OOD)
      test:   the same keys as val

    train, val, test (data.train, data.val, data.test): each the path of an existing file,
    refused with a ValueError naming the key before any file is read. Every array is then
    checked when the datamodule is built (shape, dtype, NaN/inf, label range); a problem stops
    the run with one line (DataError) naming the file, the array and what is wrong.
    """

    def __init__(self, train: str, val: str, test: str, **kwargs) -> None:
        super().__init__(**kwargs)
        for key, path in (("data.train", train), ("data.val", val), ("data.test", test)):
            holds = isinstance(path, (str, os.PathLike)) and os.path.isfile(path)
            require(key, path, holds, "the path of an existing file")
        arrays = _load(train, "train")
        where = f"data.train={train}"
        x_id = _features(arrays, "x_id", where, None)
        y_id = _labels(arrays, "y_id", where, len(x_id), 0, 10**6)
        x_ood = _features(arrays, "x_ood", where, x_id.shape[1])
        self.num_features = x_id.shape[1]
        self.num_classes = int(y_id.max()) + 1
        if self.num_classes < 2:
            raise DataError(f"{where}: 'y_id' must hold at least 2 classes")
        # The network gets one output per class 0..max: a class no ID point has would be an
        # output never trained (labels {0, 5} would make six).
        missing = sorted(set(range(self.num_classes)) - set(np.unique(y_id).tolist()))
        if missing:
            shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
            raise DataError(
                f"{where}: 'y_id' must hold every class from 0 to {self.num_classes - 1} (one "
                f"network output each), and has no point of class {shown}; number the classes "
                "0..K-1"
            )
        self._loaded = OODSplits(
            torch.from_numpy(x_id),
            torch.from_numpy(y_id),
            torch.from_numpy(x_ood),
            self._eval_set(val, "val"),
            self._eval_set(test, "test"),
        )

    def _eval_set(self, path: str, what: str) -> EvalSet:
        arrays = _load(path, what)
        where = f"data.{what}={path}"
        x = _features(arrays, "x", where, self.num_features)
        is_id = _labels(arrays, "is_id", where, len(x), 0, 1).astype(bool)
        if is_id.all() or not is_id.any():
            raise DataError(
                f"{where}: 'is_id' must mark both ID (1) and OOD (0) points, and marks "
                f"{int(is_id.sum())} ID and {int((~is_id).sum())} OOD: detection metrics (F1, "
                "AUROC) and the best epoch are undefined on a set of one kind"
            )
        if "y" in arrays:
            y = _labels(arrays, "y", where, len(x), -1, self.num_classes - 1)
            if (y[is_id] < 0).any():
                raise DataError(
                    f"{where}: 'y' must give a class 0..{self.num_classes - 1} for every ID point"
                )
            y[~is_id] = -1
        else:  # no classes given: detection metrics only (acc is then undefined)
            y = np.full(len(x), -1)
        return EvalSet(torch.from_numpy(x), torch.from_numpy(is_id), torch.from_numpy(y))

    def generate(self) -> OODSplits:
        return self._loaded
