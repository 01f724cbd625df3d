"""After testing, the detector's score over the plane of a 2-D dataset, saved and drawn."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from torch import nn

from oodmix.callbacks.detection_evaluation import DetectionEvaluation
from oodmix.callbacks.members import each_member
from oodmix.callbacks.own_hooks import OwnHooksOnly
from oodmix.detectors import MaxSoftmaxScore
from oodmix.files import save_figure_atomic
from oodmix.metrics import check_finite
from oodmix.plots.confidence import ConfidenceMapData, confidence_map_figure


class ConfidenceMap(OwnHooksOnly, L.Callback):
    """Writes <output_dir>/confidence_map.npz (the score grid and training points) and
    confidence_map.png, for the tested weights, on the main process.

    Runs only for datasets with 2 features and a `plot_box`; `enabled: false` switches it off.
    Non-finite scores on the grid raise NonFiniteScores (oodmix.metrics.non_finite) and no
    file is written.

    A stack of K runs (oodmix.stacking): `output_dir`, `delta` and `title` are lists, one per
    member, and each member's folder gets its own map (its scores, its training points, its
    threshold); a member whose grid scores are not finite gets none (its evaluation fails it).
    """

    def __init__(
        self,
        output_dir: str | Sequence[str],
        delta: float | Sequence[float],
        detector: nn.Module | None = None,
        resolution: int = 200,
        title: str | Sequence[str] = "",
        enabled: bool = True,
    ) -> None:
        super().__init__()
        self.output_dirs = [Path(d) for d in each_member(output_dir)]
        self.output_dir = self.output_dirs[0]
        self.deltas = [float(d) for d in each_member(delta)]
        self.delta = self.deltas[0]
        self.detector = detector if detector is not None else MaxSoftmaxScore()
        self.resolution = resolution
        self.titles = [str(t) for t in each_member(title)]
        self.title = self.titles[0]
        self.enabled = enabled

    def grid(self, datamodule) -> tuple[torch.Tensor, torch.Tensor]:
        """The plot box's axis (resolution,) and its grid points (resolution**2, 2)."""
        low, high = datamodule.plot_box
        axis = torch.linspace(low, high, self.resolution)
        grid_y, grid_x = torch.meshgrid(axis, axis, indexing="ij")
        return axis, torch.stack([grid_x.flatten(), grid_y.flatten()], dim=-1)

    def compute(self, datamodule, module: L.LightningModule, threshold: float) -> ConfidenceMapData:
        """The map of one run's module."""
        axis, points = self.grid(datamodule)
        with torch.inference_mode():
            scores = self.detector(module(points.to(module.device))).float().cpu()
        return self.map_data(datamodule, datamodule.splits, axis, points, scores, threshold)

    def map_data(
        self, datamodule, splits, axis, points, scores: torch.Tensor, threshold: float
    ) -> ConfidenceMapData:
        """A run's map from its grid scores and its splits (training points)."""
        check_finite(scores, "confidence map grid")  # no figure drawn from NaN scores
        shape = (self.resolution, self.resolution)
        if getattr(self.detector, "fixed_threshold", False):  # a probability: 1/K .. 1
            low, high = 1.0 / datamodule.num_classes, 1.0
        else:
            low, high = float(scores.min()), float(scores.max())
        return ConfidenceMapData(
            axis=axis.numpy(),
            scores=scores.view(shape).numpy(),
            support=datamodule.in_distribution(points).view(shape).numpy(),
            delta=threshold,
            id_x=splits.id_x.cpu().numpy(),
            id_y=splits.id_y.cpu().numpy(),
            ood_x=splits.ood_x.cpu().numpy(),
            label=getattr(self.detector, "label", type(self.detector).__name__),
            low=low,
            high=high,
        )

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = trainer.datamodule
        if not (self.enabled and trainer.is_global_zero):
            return
        if datamodule.num_features != 2 or datamodule.plot_box is None:
            return
        # The threshold the run decides with: delta, or the one tuned on validation data.
        evaluation = [cb for cb in trainer.callbacks if isinstance(cb, DetectionEvaluation)]
        members = getattr(pl_module, "members", None)
        if members is None:
            threshold = evaluation[0].threshold if evaluation else self.delta
            self._write(self.compute(datamodule, pl_module, threshold), self.output_dir, 0)
            return
        thresholds = evaluation[0].threshold if evaluation else torch.tensor(self.deltas)
        failed = evaluation[0].member_failures if evaluation else {}
        axis, points = self.grid(datamodule)
        with torch.inference_mode():  # every member's grid in one forward pass
            grids = points.to(pl_module.device).expand(members, *points.shape)
            scores = self.detector(pl_module(grids)).float().cpu()
        for k in range(members):
            if k in failed or not bool(torch.isfinite(scores[k]).all()):
                continue
            splits = datamodule.member_splits(k)
            data = self.map_data(datamodule, splits, axis, points, scores[k], float(thresholds[k]))
            self._write(data, self.output_dirs[k], k)

    def _write(self, data: ConfidenceMapData, folder: Path, k: int) -> None:
        data.save(folder / "confidence_map.npz")
        figure = confidence_map_figure([(self.titles[k], data)])
        save_figure_atomic(figure, folder / "confidence_map.png")
