"""The one LightningModule: a network, an injected objective and an optimiser."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import lightning as L
import torch
from torch import nn

from oodmix.data.loaders import TRAIN_PARTS
from oodmix.losses.base import OODLoss


class EpochMean:
    """Sample-weighted means of the loss terms over an epoch, accumulated on the device.

    Lightning's per-step `self.log` costs about a millisecond of Python per call, more than a
    whole training step of a tiny network; one stacked add per step and one log per epoch
    give the same epoch means.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.names: list[str] = []
        self.sums: torch.Tensor | None = None
        self.count = 0

    def update(self, terms: dict[str, torch.Tensor], batch_size: int) -> None:
        values = torch.stack([value.detach() for value in terms.values()]) * batch_size
        if self.sums is None:
            self.names, self.sums = list(terms), values
        else:
            self.sums = self.sums + values
        self.count += batch_size

    def compute(self) -> dict[str, torch.Tensor]:
        if self.sums is None:
            return {}
        return dict(zip(self.names, self.sums / self.count))


def part_inputs(part: str, value: Any) -> torch.Tensor:
    """The input tensor of a batch part: labelled parts are (x, y) pairs, the others bare x."""
    return value[0] if isinstance(value, (tuple, list)) else value


class OODClassifier(L.LightningModule):
    """Trains `net` with `loss` on batches {"id", "ood", "id_mix", "ood_mix"}.

    All parts a loss needs go through the network in one forward pass (one concatenation,
    one split), since per-call overhead dominates for a tiny network. Each term the loss
    returns is logged as `train/<name>`, its mean over the epoch's samples.
    """

    def __init__(
        self,
        net: nn.Module,
        loss: OODLoss,
        optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
        config: dict | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.loss = loss
        self.optimizer_factory = optimizer
        self.epoch_terms = EpochMean()
        # The resolved run config travels in every checkpoint: a checkpoint says how it was made.
        self.save_hyperparameters({"config": config or {}})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        missing = self.loss.requires - batch.keys()
        if missing:
            raise RuntimeError(
                f"{type(self.loss).__name__} needs batch parts {sorted(self.loss.requires)}, "
                f"but the batch has only {sorted(batch)}: missing {sorted(missing)}"
            )
        parts = [part for part in TRAIN_PARTS if part in self.loss.requires]
        inputs = [part_inputs(part, batch[part]) for part in parts]
        logits = self(torch.cat(inputs)).split([x.shape[0] for x in inputs])
        terms = self.loss(dict(zip(parts, logits)), batch)
        self.epoch_terms.update(terms, batch_size=inputs[0].shape[0])
        return terms["loss"]

    def on_train_epoch_end(self) -> None:
        means = self.epoch_terms.compute()
        self.epoch_terms.reset()
        self.log_dict({f"train/{name}": value for name, value in means.items()}, sync_dist=True)

    def validation_step(self, batch: dict, batch_idx: int) -> dict[str, torch.Tensor]:
        return {"logits": self(batch["x"])}

    def test_step(
        self, batch: dict, batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, torch.Tensor]:
        return {"logits": self(batch["x"])}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.parameters())
