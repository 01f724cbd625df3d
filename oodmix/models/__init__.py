"""The LightningModule and the networks it trains."""

from oodmix.models.classifier import OODClassifier
from oodmix.models.mlp import MLP

__all__ = ["MLP", "OODClassifier"]
