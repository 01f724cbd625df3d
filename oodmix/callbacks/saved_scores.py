"""After testing, every evaluation point's score: thresholds can be studied without retraining."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch import nn

from oodmix.callbacks.own_hooks import OwnHooksOnly
from oodmix.detectors import MaxSoftmaxScore
from oodmix.files import save_npz_atomic
from oodmix.metrics import check_finite


class SavedScores(OwnHooksOnly, L.Callback):
    """Writes <output_dir>/scores.npz for the tested weights, scored on the main process over
    the whole evaluation sets: `<set>_score` (float32) and `<set>_is_id` (bool) for
    set = val, test and each further test set of the datamodule (test_near, test_far), so that
    every metric in metrics.json can be recomputed from the run folder.

    Non-finite scores raise NonFiniteScores (oodmix.metrics.non_finite) and no file is written.
    """

    def __init__(self, output_dir: str, detector: nn.Module | None = None) -> None:
        super().__init__()
        self.output_dir = Path(output_dir)
        self.detector = detector if detector is not None else MaxSoftmaxScore()

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        splits = trainer.datamodule.splits
        eval_sets = {"val": splits.val, "test": splits.test, **splits.extra_tests}
        arrays = {}
        for name, eval_set in eval_sets.items():
            with torch.inference_mode():
                scores = self.detector(pl_module(eval_set.x.to(pl_module.device)))
            check_finite(scores, name)
            arrays[f"{name}_score"] = scores.float().cpu().numpy()
            arrays[f"{name}_is_id"] = eval_set.is_id.bool().cpu().numpy()
        save_npz_atomic(self.output_dir / "scores.npz", **arrays)
