"""The datamodule base shared by every dataset: device-resident splits, sliced batches, mixup."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import ClassVar

import lightning as L
import torch
from omegaconf import DictConfig

from oodmix.allowed import boolean, integer_at_least, optional_integer_at_least
from oodmix.batch_parts import MIXED_PARTS, OOD_PARTS, TRAIN_PARTS
from oodmix.data.loaders import EvalBatches, TrainBatches, steps_per_chunk_of
from oodmix.data.mixup import Mixup


@dataclass
class EvalSet:
    """Points to score: `is_id` is the detection truth, `y` the class of ID points (-1: OOD)."""

    x: torch.Tensor
    is_id: torch.Tensor
    y: torch.Tensor


@dataclass
class OODSplits:
    """Everything one run trains and evaluates on."""

    id_x: torch.Tensor
    id_y: torch.Tensor
    ood_x: torch.Tensor
    val: EvalSet
    test: EvalSet
    #: Further test sets, logged as <name>/<metric> (e.g. test_near, test_far).
    extra_tests: dict[str, EvalSet] = field(default_factory=dict)

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> OODSplits:
        """The same splits with `fn` applied to every tensor (moved, indexed, ...)."""

        def apply(value):
            if isinstance(value, EvalSet):
                return EvalSet(fn(value.x), fn(value.is_id), fn(value.y))
            if isinstance(value, dict):
                return {name: apply(v) for name, v in value.items()}
            return fn(value)

        return OODSplits(**{f.name: apply(getattr(self, f.name)) for f in fields(self)})

    def to(self, device: torch.device) -> OODSplits:
        return self.map(lambda t: t.to(device))


class SplitsDataModule(L.LightningDataModule):
    """What every oodmix datamodule does with splits that live on the training device, for one
    run (`OODDataModule`) or a stack of runs (`oodmix.stacking.data.MemberStackDataModule`):
    evaluation loaders over `splits`, no per-batch transfer, mixing after transfer.

    Subclasses set `splits` in `setup` and give `eval_batch_size`, `parts` and
    `add_mixed_parts`; `points_dim` is the dimension along which an evaluation set's points lie
    (0 for one run's x (n, D); 1 for a stack's x (K, n, D)).
    """

    points_dim: ClassVar[int] = 0
    splits: OODSplits | None
    eval_batch_size: int
    parts: frozenset[str]

    def add_mixed_parts(self, batch: dict) -> dict:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        if self.trainer is not None:
            return self.trainer.strategy.root_device
        return torch.device("cpu")

    def _rank_and_world(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def _require_splits(self) -> OODSplits:
        if self.splits is None:
            raise RuntimeError("call setup() before asking for data")
        return self.splits

    def _eval_batches(self, eval_set: EvalSet) -> EvalBatches:
        rank, world_size = self._rank_and_world()
        return EvalBatches(
            eval_set.x,
            eval_set.is_id,
            eval_set.y,
            self.eval_batch_size,
            rank,
            world_size,
            dim=self.points_dim,
        )

    def val_dataloader(self) -> EvalBatches:
        return self._eval_batches(self._require_splits().val)

    @property
    def test_set_names(self) -> list[str]:
        """Metric prefixes of the test dataloaders, in order: "test", then any extra sets."""
        return ["test", *(self.splits.extra_tests if self.splits else {})]

    def test_dataloader(self) -> EvalBatches | list[EvalBatches]:
        splits = self._require_splits()
        if not splits.extra_tests:
            return self._eval_batches(splits.test)
        return [self._eval_batches(s) for s in (splits.test, *splits.extra_tests.values())]

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        # The splits already live on the training device (setup), so batches are born there;
        # Lightning's generic transfer would walk every tensor of every step for nothing.
        if self.splits is not None and self.splits.id_x.device == device:
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def on_after_batch_transfer(self, batch: dict | list[dict], dataloader_idx: int):
        # Training batches are chunks (lists of step batches); evaluation batches are dicts.
        if isinstance(batch, list) and not self.parts.isdisjoint(MIXED_PARTS):
            for step_batch in batch:
                self.add_mixed_parts(step_batch)
        return batch


class OODDataModule(SplitsDataModule):
    """Base of oodmix datasets: subclasses implement `generate()`, set num_features, num_classes.

    Training batches are dicts (the batch contract of docs/architecture.md):

        {"id": (x, y), "ood": x_ood, "id_mix": (x, soft_y), "ood_mix": x_ood_mix,
         "cross_mix": (x, soft_target)}

    The OOD part is only produced when the loss asks for it (`request_parts`), the mixed parts
    only when it asks for them; they are built on the batch's device after transfer, with
    lam ~ Beta(mixup.alpha, mixup.alpha): id_mix mixes ID only with ID, ood_mix OOD only with
    OOD, cross_mix ID with OOD (target lam * onehot(y) + (1 - lam) * uniform). The draws come
    with each step batch from its loader (the run's own random stream, see oodmix.data.mixup).

    Allowed values (refused with a ValueError naming the config key, data.<name>):
      batch_size       ID points per step: an integer >= 1
      ood_batch_size   OOD points per step: null (as many as ID) or an integer >= 1
      eval_batch_size  points per evaluation batch: an integer >= 1
      drop_last        whether an epoch drops its last, smaller step: true or false
      steps_per_chunk  optimiser steps per Lightning batch: an integer >= 1
      mixup            null (no mixed batches) or {alpha: ...}, see Mixup
    """

    num_features: int
    num_classes: int
    #: For 2-D datasets, the square [low, high]^2 that confidence maps cover; None otherwise.
    plot_box: tuple[float, float] | None = None

    def __init__(
        self,
        batch_size: int = 128,
        ood_batch_size: int | None = None,
        eval_batch_size: int = 4096,
        seed: int = 0,
        mixup: DictConfig | dict | None = None,
        drop_last: bool = False,
        steps_per_chunk: int = 16,
    ) -> None:
        super().__init__()
        self.batch_size = integer_at_least("data.batch_size", batch_size, 1)
        self.ood_batch_size = optional_integer_at_least(
            "data.ood_batch_size", ood_batch_size, 1, "as many as ID"
        )
        self.eval_batch_size = integer_at_least("data.eval_batch_size", eval_batch_size, 1)
        self.seed = seed
        # mixup.pairs is the loss's business: it decides which mixed parts it requests.
        self.mixup = Mixup(alpha=mixup["alpha"]) if mixup else None
        self.drop_last = boolean("data.drop_last", drop_last)
        self.steps_per_chunk = steps_per_chunk_of("data.steps_per_chunk", steps_per_chunk)
        self.parts: frozenset[str] = frozenset({"id", "ood"})
        self.splits: OODSplits | None = None

    def generate(self) -> OODSplits:
        """Draw every split from `self.seed`; the same seed gives the same data."""
        raise NotImplementedError

    def in_distribution(self, points: torch.Tensor) -> torch.Tensor:
        """Mask of the points inside the exact ID support (for datasets that know it)."""
        raise NotImplementedError(f"{type(self).__name__} has no exact ID support")

    def request_parts(self, parts: Iterable[str]) -> None:
        """Produce exactly the training-batch parts a loss needs (a subset of TRAIN_PARTS)."""
        parts = frozenset(parts)
        unknown = parts - set(TRAIN_PARTS)
        if unknown:
            raise ValueError(
                f"unknown batch parts {sorted(unknown)}: allowed {', '.join(TRAIN_PARTS)}"
            )
        if not parts.isdisjoint(MIXED_PARTS) and self.mixup is None:
            raise ValueError(
                "mixup=null is not allowed with an objective that trains on mixed samples (it "
                "needs mixed batches): set mixup.alpha, e.g. mixup.alpha=1.0, or choose another "
                "loss"
            )
        self.parts = parts

    def setup(self, stage: str | None = None) -> None:
        # Generated once on the CPU (the same numbers on any device), then moved once to the
        # training device, where they stay for the whole run.
        if self.splits is None:
            self.splits = self.generate()
        if self.splits.id_x.device != self.device:
            self.splits = self.splits.to(self.device)

    def _current_epoch(self) -> int:
        return self.trainer.current_epoch if self.trainer is not None else 0

    def _chunks_done(self) -> int:
        """Training batches (chunks) completed in the current epoch, as the fit loop counts."""
        if self.trainer is None:
            return 0
        return self.trainer.fit_loop.epoch_loop.batch_progress.current.completed

    def train_dataloader(self) -> TrainBatches:
        splits = self._require_splits()
        rank, world_size = self._rank_and_world()
        wants_ood = not self.parts.isdisjoint(OOD_PARTS)
        return TrainBatches(
            splits.id_x,
            splits.id_y,
            splits.ood_x if wants_ood else None,
            batch_size=self.batch_size,
            ood_batch_size=self.ood_batch_size,
            seed=self.seed,
            epoch=self._current_epoch,
            rank=rank,
            world_size=world_size,
            drop_last=self.drop_last,
            steps_per_chunk=self.steps_per_chunk,
            chunks_done=self._chunks_done,
            mixup=self.mixup,
            parts=self.parts,
        )

    def add_mixed_parts(self, batch: dict) -> dict:
        """Add the requested mixed parts (id_mix, ood_mix, cross_mix) to a training batch, on
        its device, with the draws its loader attached (TrainBatches: the run's own stream)."""
        draws = batch.pop("draws")
        if "id_mix" in self.parts:
            x, y = batch["id"]
            batch["id_mix"] = self.mixup(x, y, self.num_classes, draw=draws["id_mix"])
        if "ood_mix" in self.parts:
            batch["ood_mix"] = self.mixup(batch["ood"], draw=draws["ood_mix"])[0]
        if "cross_mix" in self.parts:
            x, y = batch["id"]
            draw = draws["cross_mix"]
            batch["cross_mix"] = self.mixup.cross(x, y, batch["ood"], self.num_classes, draw=draw)
        return batch
