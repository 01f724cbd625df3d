"""Objectives: one file each, a shared contract in base.py. Selected with `loss=<name>`."""

from oodmix.losses.base import OODLoss
from oodmix.losses.confidence import ConfidenceLoss
from oodmix.losses.confidence_mixup import ConfidenceMixupLoss
from oodmix.losses.cross_entropy import CrossEntropyLoss
from oodmix.losses.energy_bounded import EnergyBoundedLoss
from oodmix.losses.mixture_outlier_exposure import MixtureOutlierExposureLoss
from oodmix.losses.outlier_exposure import OutlierExposureLoss

__all__ = [
    "ConfidenceLoss",
    "ConfidenceMixupLoss",
    "CrossEntropyLoss",
    "EnergyBoundedLoss",
    "MixtureOutlierExposureLoss",
    "OODLoss",
    "OutlierExposureLoss",
]
