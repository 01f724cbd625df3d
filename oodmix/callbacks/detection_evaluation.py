"""Scores the evaluation sets at validation and test end and logs `{stage}/<metric>`."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy

from oodmix.detectors import MaxSoftmaxScore
from oodmix.metrics import ThresholdDetection

STAGES = ("val", "test")


class DetectionEvaluation(L.Callback):
    """Threshold detection at `delta` on the module's validation and test outputs.

    Logs, for stage in {val, test}:
      {stage}/f1, {stage}/precision, {stage}/recall          positive class "id" (the paper's)
      {stage}/f1_ood, {stage}/precision_ood, {stage}/recall_ood   positive class "ood"
      {stage}/acc    classification accuracy on the ID points of the evaluation set

    The module's validation_step/test_step return {"logits": ...} for a batch
    {"x", "is_id", "y"}; the detector turns logits into scores (higher = more ID).
    """

    def __init__(self, delta: float, detector: nn.Module | None = None) -> None:
        super().__init__()
        self.delta = float(delta)
        self.detector = detector if detector is not None else MaxSoftmaxScore()
        self.metrics: dict[str, dict[str, Metric]] = {}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        num_classes = trainer.datamodule.num_classes
        # One set of metric instances per stage, on the module's device (DESIGN.md).
        for name in STAGES:
            self.metrics[name] = {
                "": ThresholdDetection(self.delta, positive="id"),
                "_ood": ThresholdDetection(self.delta, positive="ood"),
                # OOD points carry class -1 and are left out of the accuracy.
                "acc": MulticlassAccuracy(num_classes, average="micro", ignore_index=-1),
            }
            for metric in self.metrics[name].values():
                metric.to(pl_module.device)

    def _update(self, stage: str, outputs: Any, batch: dict) -> None:
        logits = outputs["logits"]
        scores = self.detector(logits)
        metrics = self.metrics[stage]
        metrics[""].update(scores, batch["is_id"])
        metrics["_ood"].update(scores, batch["is_id"])
        metrics["acc"].update(logits, batch["y"])

    def _log(self, stage: str, pl_module: L.LightningModule) -> None:
        values: dict[str, torch.Tensor] = {}
        for suffix, metric in self.metrics[stage].items():
            result = metric.compute()
            if isinstance(result, dict):
                values.update({f"{stage}/{k}{suffix}": v for k, v in result.items()})
            else:
                values[f"{stage}/{suffix}"] = result
            metric.reset()
        pl_module.log_dict(values, on_step=False, on_epoch=True)

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self._update("val", outputs, batch)

    def on_test_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self._update("test", outputs, batch)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log("val", pl_module)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log("test", pl_module)
