"""The paper's experiment: two ID disks in the plane, OOD everywhere else in a square."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from oodmix.data.geometry import Disk, Region
from oodmix.data.shapes import ShapesDataModule


class TwoDisksDataModule(ShapesDataModule):
    """ID class k = points uniform in disk k; OOD = uniform in the box outside every disk.

    Paper setting (conf/data/two_disks.yaml): 1000 points in each of the disks of radius 2 at
    (-2, -2) and (2, 2); 2000 OOD training points in [-10, 10]^2 outside both disks; evaluation
    sets of 2000 points uniform in [-10, 10]^2, labelled ID or OOD exactly by disk membership;
    then the near and far test sets of ShapesDataModule. Any number of disks works.

    disks: a list of at least 2 disks, each {center, radius, n_train}: center two finite
    numbers, radius a finite number > 0, n_train an integer >= 1 (refused naming the key, e.g.
    data.disks[1].radius). The other arguments are ShapesDataModule's.
    """

    classes_key, class_word = "data.disks", "disks"

    def __init__(self, disks: Sequence[Mapping[str, Any]], **kwargs) -> None:
        super().__init__(disks, **kwargs)

    def _region(self, key: str, item: Mapping[str, Any]) -> tuple[str, Region]:
        """A disk is its own class's region: {center, radius, n_train}."""
        return key, Disk(item["center"], item["radius"], where=key)
