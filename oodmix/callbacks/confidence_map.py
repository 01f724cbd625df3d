"""After testing, the detector's score over the plane of a 2-D dataset, saved and drawn."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch import nn

from oodmix.callbacks.detection_evaluation import DetectionEvaluation
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
    """

    def __init__(
        self,
        output_dir: str,
        delta: float,
        detector: nn.Module | None = None,
        resolution: int = 200,
        title: str = "",
        enabled: bool = True,
    ) -> None:
        super().__init__()
        self.output_dir = Path(output_dir)
        self.delta = float(delta)
        self.detector = detector if detector is not None else MaxSoftmaxScore()
        self.resolution = resolution
        self.title = title
        self.enabled = enabled

    def compute(self, datamodule, module: L.LightningModule, threshold: float) -> ConfidenceMapData:
        low, high = datamodule.plot_box
        axis = torch.linspace(low, high, self.resolution)
        grid_y, grid_x = torch.meshgrid(axis, axis, indexing="ij")
        points = torch.stack([grid_x.flatten(), grid_y.flatten()], dim=-1)
        with torch.inference_mode():
            scores = self.detector(module(points.to(module.device))).float().cpu()
        check_finite(scores, "confidence map grid")  # no figure drawn from NaN scores
        shape = (self.resolution, self.resolution)
        splits = datamodule.splits
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
        threshold = evaluation[0].threshold if evaluation else self.delta
        data = self.compute(datamodule, pl_module, threshold)
        data.save(self.output_dir / "confidence_map.npz")
        figure = confidence_map_figure([(self.title, data)])
        save_figure_atomic(figure, self.output_dir / "confidence_map.png")
