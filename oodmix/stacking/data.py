"""The data of a stack: K runs' datamodules, equal but for their seed and mixup.alpha, as one,
every tensor with a leading member dimension K.

    batch[part][k] == member k's own solo batch, bit for bit (every epoch, step and part)

Each member generates its splits from its own seed (its own `generate()`); the stack keeps them
as (K, ...) tensors on the training device. Each epoch, every member draws its plan exactly as
its solo run's loader does (`EpochPlan.of_runs`: ID and OOD orders from the torch stream
(seed, epoch), mixing draws from the numpy stream (seed, epoch, rank), both on the CPU),
into (K, ...) index and draw tensors built once for all members; each step is cut from them for
all members at once, one gather per tensor: the Python run per step does not grow with K.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from oodmix.data.datamodule import EvalSet, OODDataModule, OODSplits, SplitsDataModule
from oodmix.data.loaders import ChunkedSteps, EpochPlan, TrainBatches

#: What members of a stack may differ in (of mixup: its alpha only).
MEMBER_SETTINGS = ("seed", "mixup.alpha")

# Attributes that are no shared setting: Lightning's own, the data itself, a member's own.
_NOT_SETTINGS = frozenset(
    {
        "trainer",
        "prepare_data_per_node",
        "allow_zero_length_dataloader_with_multiple_devices",
        "splits",
        "seed",
        "mixup",
    }
)


def _same(a: Any, b: Any) -> bool:
    """Equal settings: tensors and arrays by their values, containers item by item."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.shape == b.shape
            and a.dtype == b.dtype
            and torch.equal(a.cpu(), b.cpu())
        )
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a, b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    try:
        return bool(a == b)
    except (TypeError, ValueError, RuntimeError):
        return False


def _settings(member: OODDataModule) -> dict[str, Any]:
    """A member's settings: what a stack needs equal in every member. The shapes of the data
    first (num_features, num_classes, plot_box), then its public attributes (private ones are
    state derived from those) but for the data itself, seed and mixup."""
    settings = {name: getattr(member, name) for name in ("num_features", "num_classes")}
    settings["plot_box"] = getattr(member, "plot_box", None)
    for name, value in sorted(vars(member).items()):
        if not name.startswith("_") and name not in _NOT_SETTINGS:
            settings.setdefault(name, value)
    return settings


def _mixup_setting(member: OODDataModule) -> str:
    return "mixup=null" if member.mixup is None else f"mixup.alpha={member.mixup.alpha}"


def stack_problem(members: Sequence[OODDataModule]) -> str | None:
    """Why these datamodules cannot be the members of one stack, in one line; None when they
    can: one class and the same settings but for seed and mixup.alpha (mixup on in all or in
    none)."""
    if not members:
        return "a stack needs at least one member datamodule"
    first = members[0]
    reference = _settings(first)
    for k, member in enumerate(members[1:], start=1):
        if type(member) is not type(first):
            return (
                f"members of a stack must be of one class: member {k} is "
                f"{type(member).__name__}, member 0 {type(first).__name__}"
            )
        if (member.mixup is None) != (first.mixup is None):
            return (
                f"members of a stack may differ only in {' and '.join(MEMBER_SETTINGS)}: member "
                f"{k} has {_mixup_setting(member)}, member 0 {_mixup_setting(first)}"
            )
        settings = _settings(member)
        for name in [*reference, *(n for n in settings if n not in reference)]:
            mine, theirs = settings.get(name), reference.get(name)
            if not _same(mine, theirs):
                return (
                    f"members of a stack may differ only in {' and '.join(MEMBER_SETTINGS)}: "
                    f"member {k} has {name}={mine!r}, member 0 {name}={theirs!r}"
                )
    return None


def stack_splits(splits: Sequence[OODSplits]) -> OODSplits:
    """Members' splits as one: every tensor stacked on a new leading dimension, id_x (K, N, D),
    id_y (K, N), ood_x (K, M, D), each evaluation set's x (K, n, D), is_id and y (K, n)."""
    first = splits[0]

    def stacked(name: str, values: list[torch.Tensor]) -> torch.Tensor:
        shapes = sorted({tuple(v.shape) for v in values})
        if len(shapes) > 1:
            raise ValueError(f"members' {name} differ in shape {shapes}: they cannot be stacked")
        return torch.stack(values)

    def eval_set(name: str, sets: list[EvalSet]) -> EvalSet:
        return EvalSet(
            stacked(f"{name}.x", [s.x for s in sets]),
            stacked(f"{name}.is_id", [s.is_id for s in sets]),
            stacked(f"{name}.y", [s.y for s in sets]),
        )

    names = [list(s.extra_tests) for s in splits]
    if any(n != names[0] for n in names):
        raise ValueError(f"members' test sets differ ({names}): they cannot be stacked")
    return OODSplits(
        stacked("id_x", [s.id_x for s in splits]),
        stacked("id_y", [s.id_y for s in splits]),
        stacked("ood_x", [s.ood_x for s in splits]),
        eval_set("val", [s.val for s in splits]),
        eval_set("test", [s.test for s in splits]),
        {name: eval_set(name, [s.extra_tests[name] for s in splits]) for name in first.extra_tests},
    )


class StackedTrainBatches(ChunkedSteps):
    """One epoch of K members' step batches, in chunks (like TrainBatches, resumable alike):

        {"id": (x (K, B, D), y (K, B)), "ood": (K, M, D),
         "draws": {part: Draw(lam (K, B_part, 1), partner (K, B_part))}}

    where [k] is member k's own step batch. `members` are the members' own loaders (over their
    rows of the stacked tensors); each epoch asks each of them for its plan once, and every
    step is cut from the stacked plan with one gather for all members.
    """

    def __init__(
        self,
        members: Sequence[TrainBatches],
        id_x: torch.Tensor,
        id_y: torch.Tensor,
        ood_x: torch.Tensor | None,
    ) -> None:
        first = members[0]
        # The members' loaders read one trainer: the same epoch, progress and chunking.
        super().__init__(first.epoch, first.steps_per_chunk, first.chunks_done)
        self.members = list(members)
        self.id_x, self.id_y = id_x, id_y
        self.ood_x = ood_x if first.ood_x is not None else None

    @property
    def steps(self) -> int:
        """Optimiser steps in one epoch: every member's (one config)."""
        return self.members[0].steps

    def epoch_plan(self) -> EpochPlan:
        """The members' plans of the current epoch stacked: ID order (K, n), OOD order (K, L),
        draws (K, T, ...), drawn on the CPU (as each solo run draws them) and moved to the
        device once for all members."""
        return EpochPlan.of_runs(self.members, self.id_x.device)

    def step_batches(self) -> Iterator[dict]:
        plan = self.epoch_plan()
        rows = torch.arange(len(self.members), device=self.id_x.device)[:, None]

        def take(data: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            # data (K, N, ...), index (K, b) -> (K, b, ...): row index[k, i] of member k's data.
            return data[rows, index]

        yield from plan.step_batches(self.id_x, self.id_y, self.ood_x, take=take)


class MemberStackDataModule(SplitsDataModule):
    """K member datamodules (one class and config but for seed and mixup.alpha) as one.

    Every tensor it hands out has a leading member dimension K, and member k's slice is exactly
    what member k's own datamodule hands its solo run: `splits` (id_x (K, N, D), id_y (K, N),
    ood_x (K, M, D), evaluation sets (K, n, ...)), training chunks of step batches
    ({"id": (x (K, B, D), y (K, B)), "ood": (K, M, D)} and, after `on_after_batch_transfer`,
    the requested mixed parts, each member mixed with its own draws), and evaluation batches
    ({"x": (K, b, D), "is_id": (K, b), "y": (K, b)}). One process only (no data parallelism).

    `member_splits(k)` (also `datamodules[k].splits`) is member k's own splits, views of the
    stacked tensors, for what is written per member (scores, confidence maps). Evaluation
    loaders, batch transfer and mixing are a solo run's (`SplitsDataModule`), over the stacked
    sets: evaluation sets are cut along their points (dimension 1), and a member's own
    `add_mixed_parts` mixes every member's step at once.
    """

    points_dim = 1

    def __init__(self, members: Sequence[OODDataModule]) -> None:
        super().__init__()
        problem = stack_problem(members)
        if problem:
            raise ValueError(problem)
        self.datamodules: tuple[OODDataModule, ...] = tuple(members)
        self.splits: OODSplits | None = None

    # --- what the rest of oodmix reads from a datamodule -----------------------------------

    @property
    def members(self) -> int:
        """K, the number of members."""
        return len(self.datamodules)

    @property
    def num_features(self) -> int:
        return self.datamodules[0].num_features

    @property
    def num_classes(self) -> int:
        return self.datamodules[0].num_classes

    @property
    def plot_box(self) -> tuple[float, float] | None:
        return self.datamodules[0].plot_box

    @property
    def parts(self) -> frozenset[str]:
        """The training-batch parts produced (the same in every member)."""
        return self.datamodules[0].parts

    def in_distribution(self, points: torch.Tensor) -> torch.Tensor:
        """Mask of the points inside the exact ID support: the members' (one geometry)."""
        return self.datamodules[0].in_distribution(points)

    @property
    def eval_batch_size(self) -> int:
        return self.datamodules[0].eval_batch_size

    def request_parts(self, parts: Iterable[str]) -> None:
        """Produce exactly the parts a loss needs; every member checks and records them."""
        parts = frozenset(parts)
        for member in self.datamodules:
            member.request_parts(parts)

    # --- data ------------------------------------------------------------------------------

    def _attach_members(self) -> None:
        """Refuse data parallelism; let the members' loaders read this stack's trainer (epoch,
        progress, device), as their solo runs' loaders read theirs."""
        world_size = self.trainer.world_size if self.trainer is not None else 1
        if world_size > 1:
            raise ValueError(
                f"a stack trains its members in one process: world_size={world_size} is not "
                "allowed (train stacks with one device, e.g. trainer=cpu or trainer=gpu)"
            )
        for member in self.datamodules:
            member.trainer = self.trainer

    def setup(self, stage: str | None = None) -> None:
        # Each member's own data (its seed, its generate(), on the CPU as in its solo run),
        # stacked, then moved once to the training device, where it stays for the whole run.
        self._attach_members()
        if self.splits is None:
            self.splits = stack_splits([member.generate() for member in self.datamodules])
        if self.splits.id_x.device != self.device:
            self.splits = self.splits.to(self.device)
        for k, member in enumerate(self.datamodules):
            member.splits = self.member_splits(k)

    def member_splits(self, k: int) -> OODSplits:
        """Member k's own splits: views of row k of the stacked tensors."""
        return self._require_splits().map(lambda t: t[k])

    def train_dataloader(self) -> StackedTrainBatches:
        splits = self._require_splits()
        self._attach_members()
        # The members' own loaders, exactly as their solo runs build them (over their rows of
        # the stacked tensors): they draw each epoch's plan.
        members = [member.train_dataloader() for member in self.datamodules]
        return StackedTrainBatches(members, splits.id_x, splits.id_y, splits.ood_x)

    def _rank_and_world(self) -> tuple[int, int]:
        # One process: what any loader of the stack reads (and the members attached).
        self._attach_members()
        return 0, 1

    def add_mixed_parts(self, batch: dict) -> dict:
        # Every member's step mixed in one go, by a member's own add_mixed_parts: parts and
        # classes are the same in every member, and each member's lam and partners come with
        # the batch (mixup.alpha only matters when drawing them).
        return self.datamodules[0].add_mixed_parts(batch)
