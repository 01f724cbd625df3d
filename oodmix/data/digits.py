"""Real images without a download: scikit-learn's 8x8 handwritten digits (1797 images)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from oodmix.allowed import is_int, is_number, is_sequence, require
from oodmix.data.datamodule import EvalSet, OODDataModule, OODSplits


def load_digit_images() -> tuple[np.ndarray, np.ndarray]:
    """(images as 64 features in [0, 1], digit labels), from the copy scikit-learn ships."""
    try:
        from sklearn.datasets import load_digits
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            "data=digits needs scikit-learn: pip install 'oodmix[digits]'"
        ) from error
    digits = load_digits()
    return (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64)


def _digit_list(key: str, value: Any, at_least: int, allowed: str) -> list[int]:
    """A list of at least `at_least` digits 0-9 (`allowed`: the words for it)."""
    holds = (
        is_sequence(value)
        and len(value) >= at_least
        and all(is_int(d) and 0 <= d <= 9 for d in value)
    )
    return list(require(key, value, holds, allowed))


def check_no_shared_digit(
    id_classes: Sequence[int], ood_train_classes: Sequence[int], ood_test_classes: Sequence[int]
) -> None:
    """The three class lists, each a list of digits 0-9, share no digit."""
    lists = {
        "id_classes": list(id_classes),
        "ood_train_classes": list(ood_train_classes),
        "ood_test_classes": list(ood_test_classes),
    }
    seen: dict[int, str] = {}
    for name, digits in lists.items():
        for digit in digits:
            if seen.get(digit, name) != name:
                raise ValueError(
                    f"data.{name}={digits} is not allowed: digit {digit} is also in "
                    f"data.{seen[digit]} (the three class lists must not overlap)"
                )
            seen[digit] = name


class DigitsDataModule(OODDataModule):
    """ID = some digit classes, OOD for training = others, OOD for testing = classes never seen.

    Each run's seed shuffles the images, then: the ID images are split into train / val / test
    by `fractions`; the OOD-training classes are split into training OOD and validation OOD
    (so model selection never sees the test OOD classes); the test set holds the ID test images
    and every image of the held-out classes. Input: the 64 pixel intensities scaled to [0, 1].
    ID labels are renumbered 0..K-1 in the order of `id_classes`.

    Allowed values (refused with a ValueError naming the config key, before any image is read):
      id_classes         a list of at least 2 digits 0-9, e.g. [0,1]
      ood_train_classes  a non-empty list of digits 0-9, e.g. [0,1,2]
      ood_test_classes   a non-empty list of digits 0-9, e.g. [0,1,2]
                         (no digit in two of the three lists)
      fractions          three positive fractions (train, val, test) summing to 1
    """

    num_features = 64

    def __init__(
        self,
        id_classes: Sequence[int] = (0, 1, 2, 3, 4),
        ood_train_classes: Sequence[int] = (5, 6, 7),
        ood_test_classes: Sequence[int] = (8, 9),
        fractions: Sequence[float] = (0.6, 0.2, 0.2),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.id_classes = _digit_list(
            "data.id_classes", id_classes, 2, "a list of at least 2 digits 0-9, e.g. [0,1]"
        )
        ood = "a non-empty list of digits 0-9, e.g. [0,1,2]"
        self.ood_train_classes = _digit_list("data.ood_train_classes", ood_train_classes, 1, ood)
        self.ood_test_classes = _digit_list("data.ood_test_classes", ood_test_classes, 1, ood)
        check_no_shared_digit(self.id_classes, self.ood_train_classes, self.ood_test_classes)
        holds = (
            is_sequence(fractions, 3)
            and all(is_number(f) and f > 0 for f in fractions)
            and abs(sum(fractions) - 1) < 1e-6
        )
        allowed = "three positive fractions (train, val, test) summing to 1"
        require("data.fractions", fractions, holds, allowed)
        self.fractions = tuple(float(f) for f in fractions)
        self.num_classes = len(self.id_classes)

    def generate(self) -> OODSplits:
        images, digits = load_digit_images()
        order = np.random.default_rng(self.seed).permutation(len(digits))
        images, digits = torch.from_numpy(images[order]), torch.from_numpy(digits[order])

        def of(classes: list[int]) -> torch.Tensor:
            return torch.isin(digits, torch.tensor(classes))

        id_images, id_digits = images[of(self.id_classes)], digits[of(self.id_classes)]
        relabel = {digit: k for k, digit in enumerate(self.id_classes)}
        id_y = torch.tensor([relabel[int(d)] for d in id_digits])
        n_train = int(self.fractions[0] * len(id_y))
        n_val = int(self.fractions[1] * len(id_y))
        ood_pool = images[of(self.ood_train_classes)]
        n_ood_val = len(ood_pool) // 4  # a quarter of the OOD-training classes, for validation

        def eval_set(id_part: slice, ood: torch.Tensor) -> EvalSet:
            x = torch.cat([id_images[id_part], ood])
            y = torch.cat([id_y[id_part], torch.full((len(ood),), -1)])
            return EvalSet(x, y >= 0, y)

        return OODSplits(
            id_x=id_images[:n_train],
            id_y=id_y[:n_train],
            ood_x=ood_pool[n_ood_val:],
            val=eval_set(slice(n_train, n_train + n_val), ood_pool[:n_ood_val]),
            test=eval_set(slice(n_train + n_val, None), images[of(self.ood_test_classes)]),
        )
