"""The paper's experiment: two ID disks in the plane, OOD everywhere else in a square."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from omegaconf import DictConfig

from oodmix.data.datamodule import EvalSet, OODDataModule, OODSplits
from oodmix.data.geometry import Box, Disk, inside_any, sample_box_outside


class TwoDisksDataModule(OODDataModule):
    """ID class k = points uniform in disk k; OOD = uniform in the box outside every disk.

    Paper setting (conf/data/two_disks.yaml): 1000 points in each of the disks of radius 2 at
    (-2, -2) and (2, 2); 2000 OOD training points in [-10, 10]^2 outside both disks; evaluation
    sets of 2000 points uniform in [-10, 10]^2, labelled ID or OOD exactly by disk membership.
    Despite the name, any number of disks works: one class per disk.
    """

    num_features = 2

    def __init__(
        self,
        disks: Sequence[DictConfig | dict],
        box: Sequence[float] = (-10.0, 10.0),
        n_ood_train: int = 2000,
        n_val: int = 2000,
        n_test: int = 2000,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.disks = [Disk(tuple(d["center"]), float(d["radius"])) for d in disks]
        self.n_train_per_class = [int(d["n_train"]) for d in disks]
        self.box = Box(float(box[0]), float(box[1]))
        self.n_ood_train, self.n_val, self.n_test = n_ood_train, n_val, n_test
        self.num_classes = len(self.disks)
        self.plot_box = (self.box.low, self.box.high)

    def label(self, points: torch.Tensor) -> EvalSet:
        """Exact ground truth: ID when inside a disk, of the class of the first disk holding it."""
        y = torch.full((points.shape[0],), -1, dtype=torch.long)
        for k in reversed(range(len(self.disks))):
            y[self.disks[k].contains(points)] = k
        return EvalSet(points, y >= 0, y)

    def generate(self) -> OODSplits:
        generator = torch.Generator().manual_seed(self.seed)
        id_x = torch.cat(
            [d.sample(n, generator) for d, n in zip(self.disks, self.n_train_per_class)]
        )
        id_y = torch.cat(
            [torch.full((n,), k, dtype=torch.long) for k, n in enumerate(self.n_train_per_class)]
        )
        ood_x = sample_box_outside(self.box, self.disks, self.n_ood_train, generator)
        val = self.label(self.box.sample(self.n_val, generator))
        test = self.label(self.box.sample(self.n_test, generator))
        return OODSplits(id_x, id_y, ood_x, val, test)

    def in_distribution(self, points: torch.Tensor) -> torch.Tensor:
        """Mask of the points inside the ID support."""
        return inside_any(self.disks, points)
