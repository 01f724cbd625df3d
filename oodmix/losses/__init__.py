"""Objectives: one file each, a shared contract in base.py. Selected with `loss=<name>`."""

from oodmix.losses.base import OODLoss
from oodmix.losses.confidence import ConfidenceLoss
from oodmix.losses.confidence_mixup import ConfidenceMixupLoss
from oodmix.losses.cross_entropy import CrossEntropyLoss

__all__ = ["ConfidenceLoss", "ConfidenceMixupLoss", "CrossEntropyLoss", "OODLoss"]
