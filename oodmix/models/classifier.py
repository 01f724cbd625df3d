"""The one LightningModule: a network, an injected objective and an optimiser."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import lightning as L
import torch
from torch import nn

from oodmix.allowed import is_number, one_of, require
from oodmix.batch_parts import TRAIN_PARTS
from oodmix.failures import TrainingDiverged
from oodmix.losses.base import OODLoss
from oodmix.metrics.publish import publish
from oodmix.models.member_updates import MemberLearningRates, clip_member_gradients


class EpochMean:
    """Sample-weighted means of the loss terms over an epoch.

        mean_t = sum_s n_s * value_t,s / sum_s n_s    (s: steps, n_s: ID samples in step s)

    A step only stacks its detached terms (one small tensor, kept on the device); the sum is
    taken once at the end of the epoch. Per-step logging through Lightning costs about a
    millisecond of Python per call, more than a whole training step of a tiny network.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.names: list[str] = []
        self.values: list[torch.Tensor] = []
        self.sizes: list[int] = []

    def update(self, names: list[str], values: torch.Tensor, batch_size: int) -> None:
        """Add one step's terms: `values` stacks them (detached) in the order of `names`."""
        if not self.names:
            self.names = list(names)
        self.values.append(values)
        self.sizes.append(batch_size)

    def state_dict(self) -> dict[str, Any]:
        values = torch.stack(self.values).cpu() if self.values else None
        return {"names": list(self.names), "values": values, "sizes": list(self.sizes)}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self.names = list(state["names"])
        self.values = [] if state["values"] is None else list(state["values"].to(device))
        self.sizes = list(state["sizes"])

    def compute(self) -> dict[str, torch.Tensor]:
        """Each term's mean: a scalar, or one value per member (K,) for a stack of runs."""
        if not self.values:
            return {}
        values = torch.stack(self.values)  # (steps, terms) or (steps, terms, K)
        sizes = torch.tensor(self.sizes, dtype=values.dtype, device=values.device)
        means = (sizes @ values.flatten(1)).reshape(values.shape[1:]) / sizes.sum()
        return dict(zip(self.names, means))


def part_inputs(part: str, value: Any) -> torch.Tensor:
    """The input tensor of a batch part: labelled parts are (x, y) pairs, the others bare x."""
    return value[0] if isinstance(value, (tuple, list)) else value


class OODClassifier(L.LightningModule):
    """Trains `net` with `loss` on batches {"id", "ood", "id_mix", "ood_mix", "cross_mix"}.

    A Lightning training batch is a *chunk*: a list of consecutive step batches (see
    oodmix.data.loaders.TrainBatches), and `training_step` takes one optimiser step per step
    batch. Lightning's per-batch machinery (hooks, progress tracking, the automatic
    optimisation closure) costs about a millisecond of Python, more than a whole step of a
    tiny network; a chunk pays it once for many steps. The steps themselves are those of an
    ordinary loop, in the same order and with the same random draws, so the chunk length
    (data.steps_per_chunk) never changes the weights; `trainer.global_step` counts optimiser
    steps and `trainer.max_steps` stops inside a chunk.

    `gradient_clip_val` clips each step's gradients before the optimiser step: by their
    global 2-norm (`gradient_clip_algorithm="norm"`, g <- g * min(1, c / ||g||_2)) or
    elementwise (`"value"`, g <- clamp(g, -c, c)).

    All parts a loss needs go through the network in one forward pass (one concatenation,
    one split), since per-call overhead dominates for a tiny network. Each term the loss
    returns is logged as `train/<name>`, its mean over the epoch's samples.

    A stack of K runs (oodmix.stacking) is this same module with a StackedNetwork and a
    StackedObjective: every tensor then has a leading member dimension, each term is (K,),
    the loss minimised is the sum of the members' (so each member's gradient is its own), and
    clipping and learning rates are taken per member (`member_rates`: each member's
    model.lr; the optimiser is built with the first). A member whose loss turns non-finite
    fails alone (`failed_members`); the others train on.

    A step whose loss terms are not all finite is not taken: training stops there with
    `oodmix.failures.TrainingDiverged` (see `refuse_non_finite`).
    """

    def __init__(
        self,
        net: nn.Module,
        loss: OODLoss,
        optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
        config: dict | None = None,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str = "norm",
        member_rates: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.loss = loss
        #: K for a stack of runs (tensors carry a leading member dimension); None for one run.
        self.members: int | None = getattr(net, "members", None)
        self.member_rates = MemberLearningRates(member_rates) if member_rates else None
        #: Members of a stack whose loss became non-finite: member -> why (they train no more).
        self.failed_members: dict[int, TrainingDiverged] = {}
        self.optimizer_factory = optimizer
        self.epoch_terms = EpochMean()
        # The batch parts fed through the network, in a fixed order.
        self.parts = [part for part in TRAIN_PARTS if part in loss.requires]
        # Optimiser steps are taken in training_step, one per step batch of a chunk.
        self.automatic_optimization = False
        # Lightning's Trainer(gradient_clip_val=...) applies to automatic optimisation only;
        # under manual optimisation the module clips, through the same precision plugin.
        self.gradient_clip_val = require(
            "model.gradient_clip_val",
            gradient_clip_val,
            gradient_clip_val is None or (is_number(gradient_clip_val) and gradient_clip_val > 0),
            "null (no clipping) or a number > 0",
        )
        self.gradient_clip_algorithm = one_of(
            "model.gradient_clip_algorithm", gradient_clip_algorithm, ("norm", "value")
        )
        # The resolved run config travels in every checkpoint: a checkpoint says how it was made.
        self.save_hyperparameters({"config": config or {}})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def step_terms(self, batch: dict) -> dict[str, torch.Tensor]:
        """The loss terms of one step batch: {"loss": total, <term>: value, ...}."""
        missing = self.loss.requires - batch.keys()
        if missing:
            raise RuntimeError(
                f"{type(self.loss).__name__} needs batch parts {sorted(self.loss.requires)}, "
                f"but the batch has only {sorted(batch)}: missing {sorted(missing)}"
            )
        inputs = [part_inputs(part, batch[part]) for part in self.parts]
        points = 0 if self.members is None else 1  # the dimension that lists the points
        logits = self(torch.cat(inputs, dim=points))
        logits = logits.split([x.shape[points] for x in inputs], dim=points)
        return self.loss(dict(zip(self.parts, logits)), batch)

    def training_step(self, chunk: list[dict], chunk_idx: int) -> None:
        max_steps = self.trainer.max_steps  # -1: no limit; Lightning checks it between chunks
        if max_steps is not None and max_steps >= 0:
            chunk = chunk[: max(max_steps - self.trainer.global_step, 0)]
        optimizer = self.optimizers()
        for batch in chunk:
            terms = self.step_terms(batch)
            values = torch.stack([value.detach() for value in terms.values()])
            self.refuse_non_finite(list(terms), values)
            optimizer.zero_grad(set_to_none=True)
            # A stack's members are independent: the gradient of their sum is each one's own.
            self.manual_backward(terms["loss"].sum())
            self._clip(optimizer)
            if self.member_rates is None:
                optimizer.step()
            else:
                self.member_rates.step(optimizer, list(self.net.parameters()))
            points = batch["id"][0].shape[0 if self.members is None else 1]
            self.epoch_terms.update(list(terms), values, batch_size=points)

    def _clip(self, optimizer: Any) -> None:
        if self.gradient_clip_val is None:
            return
        if self.members is None:
            self.clip_gradients(
                optimizer,
                gradient_clip_val=self.gradient_clip_val,
                gradient_clip_algorithm=self.gradient_clip_algorithm,
            )
        else:  # each member by its own norm, as its run would clip
            clip_member_gradients(
                list(self.net.parameters()), self.gradient_clip_val, self.gradient_clip_algorithm
            )

    def refuse_non_finite(self, names: list[str], values: torch.Tensor) -> None:
        """Stop training at a step whose loss terms are not all finite, before its backward pass
        and optimiser step: a diverged run must fail, never go on to report numbers.

        This is the one host synchronisation per optimiser step (the step must not be taken
        when its loss is nan or inf, and that is known only once the value is read); on the CPU
        it costs a few microseconds, on a GPU it waits for the step's forward pass.

        In a stack only the members whose terms are not finite fail (`failed_members`); the
        step goes on for the others (a member's gradients are its own), and training stops
        when every member has failed.
        """
        per_member = values.reshape(len(names), -1)  # (terms, K); one run: K = 1
        if bool(torch.isfinite(per_member).all()):
            return
        finite = torch.isfinite(per_member).all(dim=0).tolist()
        for k, ok in enumerate(finite):
            if ok or k in self.failed_members:
                continue
            error = TrainingDiverged.from_values(
                self.current_epoch, self.trainer.global_step, names, per_member[:, k].tolist()
            )
            if self.members is None:
                raise error
            self.failed_members[k] = error
        if len(self.failed_members) == self.members:
            raise self.failed_members[min(self.failed_members)]

    def on_train_epoch_end(self) -> None:
        """Log each term's epoch mean as `train/<name>` (mean over processes under DDP; a
        stack's are (K,), each member's to its own logger, see oodmix.metrics.publish)."""
        means = self.epoch_terms.compute()
        self.epoch_terms.reset()
        if not means:
            return
        values = torch.stack(list(means.values()))
        if self.trainer.world_size > 1:
            values = self.trainer.strategy.reduce(values, reduce_op="mean")
        publish(self.trainer, {f"train/{name}": v for name, v in zip(means, values)})

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Besides the weights: the epoch's loss terms so far and the random number generators
        (mixup draws from torch's global generator), so that training resumed from this
        checkpoint, even mid-epoch, takes exactly the steps an uninterrupted run takes."""
        rng = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        checkpoint["oodmix"] = {"epoch_terms": self.epoch_terms.state_dict(), "rng": rng}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("oodmix")
        # Only when training resumes: evaluating a checkpoint must not move the generators.
        if state is None or self._trainer is None or self.trainer.state.fn != "fit":
            return
        self.epoch_terms.load_state_dict(state["epoch_terms"], self.device)
        torch.set_rng_state(state["rng"]["cpu"])
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)

    def validation_step(self, batch: dict, batch_idx: int) -> dict[str, torch.Tensor]:
        return {"logits": self(batch["x"])}

    def test_step(
        self, batch: dict, batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, torch.Tensor]:
        return {"logits": self(batch["x"])}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.parameters())
