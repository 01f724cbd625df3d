"""After testing, every evaluation point's score: thresholds can be studied without retraining."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch import nn

from oodmix.detectors import MaxSoftmaxScore
from oodmix.files import save_npz_atomic


class SavedScores(L.Callback):
    """Writes <output_dir>/scores.npz: val_score, val_is_id, test_score, test_is_id, for the
    tested weights, scored on the main process over the whole evaluation sets."""

    def __init__(self, output_dir: str, detector: nn.Module | None = None) -> None:
        super().__init__()
        self.output_dir = Path(output_dir)
        self.detector = detector if detector is not None else MaxSoftmaxScore()

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        arrays = {}
        for stage in ("val", "test"):
            eval_set = getattr(trainer.datamodule.splits, stage)
            with torch.inference_mode():
                scores = self.detector(pl_module(eval_set.x.to(pl_module.device)))
            arrays[f"{stage}_score"] = scores.float().cpu().numpy()
            arrays[f"{stage}_is_id"] = eval_set.is_id.cpu().numpy()
        save_npz_atomic(self.output_dir / "scores.npz", **arrays)
