"""Scores the evaluation sets at validation and test end and logs `{stage}/<metric>`."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy

from oodmix.detectors import MaxSoftmaxScore
from oodmix.metrics import (
    ScoreBank,
    ThresholdDetection,
    best_f1_threshold,
    precision_recall_f1,
    publish,
    ranking_metrics,
    threshold_counts,
)


class DetectionEvaluation(L.Callback):
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
    """

    def __init__(self, delta: float, detector: nn.Module | None = None) -> None:
        super().__init__()
        self.delta = float(delta)
        self.detector = detector if detector is not None else MaxSoftmaxScore()
        self.delta_best: float | None = None
        self.metrics: dict[str, dict[str, Metric]] = {}
        self.test_names: list[str] = ["test"]

    @property
    def fixed_threshold(self) -> bool:
        return bool(getattr(self.detector, "fixed_threshold", False))

    @property
    def threshold(self) -> float:
        """The threshold of the F1/precision/recall columns."""
        if self.fixed_threshold or self.delta_best is None:
            return self.delta
        return self.delta_best

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        datamodule = trainer.datamodule
        num_classes = datamodule.num_classes
        self.test_names = list(getattr(datamodule, "test_set_names", ["test"]))
        # One set of metric instances per evaluation set, on the module's device (DESIGN.md).
        for name in ["val", *self.test_names]:
            self.metrics[name] = {
                "bank": ScoreBank(),
                "id": ThresholdDetection(self.delta, positive="id"),
                "ood": ThresholdDetection(self.delta, positive="ood"),
                # OOD points carry class -1 and are left out of the accuracy.
                "acc": MulticlassAccuracy(num_classes, average="micro", ignore_index=-1),
            }
            for metric in self.metrics[name].values():
                metric.to(pl_module.device)
        if self.delta_best is None:
            # Under trainer=ddp_cpu (a process-launching strategy), fit, validate and test each
            # run in fresh processes: this object never saw the validation pass that tuned the
            # threshold, but its value came back to the main process in callback_metrics.
            logged = trainer.callback_metrics.get("val/delta_best")
            if logged is not None:
                self.delta_best = float(logged)

    def _update(self, stage: str, outputs: Any, batch: dict) -> None:
        logits = outputs["logits"]
        scores = self.detector(logits)
        metrics = self.metrics[stage]
        metrics["bank"].update(scores, batch["is_id"])
        if self.fixed_threshold:  # streaming counts at the fixed delta
            metrics["id"].update(scores, batch["is_id"])
            metrics["ood"].update(scores, batch["is_id"])
        metrics["acc"].update(logits, batch["y"])

    def _threshold_metrics(
        self, stage: str, scores: torch.Tensor, is_id: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        values = {}
        for positive, suffix in (("id", ""), ("ood", "_ood")):
            if self.fixed_threshold:
                result = self.metrics[stage][positive].compute()
            else:
                tp, fp, fn, _ = threshold_counts(scores, is_id, self.threshold, positive)
                result = precision_recall_f1(tp, fp, fn)
            values.update({f"{stage}/{k}{suffix}": v for k, v in result.items()})
        return values

    def _log(self, stage: str, trainer: L.Trainer) -> None:
        metrics = self.metrics[stage]
        scores, is_id = metrics["bank"].compute()
        values = {f"{stage}/{k}": v for k, v in ranking_metrics(scores, is_id).items()}
        if stage == "val":
            self.delta_best, _ = best_f1_threshold(scores, is_id)
            values["val/delta_best"] = torch.tensor(self.delta_best)
        values.update(self._threshold_metrics(stage, scores, is_id))
        if self.delta_best is not None:
            tp, fp, fn, _ = threshold_counts(scores, is_id, self.delta_best)
            values[f"{stage}/f1_tuned"] = precision_recall_f1(tp, fp, fn)["f1"]
        values[f"{stage}/acc"] = metrics["acc"].compute()
        for metric in metrics.values():
            metric.reset()
        # Metric states are synchronised by compute(): every process holds the same values.
        publish(trainer, values)
        if stage == "val":
            # The exact threshold (a float64 score), not publish's float32 copy: it is what
            # `setup` reads back in processes launched after this one (see there).
            trainer.callback_metrics["val/delta_best"] = torch.tensor(
                self.delta_best, dtype=torch.float64
            )

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
