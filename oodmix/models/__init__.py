"""The LightningModule and the networks it trains.

Both names are imported on first use: the LightningModule imports Lightning (seconds), which
a network alone, as oodmix-predict loads it, does not need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from oodmix.lazy import lazy_getattr

if TYPE_CHECKING:
    from oodmix.models.classifier import OODClassifier
    from oodmix.models.mlp import MLP

__all__ = ["MLP", "OODClassifier"]

_MODULES = {"MLP": "oodmix.models.mlp", "OODClassifier": "oodmix.models.classifier"}

__getattr__ = lazy_getattr(__name__, _MODULES)
