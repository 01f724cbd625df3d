"""2-D datasets whose ID support is known exactly: one region of the plane per class."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from oodmix.data.datamodule import EvalSet, OODDataModule, OODSplits
from oodmix.data.geometry import (
    Box,
    Region,
    distance_to_support,
    inside_any,
    sample_box_outside,
    sample_box_where,
)


def shift_margins_problem(near_margin: float, far_margin: float) -> str | None:
    """Why the margins of the shifted test sets are not allowed, in one line; None when they are:
    0 < near_margin <= far_margin. ShapesDataModule refuses with it, and the config check before
    a run (oodmix.config.consistency) calls it, so both say the same."""
    if not near_margin > 0:
        return f"data.near_margin={near_margin} is not allowed: it must be > 0"
    if not near_margin <= far_margin:
        return (
            f"data.near_margin={near_margin} is not allowed: it must be <= "
            f"data.far_margin={far_margin} (near OOD lies closer to the ID support than far OOD)"
        )
    return None


class ShapesDataModule(OODDataModule):
    """ID class k = points uniform in region k (a Disk or an Annulus); OOD = the box outside.

    Splits, all drawn from `seed` in this order: ID training points (n_train per class), OOD
    training points uniform in the box outside the support, a validation and a test set
    uniform in the box (labelled exactly by membership), then two shifted test sets of
    n_shift ID points (uniform over the support) and n_shift OOD points each:
      test_near  OOD points at distance (0, near_margin] from the support
      test_far   OOD points farther than far_margin from the support
    """

    num_features = 2

    def __init__(
        self,
        classes: Sequence[Mapping[str, Any]],
        box: Sequence[float] = (-10.0, 10.0),
        n_ood_train: int = 2000,
        n_val: int = 2000,
        n_test: int = 2000,
        n_shift: int = 1000,
        near_margin: float = 1.0,
        far_margin: float = 4.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.regions: list[Region] = [_as_region(c["region"]) for c in classes]
        self.n_train_per_class = [int(c["n_train"]) for c in classes]
        self.box = Box(float(box[0]), float(box[1]))
        self.n_ood_train, self.n_val, self.n_test = n_ood_train, n_val, n_test
        self.n_shift = n_shift
        self.near_margin, self.far_margin = float(near_margin), float(far_margin)
        reason = shift_margins_problem(near_margin, far_margin)
        if reason:
            raise ValueError(reason)
        self.num_classes = len(self.regions)
        self.plot_box = (self.box.low, self.box.high)

    def in_distribution(self, points: torch.Tensor) -> torch.Tensor:
        return inside_any(self.regions, points)

    def label(self, points: torch.Tensor) -> EvalSet:
        """Exact ground truth: ID inside a region, of the class of the first region holding it."""
        y = torch.full((points.shape[0],), -1, dtype=torch.long)
        for k in reversed(range(len(self.regions))):
            y[self.regions[k].contains(points)] = k
        return EvalSet(points, y >= 0, y)

    def _sample_support(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n ID points, spread over the classes in proportion to their training sizes."""
        total = sum(self.n_train_per_class)
        counts = [n * m // total for m in self.n_train_per_class]
        counts[0] += n - sum(counts)
        return torch.cat([r.sample(c, generator) for r, c in zip(self.regions, counts)])

    def _shifted_set(self, keep, generator: torch.Generator) -> EvalSet:
        ood = sample_box_where(self.box, keep, self.n_shift, generator)
        return self.label(torch.cat([self._sample_support(self.n_shift, generator), ood]))

    def generate(self) -> OODSplits:
        generator = torch.Generator().manual_seed(self.seed)
        id_x = torch.cat(
            [r.sample(n, generator) for r, n in zip(self.regions, self.n_train_per_class)]
        )
        id_y = torch.cat(
            [torch.full((n,), k, dtype=torch.long) for k, n in enumerate(self.n_train_per_class)]
        )
        ood_x = sample_box_outside(self.box, self.regions, self.n_ood_train, generator)
        val = self.label(self.box.sample(self.n_val, generator))
        test = self.label(self.box.sample(self.n_test, generator))

        def near(points: torch.Tensor) -> torch.Tensor:
            distance = distance_to_support(self.regions, points)
            return (distance > 0) & (distance <= self.near_margin)

        def far(points: torch.Tensor) -> torch.Tensor:
            return distance_to_support(self.regions, points) > self.far_margin

        extra = {"test_near": self._shifted_set(near, generator)}
        extra["test_far"] = self._shifted_set(far, generator)
        return OODSplits(id_x, id_y, ood_x, val, test, extra)


def _as_region(region: Any) -> Region:
    """Hydra hands an instantiated dataclass inside a config back as a structured config node."""
    if isinstance(region, DictConfig):
        region = OmegaConf.to_object(region)
    if not hasattr(region, "contains") or not hasattr(region, "sample"):
        raise ValueError(f"data.classes[].region={region!r} is not a region (Disk, Annulus)")
    return region
