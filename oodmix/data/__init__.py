"""Datasets as LightningDataModules whose batches are slices of device-resident tensors."""

from oodmix.data.datamodule import EvalSet, OODDataModule, OODSplits
from oodmix.data.mixup import Mixup
from oodmix.data.shapes import ShapesDataModule
from oodmix.data.two_disks import TwoDisksDataModule

__all__ = [
    "EvalSet",
    "Mixup",
    "OODDataModule",
    "OODSplits",
    "ShapesDataModule",
    "TwoDisksDataModule",
]
