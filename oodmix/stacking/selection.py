"""Model selection for a stack of runs: each member's best weights and epoch, kept in memory
(writing K checkpoint files per epoch would cost more than training).

After each training epoch's validation, DetectionEvaluation has published val/f1 of every
member, (K,), each its solo run's value. For member k:

    if f1_k > best_k (the first epoch always):  best weights_k <- weights_k,  best_epoch_k <- epoch

which is the choice its solo run's checkpoint callback (monitor val/f1, mode max) makes.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn

from oodmix.callbacks.own_hooks import OwnHooksOnly


def _per_member(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.reshape(-1, *([1] * (like.dim() - 1)))


class MemberSelection(OwnHooksOnly, L.Callback):
    """Every member's best weights and epoch by its `monitor` (val/f1, highest), as the
    checkpoint callback of its solo run chooses them."""

    def __init__(self, members: int, monitor: str = "val/f1") -> None:
        #: What each member is selected by; also what per-epoch validation then computes
        #: (oodmix.callbacks.requested_metrics reads the `monitor` of every callback).
        self.monitor = monitor
        self.best_f1 = torch.full((members,), -float("inf"), dtype=torch.float64)
        self.best_epoch = torch.full((members,), -1, dtype=torch.long)
        #: The optimiser steps taken by the end of each member's best epoch.
        self.best_step = torch.full((members,), -1, dtype=torch.long)
        self.best_state: dict[str, torch.Tensor] = {}

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn != "fit" or trainer.sanity_checking:
            return
        f1 = trainer.callback_metrics[self.monitor].double().cpu().clone()
        failed = list(getattr(pl_module, "failed_members", {}))
        f1[failed] = float("nan")  # a failed member is never selected again
        improved = f1 > self.best_f1  # nan > x is False
        self.best_f1 = torch.where(improved, f1, self.best_f1)
        self.best_epoch = torch.where(improved, trainer.current_epoch, self.best_epoch)
        self.best_step = torch.where(improved, trainer.global_step, self.best_step)
        self._keep_best(pl_module.net, improved)

    def _keep_best(self, net: nn.Module, improved: torch.Tensor) -> None:
        state = net.stacked_state()
        if not self.best_state:
            self.best_state = {name: value.detach().clone() for name, value in state.items()}
            return
        mask = improved.to(next(iter(state.values())).device)
        with torch.no_grad():
            for name, value in state.items():
                best = self.best_state[name].to(value.device)  # on the device after a resume
                self.best_state[name] = torch.where(_per_member(mask, value), value, best)

    def member_best_state(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's best weights, as its own network's state dict."""
        return {name: value[k].detach().clone() for name, value in self.best_state.items()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_f1": self.best_f1,
            "best_epoch": self.best_epoch,
            "best_step": self.best_step,
            "best_state": {k: v.cpu() for k, v in self.best_state.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_f1, self.best_epoch = state["best_f1"], state["best_epoch"]
        self.best_step = state["best_step"]
        self.best_state = dict(state["best_state"])
