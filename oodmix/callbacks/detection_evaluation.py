"""Scores the evaluation sets at validation and test end and logs `{stage}/<metric>`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import Metric

from oodmix.callbacks.members import each_member
from oodmix.callbacks.own_hooks import OwnHooksOnly
from oodmix.callbacks.requested_metrics import requested_metrics
from oodmix.detectors import MaxSoftmaxScore
from oodmix.detectors.thresholds import check_threshold
from oodmix.metrics import (
    FiniteScores,
    ScoreBank,
    ThresholdDetection,
    best_f1_threshold,
    precision_recall_f1,
    publish,
    ranking_metrics,
    threshold_counts,
)
from oodmix.metrics.accuracy import IDAccuracy

#: F1, precision and recall at the threshold, ID positive, then OOD positive.
THRESHOLD_METRICS = ("f1", "precision", "recall", "f1_ood", "precision_ood", "recall_ood")
#: Threshold-free metrics of the whole ranking (oodmix.metrics.ranking).
RANKING_METRICS = ("auroc", "aupr_in", "aupr_out", "fpr95")
#: Every metric of an evaluation set; delta_best is validation's only.
ALL_METRICS = frozenset({*THRESHOLD_METRICS, *RANKING_METRICS, "f1_tuned", "acc", "delta_best"})


@dataclass(frozen=True)
class Plan:
    """What one evaluation pass computes, and so which metric states it feeds."""

    names: frozenset[str]
    fixed_threshold: bool

    @property
    def threshold_ood(self) -> bool:
        return bool(self.names & {"f1_ood", "precision_ood", "recall_ood"})

    @property
    def threshold_id(self) -> bool:
        return bool(self.names & {"f1", "precision", "recall"})

    @property
    def tune(self) -> bool:
        """Whether val/delta_best is found in this pass: asked for, needed by f1_tuned, or the
        threshold of the F1 columns (a score without a fixed scale)."""
        uses_threshold = self.threshold_id or self.threshold_ood
        return bool(self.names & {"delta_best", "f1_tuned"}) or (
            uses_threshold and not self.fixed_threshold
        )

    @property
    def bank(self) -> bool:
        """Whether every score is kept: for ranking metrics and the tuned threshold."""
        return bool(self.names & set(RANKING_METRICS)) or self.tune

    @cached_property  # asked for on every batch
    def fed(self) -> tuple[str, ...]:
        """The metric states (DetectionEvaluation.metrics keys) this pass updates."""
        counts = self.fixed_threshold  # else F1 is counted at the tuned threshold from the bank
        return tuple(
            name
            for name, used in (
                ("finite", True),
                ("bank", self.bank),
                ("id", counts and self.threshold_id),
                ("ood", counts and self.threshold_ood),
                ("acc", "acc" in self.names),
            )
            if used
        )


def epoch_metrics_allowed() -> str:
    """What `epoch_metrics` accepts, in the words of a refusal (also the config check's)."""
    return f"a list of {', '.join(sorted(ALL_METRICS))} (each with or without val/), or [all]"


def epoch_metric_names(names: Iterable[str]) -> frozenset[str]:
    """`epoch_metrics` as metric names: "auroc" or "val/auroc"; "all" for every metric."""
    if isinstance(names, str):  # a single name would be read letter by letter
        raise ValueError(
            f"callbacks.detection.epoch_metrics={names} is not allowed: epoch_metrics must be "
            f"{epoch_metrics_allowed()}"
        )
    names = [str(name).removeprefix("val/") for name in names]
    if "all" in names:
        return ALL_METRICS
    unknown = [name for name in names if name not in ALL_METRICS]
    if unknown:
        raise ValueError(
            f"callbacks.detection.epoch_metrics={unknown[0]} is not allowed: epoch_metrics "
            f"must be {epoch_metrics_allowed()}"
        )
    return frozenset(names)


class DetectionEvaluation(OwnHooksOnly, L.Callback):
    """Evaluates the detector on the module's validation and test outputs.

    Logs, for stage in {val, test} and any further test sets of the datamodule (test_near,
    test_far, see `test_set_names`):
      {stage}/f1, /precision, /recall            rule "ID when score >= threshold", ID positive
      {stage}/f1_ood, /precision_ood, /recall_ood the same rule, OOD positive
      {stage}/auroc, /aupr_in, /aupr_out, /fpr95  threshold-free (see oodmix.metrics.ranking)
      {stage}/f1_tuned                            F1 at val/delta_best
      {stage}/acc                                 classification accuracy on the ID points
      val/delta_best                              the threshold with the best F1 on validation

    The threshold of the first group is `delta` when the detector's scale gives delta a meaning
    (max softmax probability) and val/delta_best otherwise (max logit, energy, entropy). The
    module's validation_step/test_step return {"logits": ...} for a batch {"x", "is_id", "y"}.
    Run a validation pass before testing so that delta_best belongs to the tested weights.

    Every metric is computed by a validation outside training (trainer.validate, which
    oodmix-train runs on the tested weights) and by the test. The validation after each
    training epoch computes only what is read per epoch: what a callback or scheduler
    monitors, what a progress bar shows and what a logger's HParams list names (see
    oodmix.callbacks.requested_metrics; val/f1 in a default run), plus `epoch_metrics`
    (names as above, e.g. ["auroc", "f1_tuned"], or ["all"]). The ranking metrics and the
    tuned threshold need every score sorted; the F1 at a fixed delta only four counts.

    Scores that are NaN or infinite stop the evaluation with NonFiniteScores
    (oodmix.metrics.non_finite) before any metric is computed from them.

    A stack of K runs trained as one (a module with `members`, oodmix.stacking) is evaluated by
    this same callback: outputs and batches carry a leading member dimension, every metric
    state holds one value per member, `delta` is each member's (a list of K), and every logged
    metric is (K,), member k's exactly what its solo run logs (oodmix.metrics.publish hands
    each member's logger its values). A member whose scores are not all finite does not stop
    the others: its NonFiniteScores is kept in `member_failures` and its values are NaN.
    """

    def __init__(
        self,
        delta: float | Sequence[float],
        detector: nn.Module | None = None,
        epoch_metrics: Iterable[str] = (),
    ) -> None:
        super().__init__()
        self.detector = detector if detector is not None else MaxSoftmaxScore()
        deltas = [check_threshold(d, self.fixed_threshold) for d in each_member(delta)]
        #: One run: its delta. A stack: each member's (a list of K floats; one delta is
        #: every member's, see `setup`).
        self.delta: float | list[float] = deltas[0] if len(deltas) == 1 else deltas
        self.epoch_metrics = epoch_metric_names(epoch_metrics)
        #: The tuned threshold: a float, or a stack's float64 (K,) tensor.
        self.delta_best: float | torch.Tensor | None = None
        self.metrics: dict[str, dict[str, Metric]] = {}
        self.test_names: list[str] = ["test"]
        self.plan = Plan(ALL_METRICS, self.fixed_threshold)
        self.members: int | None = None
        #: A stack's members whose scores were not finite in any pass so far (member -> the
        #: first error): they fail when the group ends, whatever the later passes gave.
        self.member_failures: dict[int, Exception] = {}

    @property
    def fixed_threshold(self) -> bool:
        return bool(getattr(self.detector, "fixed_threshold", False))

    @property
    def threshold(self) -> float | torch.Tensor:
        """The threshold of the F1/precision/recall columns (a stack: one per member)."""
        if self.fixed_threshold or self.delta_best is None:
            return self.delta if self.members is None else torch.tensor(self.delta)
        return self.delta_best

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        datamodule = trainer.datamodule
        self.test_names = list(getattr(datamodule, "test_set_names", ["test"]))
        self.members = getattr(pl_module, "members", None)
        if self.members is not None and not isinstance(self.delta, list):
            self.delta = [self.delta] * self.members
        # One set of metric instances per evaluation set of this stage (a torchmetrics Metric
        # takes a fraction of a millisecond to build), moved to the module's device so that
        # their states accumulate where the scores are computed (no copy per batch).
        for name in self.test_names if stage == "test" else ["val"]:
            self.metrics[name] = {
                "finite": FiniteScores(),
                "bank": ScoreBank(),
                "id": ThresholdDetection(self.delta, positive="id"),
                "ood": ThresholdDetection(self.delta, positive="ood"),
                # OOD points carry class -1 and are left out of the accuracy.
                "acc": IDAccuracy(),
            }
            for metric in self.metrics[name].values():
                metric.to(pl_module.device)
        if self.delta_best is None:
            # Under trainer=ddp_cpu (a process-launching strategy), fit, validate and test each
            # run in fresh processes: this object never saw the validation pass that tuned the
            # threshold, but its value came back to the main process in callback_metrics.
            logged = trainer.callback_metrics.get("val/delta_best")
            if logged is not None:
                self.delta_best = float(logged) if logged.dim() == 0 else logged.double()

    def _plan(self, trainer: L.Trainer, stage: str) -> Plan:
        if trainer.state.fn == "fit":  # the validation after a training epoch
            wanted = {n.removeprefix("val/") for n in requested_metrics(trainer)}
            names = (wanted & ALL_METRICS) | self.epoch_metrics
        else:
            names = ALL_METRICS
        if stage != "val":
            names = names - {"delta_best"}
        return Plan(frozenset(names), self.fixed_threshold)

    def _update(self, stage: str, outputs: Any, batch: dict) -> None:
        logits = outputs["logits"]
        scores = self.detector(logits)
        metrics = self.metrics[stage]
        for name in self.plan.fed:
            if name == "finite":
                metrics[name].update(scores)
            elif name == "acc":
                metrics[name].update(logits, batch["y"])
            else:  # the score bank, streaming counts at the fixed delta
                metrics[name].update(scores, batch["is_id"])

    def _threshold_metrics(
        self, stage: str, scores: torch.Tensor | None, is_id: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        values = {}
        for positive, suffix in (("id", ""), ("ood", "_ood")):
            if not (self.plan.threshold_ood if positive == "ood" else self.plan.threshold_id):
                continue
            if self.fixed_threshold:
                result = self.metrics[stage][positive].compute()
            else:
                tp, fp, fn, _ = threshold_counts(scores, is_id, self.threshold, positive)
                result = precision_recall_f1(tp, fp, fn)
            values.update({f"{k}{suffix}": v for k, v in result.items()})
        return values

    def _log(self, stage: str, trainer: L.Trainer) -> None:
        metrics, plan = self.metrics[stage], self.plan
        failures: dict[int, Exception] = {}
        try:
            if self.members is None:
                metrics["finite"].check(stage)  # NonFiniteScores: nothing is computed from them
            else:  # a member fails alone; its values become NaN below
                failures = metrics["finite"].failures(stage)
                for k, error in failures.items():
                    self.member_failures.setdefault(k, error)
            values = self._compute(stage)
            if self.members is not None:
                # (K,) each: torchmetrics' compute squeezes a stack of one to a scalar.
                values = {k: torch.as_tensor(v).reshape(self.members) for k, v in values.items()}
            if failures:
                failed = torch.tensor(sorted(failures))
                values = {
                    k: v.double().index_fill(0, failed.to(v.device), torch.nan)
                    for k, v in values.items()
                }
        finally:
            for name in plan.fed:  # (a torchmetrics reset takes tens of microseconds)
                metrics[name].reset()
        # Metric states are synchronised by compute(): every process holds the same values.
        publish(trainer, {f"{stage}/{k}": v for k, v in values.items() if k in plan.names})
        if "delta_best" in values and "delta_best" in plan.names:
            # The exact threshold (a float64 score), not publish's float32 copy: it is what
            # `setup` reads back in processes launched after this one (see there).
            trainer.callback_metrics["val/delta_best"] = torch.as_tensor(
                self.delta_best, dtype=torch.float64
            )

    def _compute(self, stage: str) -> dict[str, torch.Tensor]:
        """The metrics of `self.plan` (some more: groups are computed whole) for `stage`."""
        metrics, plan = self.metrics[stage], self.plan
        values: dict[str, torch.Tensor] = {}
        scores = is_id = None
        if plan.bank:
            scores, is_id = metrics["bank"].compute()
        if plan.names & set(RANKING_METRICS):
            values.update(self._per_member(ranking_metrics, scores, is_id))
        if stage == "val" and plan.tune:
            self.delta_best = self._best_thresholds(scores, is_id)
            values["delta_best"] = torch.as_tensor(self.delta_best)
        values.update(self._threshold_metrics(stage, scores, is_id))
        if "f1_tuned" in plan.names and self.delta_best is not None:
            tp, fp, fn, _ = threshold_counts(scores, is_id, self.delta_best)
            values["f1_tuned"] = precision_recall_f1(tp, fp, fn)["f1"]
        if "acc" in plan.names:
            values["acc"] = metrics["acc"].compute()
        return values

    def _per_member(
        self, metric: Any, scores: torch.Tensor, is_id: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """`metric(scores, is_id)` of one run; of a stack, each member's, stacked (K,).

        (A loop over the members: these metrics sort each member's scores, whose number of
        distinct values differs from member to member.)"""
        if self.members is None:
            return metric(scores, is_id)
        rows = [metric(s, t) for s, t in zip(scores, is_id)]
        return {name: torch.stack([row[name] for row in rows]) for name in rows[0]}

    def _best_thresholds(self, scores: torch.Tensor, is_id: torch.Tensor) -> Any:
        """val/delta_best: a float, or each member's (float64 (K,))."""
        if self.members is None:
            return best_f1_threshold(scores, is_id)[0]
        best = [best_f1_threshold(s, t)[0] for s, t in zip(scores, is_id)]
        return torch.tensor(best, dtype=torch.float64)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.plan = self._plan(trainer, "val")

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.plan = self._plan(trainer, "test")

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self._update("val", outputs, batch)

    def on_test_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self._update(self.test_names[dataloader_idx], outputs, batch)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log("val", trainer)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for name in self.test_names:
            self._log(name, trainer)
