"""2-D datasets whose ID support is known exactly: one region of the plane per class."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from oodmix.allowed import integer_at_least, is_number, is_sequence, number_above, require
from oodmix.data.datamodule import EvalSet, OODDataModule, OODSplits
from oodmix.data.geometry import (
    Annulus,
    Box,
    Disk,
    Region,
    distance_to_support,
    inside_any,
    sample_box_outside,
    sample_box_where,
)

#: The regions a class of data.classes may have, by the `_target_` its config names.
REGION_TARGETS: dict[str, type[Region]] = {
    f"{cls.__module__}.{cls.__qualname__}": cls for cls in (Disk, Annulus)
}

#: Slack of the box-contains-support rule: a region touching the box's edge is inside.
_EDGE_SLACK = 1e-9


def check_shift_margins(near_margin: float, far_margin: float) -> None:
    """The margins of the shifted test sets, each a number > 0: near_margin <= far_margin."""
    if not near_margin <= far_margin:
        raise ValueError(
            f"data.near_margin={near_margin} is not allowed: it must be <= "
            f"data.far_margin={far_margin} (near OOD lies closer to the ID support than far OOD)"
        )


def check_box_contains(low: float, high: float, regions: Sequence[tuple[str, Region]]) -> None:
    """data.box=[low, high] must contain every region of these (config key, region) pairs:
    evaluation and OOD points are drawn from the box, so ID support outside it would never be
    evaluated."""
    for key, region in regions:
        extent = region.extent()
        if min(extent) < low - _EDGE_SLACK or max(extent) > high + _EDGE_SLACK:
            x0, x1, y0, y1 = (round(e, 4) for e in extent)
            raise ValueError(
                f"data.box={[low, high]} is not allowed: the box must contain the ID support, "
                f"and {key} spans x in [{x0:g}, {x1:g}], y in [{y0:g}, {y1:g}]"
            )


class ShapesDataModule(OODDataModule):
    """ID class k = points uniform in region k (a Disk or an Annulus); OOD = the box outside.

    Splits, all drawn from `seed` in this order: ID training points (n_train per class), OOD
    training points uniform in the box outside the support, a validation and a test set
    uniform in the box (labelled exactly by membership), then two shifted test sets of
    n_shift ID points (uniform over the support) and n_shift OOD points each:
      test_near  OOD points at distance (0, near_margin] from the support
      test_far   OOD points farther than far_margin from the support

    Allowed values (refused with a ValueError naming the config key, data.<name>):
      classes      a list of at least 2 classes, each {region, n_train}: n_train an integer
                   >= 1; region a Disk or an Annulus, or its config (a mapping whose
                   `_target_` names one of them), built here so that a refusal names its key
      box          [low, high] with low < high, two finite numbers: the square [low, high]^2,
                   which must contain every region
      n_ood_train  an integer >= 1;  n_val, n_test  integers >= 2;  n_shift  an integer >= 1
      near_margin, far_margin  finite numbers > 0, near_margin <= far_margin
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
        keyed = self._classes(classes)
        self.regions: list[Region] = [region for _, region, _ in keyed]
        self.n_train_per_class = [n_train for _, _, n_train in keyed]
        holds = is_sequence(box, 2) and all(map(is_number, box)) and box[0] < box[1]
        require("data.box", box, holds, "[low, high] with low < high: the square [low, high]^2")
        low, high = box
        self.box = Box(float(low), float(high))
        self.n_ood_train = integer_at_least("data.n_ood_train", n_ood_train, 1)
        self.n_val = integer_at_least("data.n_val", n_val, 2)
        self.n_test = integer_at_least("data.n_test", n_test, 2)
        self.n_shift = integer_at_least("data.n_shift", n_shift, 1)
        self.near_margin = float(number_above("data.near_margin", near_margin, 0))
        self.far_margin = float(number_above("data.far_margin", far_margin, 0))
        check_shift_margins(near_margin, far_margin)
        check_box_contains(low, high, [(key, region) for key, region, _ in keyed])
        self.num_classes = len(self.regions)
        self.plot_box = (self.box.low, self.box.high)

    #: The config key of the list of classes, and what one of them is called.
    classes_key, class_word = "data.classes", "classes"

    def _classes(self, classes: Any) -> list[tuple[str, Region, int]]:
        """(config key of the region, region, n_train) of each class of `classes_key`."""
        holds = is_sequence(classes) and len(classes) >= 2
        require(self.classes_key, classes, holds, f"a list of at least 2 {self.class_word}")
        keyed = []
        for i, item in enumerate(classes):
            key = f"{self.classes_key}[{i}]"
            where, region = self._region(key, item)
            keyed.append((where, region, integer_at_least(f"{key}.n_train", item["n_train"], 1)))
        return keyed

    def _region(self, key: str, item: Mapping[str, Any]) -> tuple[str, Region]:
        """(config key, region) of the class at `key`: its `region`, a Disk or an Annulus."""
        return f"{key}.region", _as_region(f"{key}.region", item["region"])

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


def _as_region(key: str, region: Any) -> Region:
    """The region of a class: a Disk or an Annulus as given, or built here from its config (a
    mapping whose `_target_` names Disk or Annulus), which names `key` in a refusal."""
    if isinstance(region, DictConfig):
        # A plain mapping, or a region Hydra has built and handed back as a structured node.
        region = OmegaConf.to_object(region)
    if isinstance(region, (Disk, Annulus)):
        return region  # built by hand or by Hydra: it has checked its values, in its own name
    target = region.get("_target_") if isinstance(region, Mapping) else None
    cls = REGION_TARGETS.get(target) if isinstance(target, str) else None
    targets = " or ".join(REGION_TARGETS)
    require(key, region, cls is not None, f"a Disk or an Annulus (_target_: {targets})")
    fields = {name: value for name, value in region.items() if name != "_target_"}
    return cls(**fields, where=key)
