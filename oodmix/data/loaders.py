"""Batches as index slices of tensors that already live on the training device.

The problem is tiny (2-D points, a small MLP), so per-step overhead decides speed: there is no
per-sample Dataset.__getitem__, no collate and no host-to-device copy per step. Lightning takes
any iterable with a length as a dataloader; these are such iterables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from oodmix.allowed import integer_at_least
from oodmix.batch_parts import MIXED_PARTS
from oodmix.data.mixup import Mixup, MixupDraws


def shard(n: int, rank: int, world_size: int) -> slice:
    """The contiguous share of n items that process `rank` of `world_size` evaluates.

    Shares differ by at most one item and together cover every item exactly once (unlike a
    DistributedSampler, which pads with repeats).
    """
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


def steps_per_chunk_of(key: str, value: int) -> int:
    """Optimiser steps per chunk (one Lightning batch): an integer >= 1. Checked where the value
    is given: by OODDataModule (data.steps_per_chunk) and by ChunkedSteps (built from Python)."""
    return integer_at_least(key, value, 1)


class ChunkedSteps:
    """An epoch of step batches handed out in chunks of `steps_per_chunk` consecutive steps,
    resumable mid-epoch; subclasses give `steps` and `step_batches()`.

    Iterating yields lists of up to `steps_per_chunk` step batches (the last chunk of an epoch
    may be shorter); Lightning sees one chunk as one batch.
    """

    def __init__(
        self,
        epoch: Callable[[], int],
        steps_per_chunk: int = 1,
        chunks_done: Callable[[], int] | None = None,
    ) -> None:
        self.epoch = epoch
        self.steps_per_chunk = steps_per_chunk_of("steps_per_chunk", steps_per_chunk)
        # How many chunks of the current epoch have been trained (the trainer knows; the
        # iterator runs ahead of training by Lightning's prefetch), and a resume point.
        self.chunks_done = chunks_done or (lambda: 0)
        self._resume: dict[str, int] | None = None

    @property
    def steps(self) -> int:
        """Optimiser steps in one epoch (step batches)."""
        raise NotImplementedError

    def step_batches(self) -> Iterator[dict]:
        """The current epoch's step batches one by one."""
        raise NotImplementedError

    def __len__(self) -> int:
        """Chunks in one epoch: what Lightning counts as batches."""
        return -(-self.steps // self.steps_per_chunk)

    def state_dict(self) -> dict[str, int]:
        """Where training stands in the epoch, saved in every checkpoint by Lightning (a
        loader with state_dict/load_state_dict is resumable mid-epoch)."""
        return {"epoch": self.epoch(), "chunks_done": self.chunks_done()}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume: the next iteration of that epoch starts after its first `chunks_done`
        chunks. The epoch's batches are drawn as always, so the rest are the very ones an
        uninterrupted run trains on."""
        self._resume = dict(state)

    def __iter__(self) -> Iterator[list[dict]]:
        skip = 0
        if self._resume is not None and self._resume["epoch"] == self.epoch():
            skip = self._resume["chunks_done"] * self.steps_per_chunk
        self._resume = None
        chunk: list[dict] = []
        for step, batch in enumerate(self.step_batches()):
            if step < skip:
                continue
            chunk.append(batch)
            if len(chunk) == self.steps_per_chunk:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


@dataclass
class EpochPlan:
    """What one epoch of TrainBatches trains on, drawn before its first step.

    order: ID indices (..., n), taken b per step in turn; ood_order: OOD indices (..., L),
    taken m per step in turn (None: no OOD part); draws: the mixing draws of every step (None:
    no mixed parts); sizes: (b, m) of each step. Leading dimensions (...) are stacked runs
    (`of_runs`): every one takes the same positions of its own indices and draws.
    """

    order: torch.Tensor
    ood_order: torch.Tensor | None
    draws: MixupDraws | None
    sizes: list[tuple[int, int]]

    @classmethod
    def of_runs(cls, runs: Sequence[TrainBatches], device: torch.device) -> EpochPlan:
        """The current epoch's plans of several runs of one config (the members of a stack) on
        a new leading dimension, on `device`: run k's orders and draws are exactly its own
        `epoch_plan`'s. Orders are drawn run by run (each its own torch stream, on the CPU),
        the mixing draws of every run at once (`MixupDraws.of_runs`); each is stacked on the
        CPU and moved to `device` once for all runs."""
        first = runs[0]
        if any(run.step_shape != first.step_shape for run in runs):
            raise ValueError("stacked epoch plans need the same step sizes in every member")
        sizes = first.step_sizes(first.steps)
        cpu = torch.device("cpu")
        orders = [run.epoch_orders(cpu) for run in runs]
        draws = None
        if first.mixes:
            streams = [run.mixup_stream() for run in runs]
            mixups = [run.mixup for run in runs]
            draws = MixupDraws.of_runs(mixups, first.mixed_parts, sizes, streams, device)
        return cls(
            torch.stack([order for order, _ in orders]).to(device),
            None if orders[0][1] is None else torch.stack([ood for _, ood in orders]).to(device),
            draws,
            sizes,
        )

    def step_batches(
        self,
        id_x: torch.Tensor,
        id_y: torch.Tensor,
        ood_x: torch.Tensor | None,
        take: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ) -> Iterator[dict]:
        """The epoch's step batches {"id": (x, y), "ood": x_ood, "draws": {part: Draw}}:
        `take(data, index)` gathers the rows an index slice (..., b) names (data[index] for
        one run; one gather for all members of a stack)."""
        start = ood_start = 0
        for step, (b, m) in enumerate(self.sizes):
            index = self.order[..., start : start + b]
            start += b
            batch: dict = {"id": (take(id_x, index), take(id_y, index))}
            if self.ood_order is not None:
                batch["ood"] = take(ood_x, self.ood_order[..., ood_start : ood_start + m])
                ood_start += m
            if self.draws is not None:
                batch["draws"] = self.draws.step(step)
            yield batch


def _rows(data: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return data[index]


class TrainBatches(ChunkedSteps):
    """One epoch of training batches {"id": (x, y), "ood": x_ood}, in chunks of consecutive steps.

    Iterating yields lists of up to `steps_per_chunk` step batches (the last chunk of an epoch
    may be shorter); Lightning sees one chunk as one batch and OODClassifier takes one
    optimiser step per step batch, which pays Lightning's per-batch cost once per chunk. The
    step batches, and their order, do not depend on `steps_per_chunk`.

    Each epoch draws a fresh permutation of the ID set, seeded by (seed, epoch) so that an
    epoch is reproducible on its own (and a resumed run sees the same batches). It is drawn by
    a CPU generator and then moved to the data's device, so that a run's batches are the same
    on every device (a CUDA generator with the same seed gives other permutations). The OOD
    batch of each step takes the next indices of a random permutation of the OOD set (drawn
    likewise), repeated when that set is smaller than an epoch needs: `ood_batch_size` of
    them, or as many as the step's ID batch has when it is None (the last ID batch can be
    smaller).

    Under data parallelism each of `world_size` processes takes every world_size-th index of the
    shared permutation, truncated so that all processes run the same number of steps.

    With `mixup` and mixed `parts` requested, each step batch also carries its mixing draws
    under "draws" (part -> Draw), taken for the whole epoch from the stream (seed, epoch,
    rank) by `MixupDraws`; the datamodule mixes with them on the device.
    """

    def __init__(
        self,
        id_x: torch.Tensor,
        id_y: torch.Tensor,
        ood_x: torch.Tensor | None,
        batch_size: int,
        ood_batch_size: int | None,
        seed: int,
        epoch: Callable[[], int],
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
        steps_per_chunk: int = 1,
        chunks_done: Callable[[], int] | None = None,
        mixup: Mixup | None = None,
        parts: Iterable[str] = (),
    ) -> None:
        super().__init__(epoch, steps_per_chunk, chunks_done)
        self.id_x, self.id_y, self.ood_x = id_x, id_y, ood_x
        self.batch_size, self.ood_batch_size = batch_size, ood_batch_size
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.drop_last = drop_last
        self.mixup = mixup
        self.mixed_parts = frozenset(parts).intersection(MIXED_PARTS)
        self.n_local = id_x.shape[0] // world_size if world_size > 1 else id_x.shape[0]

    @property
    def steps(self) -> int:
        """Optimiser steps in one epoch (step batches)."""
        if self.drop_last:
            return self.n_local // self.batch_size
        return -(-self.n_local // self.batch_size)

    def _generator(self) -> torch.Generator:
        # A distinct, fixed stream per (seed, epoch): the same on every process and device.
        generator = torch.Generator()
        generator.manual_seed(self.seed * 1_000_003 + self.epoch())
        return generator

    def step_batches(self) -> Iterator[dict]:
        """The epoch's step batches one by one: index slices of the device-resident tensors."""
        plan = self.epoch_plan()
        yield from plan.step_batches(self.id_x, self.id_y, self.ood_x, take=_rows)

    def epoch_plan(self) -> EpochPlan:
        """The current epoch's ID order (n_local,), OOD order and mixing draws, on the data's
        device: orders from the torch stream (seed, epoch) (`epoch_orders`), draws from the
        numpy stream (seed, epoch, rank) (`mixup_stream`), both drawn on the CPU."""
        sizes = self.step_sizes(self.steps)
        order, ood_order = self.epoch_orders()
        draws = None
        if self.mixes:
            device = self.id_x.device
            rng = self.mixup_stream()
            draws = MixupDraws(self.mixup, self.mixed_parts, sizes, rng, device)
        return EpochPlan(order, ood_order, draws, sizes)

    def epoch_orders(
        self, device: torch.device | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The current epoch's ID order (n_local,) and OOD order (None without OOD data), drawn
        on the CPU from the torch stream (seed, epoch) and returned on `device` (default: the
        data's): the same orders whatever the device trains."""
        generator = self._generator()
        device = self.id_x.device if device is None else device
        order = torch.randperm(self.id_x.shape[0], generator=generator)
        if self.world_size > 1:
            order = order[self.rank :: self.world_size][: self.n_local]
        if self.ood_x is None:
            return order.to(device), None
        # Enough shuffled OOD indices for every process's steps; repeated permutations when
        # the OOD set is smaller than that. Process r takes every world_size-th one.
        n_ood = self.ood_x.shape[0]
        per_step = self.ood_batch_size or self.batch_size
        needed = self.steps * per_step * self.world_size
        ood_order = torch.cat(
            [torch.randperm(n_ood, generator=generator) for _ in range(-(-needed // n_ood))]
        )
        if self.world_size > 1:
            ood_order = ood_order[self.rank :: self.world_size]
        return order.to(device), ood_order.to(device)

    @property
    def step_shape(self) -> tuple[int, int, int | None, bool]:
        """What the step sizes follow from: equal for two loaders, equal sizes."""
        return self.n_local, self.batch_size, self.ood_batch_size, self.drop_last

    def step_sizes(self, steps: int) -> list[tuple[int, int]]:
        """(ID, OOD) batch sizes of each of an epoch's steps."""
        sizes = []
        for step in range(steps):
            b = min(self.batch_size, self.n_local - step * self.batch_size)
            sizes.append((b, self.ood_batch_size or b))
        return sizes

    @property
    def mixes(self) -> bool:
        """Whether step batches carry mixing draws (mixup on and mixed parts requested)."""
        return self.mixup is not None and bool(self.mixed_parts)

    def mixup_stream(self) -> np.random.Generator:
        """The run's own mixing stream for the current epoch (and process): independent of the
        device and of any other random numbers drawn in the process."""
        return np.random.default_rng([self.seed, self.epoch(), self.rank])


class EvalBatches:
    """Sequential batches of an evaluation set: {"x", "is_id", "y"}; every point exactly once.

    The points lie along dimension `dim` of every tensor: 0 for one run's set (x (n, D)), 1
    for a stack's (x (K, n, D), is_id and y (K, n): each batch's [k] is member k's own batch).
    Under data parallelism each process takes one contiguous shard (see `shard`), so the
    metric states summed across processes count each point once.
    """

    def __init__(
        self,
        x: torch.Tensor,
        is_id: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        dim: int = 0,
    ) -> None:
        part = shard(x.shape[dim], rank, world_size)
        self.x, self.is_id, self.y = (
            t.narrow(dim, part.start, part.stop - part.start) for t in (x, is_id, y)
        )
        self.batch_size = batch_size
        self.dim = dim

    def __len__(self) -> int:
        return -(-self.x.shape[self.dim] // self.batch_size)

    def __iter__(self) -> Iterator[dict]:
        n, dim = self.x.shape[self.dim], self.dim
        for start in range(0, n, self.batch_size):
            length = min(self.batch_size, n - start)
            yield {
                "x": self.x.narrow(dim, start, length),
                "is_id": self.is_id.narrow(dim, start, length),
                "y": self.y.narrow(dim, start, length),
            }
