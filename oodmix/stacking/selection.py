"""Model selection for a stack of runs: each member's validation F1 per epoch and its best
weights, kept in memory (writing K checkpoint files per epoch would cost more than training).

For member k, after each training epoch:
    f1_k = F1 (ID positive) of "ID when score >= delta_k" on member k's validation set
           (at its best threshold instead, for a detector without a fixed scale: what its solo
           run's val/f1 is)
    if f1_k > best_k (the first epoch always):  best weights_k <- weights_k,  best_epoch_k <- epoch
which is the choice its solo run's checkpoint callback (monitor val/f1, mode max) makes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch import nn

from oodmix.callbacks.own_hooks import OwnHooksOnly
from oodmix.metrics import best_f1_threshold, counts_at_thresholds, precision_recall_f1


def _per_member(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.reshape(-1, *([1] * (like.dim() - 1)))


class MemberSelection(OwnHooksOnly, L.Callback):
    """Per-epoch val/f1 of every member, its best weights and epoch, and the per-epoch val/f1
    history for the members' logs written when the group ends."""

    def __init__(self, detector: nn.Module, deltas: Sequence[float]) -> None:
        self.detector = detector
        self.fixed_threshold = bool(getattr(detector, "fixed_threshold", False))
        # float64: each job's delta exactly; counts_at_thresholds rounds it to the scores'
        # dtype, as the solo run's rule does with the job's Python float.
        self.deltas = torch.tensor([float(d) for d in deltas], dtype=torch.float64)
        self.best_f1 = torch.full((len(deltas),), -float("inf"), dtype=torch.float64)
        self.best_epoch = torch.full((len(deltas),), -1, dtype=torch.long)
        self.best_state: dict[str, torch.Tensor] = {}
        #: Per validation: (epoch, step, {"val/f1": (K,)}).
        self.history: list[tuple[int, int, dict[str, torch.Tensor]]] = []
        self._scores: list[torch.Tensor] = []
        self._is_id: list[torch.Tensor] = []

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if trainer.state.fn != "fit":
            return
        self._scores.append(self.detector(outputs["logits"]).detach())  # (K, b)
        self._is_id.append(batch["is_id"])

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn != "fit" or not self._scores:
            return
        scores, is_id = torch.cat(self._scores, dim=1), torch.cat(self._is_id, dim=1)
        self._scores, self._is_id = [], []
        f1 = self.member_f1(scores, is_id).cpu()
        failed = list(getattr(pl_module, "failed_members", {}))
        f1[failed] = float("nan")  # a failed member is never selected again
        improved = f1 > self.best_f1  # nan > x is False
        self.best_f1 = torch.where(improved, f1, self.best_f1)
        self.best_epoch = torch.where(improved, trainer.current_epoch, self.best_epoch)
        self._keep_best(pl_module.net, improved)
        self.history.append((trainer.current_epoch, trainer.global_step, {"val/f1": f1}))

    def member_f1(self, scores: torch.Tensor, is_id: torch.Tensor) -> torch.Tensor:
        """(K,) validation F1 of each member from its scores and is_id (K, n): at its delta, or
        at its best threshold, as its solo run's val/f1 is computed (oodmix.metrics).

        At a delta: member k's counts are counts_at_thresholds(scores[k], is_id[k], delta_k),
        taken for all K members in one batched call (torch.vmap: one (K, n) comparison, no
        Python loop over members), delta_k rounded to the scores' dtype as in the solo run; its
        F1 is precision_recall_f1's, the float32 value a solo run logs, widened to float64.
        At the best threshold: best_f1_threshold per member (its candidates, the member's
        distinct scores, differ in number from member to member), whose F1 is float64 (the solo
        run logs it rounded to float32).
        """
        if self.fixed_threshold:
            # Rounded to the scores' dtype here, on the CPU (a device may lack float64), as
            # counts_at_thresholds would round it.
            dtype = scores.dtype if scores.is_floating_point() else torch.float64
            deltas = self.deltas.to(dtype).to(scores.device)
            tp, fp, fn, _ = torch.vmap(counts_at_thresholds)(scores, is_id.bool(), deltas)
            return precision_recall_f1(tp, fp, fn)["f1"].double()
        return torch.tensor(
            [best_f1_threshold(s, t)[1] for s, t in zip(scores, is_id)], dtype=torch.float64
        )

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
            "best_state": {k: v.cpu() for k, v in self.best_state.items()},
            "history": self.history,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_f1, self.best_epoch = state["best_f1"], state["best_epoch"]
        self.best_state = dict(state["best_state"])
        self.history = list(state["history"])
