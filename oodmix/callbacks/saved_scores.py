"""After testing, every evaluation point's score: thresholds can be studied without retraining."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from torch import nn

from oodmix.callbacks.members import each_member
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

    A stack of K runs (oodmix.stacking): `output_dir` is a list, one folder per member; every
    member's sets are scored in one forward pass and each member's folder gets its own file.
    A member with non-finite scores gets none (its evaluation fails it, see
    DetectionEvaluation.member_failures).
    """

    def __init__(self, output_dir: str | Sequence[str], detector: nn.Module | None = None) -> None:
        super().__init__()
        self.output_dirs = [Path(d) for d in each_member(output_dir)]
        self.output_dir = self.output_dirs[0]
        self.detector = detector if detector is not None else MaxSoftmaxScore()

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        splits = trainer.datamodule.splits
        eval_sets = {"val": splits.val, "test": splits.test, **splits.extra_tests}
        scores = {}
        for name, eval_set in eval_sets.items():
            with torch.inference_mode():
                scores[name] = self.detector(pl_module(eval_set.x.to(pl_module.device)))
        is_id = {name: eval_set.is_id for name, eval_set in eval_sets.items()}
        if getattr(pl_module, "members", None) is None:
            for name, value in scores.items():
                check_finite(value, name)
            self._write(self.output_dir, scores, is_id)
            return
        for k, folder in enumerate(self.output_dirs):
            mine = {name: value[k] for name, value in scores.items()}
            if all(bool(torch.isfinite(value).all()) for value in mine.values()):
                self._write(folder, mine, {name: value[k] for name, value in is_id.items()})

    @staticmethod
    def _write(folder: Path, scores: dict, is_id: dict) -> None:
        arrays = {}
        for name, value in scores.items():
            arrays[f"{name}_score"] = value.float().cpu().numpy()
            arrays[f"{name}_is_id"] = is_id[name].bool().cpu().numpy()
        save_npz_atomic(folder / "scores.npz", **arrays)
