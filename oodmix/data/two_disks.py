"""The paper's experiment: two ID disks in the plane, OOD everywhere else in a square."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from oodmix.data.geometry import Disk
from oodmix.data.shapes import ShapesDataModule


class TwoDisksDataModule(ShapesDataModule):
    """ID class k = points uniform in disk k; OOD = uniform in the box outside every disk.

    Paper setting (conf/data/two_disks.yaml): 1000 points in each of the disks of radius 2 at
    (-2, -2) and (2, 2); 2000 OOD training points in [-10, 10]^2 outside both disks; evaluation
    sets of 2000 points uniform in [-10, 10]^2, labelled ID or OOD exactly by disk membership;
    then the near and far test sets of ShapesDataModule. Any number of disks works.
    """

    def __init__(self, disks: Sequence[Mapping[str, Any]], **kwargs) -> None:
        classes = [
            {"region": Disk(tuple(d["center"]), float(d["radius"])), "n_train": d["n_train"]}
            for d in disks
        ]
        super().__init__(classes, **kwargs)
