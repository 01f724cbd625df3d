"""Confidence maps: the detector's score over the plane, as in the paper's Figure 1."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from oodmix.files import save_npz_atomic

# Chosen to stand out on the magma colour map, from black to pale yellow.
CLASS_COLOURS = ("#2979ff", "#00c853", "#d500f9", "#00b8d4", "#ff1744", "#aeea00")


@dataclass
class ConfidenceMapData:
    """A score grid over the square axis x axis, with what is needed to draw it.

    scores[i, j] is the score at (axis[j], axis[i]); support marks the exact ID region there;
    `delta` is the decision threshold drawn; colours run from `low` to `high`.
    """

    axis: np.ndarray
    scores: np.ndarray
    support: np.ndarray
    delta: float
    id_x: np.ndarray
    id_y: np.ndarray
    ood_x: np.ndarray
    label: str = "max softmax probability"
    low: float = 0.5
    high: float = 1.0

    @property
    def num_classes(self) -> int:
        return int(self.id_y.max()) + 1

    def save(self, path: Path) -> None:
        save_npz_atomic(path, **{k: np.asarray(v) for k, v in asdict(self).items()})

    @classmethod
    def load(cls, path: Path) -> ConfidenceMapData:
        with np.load(path, allow_pickle=False) as stored:
            fields = {name: stored[name] for name in stored.files}
        for name in ("delta", "low", "high"):
            if name in fields:
                fields[name] = float(fields[name])
        if "label" in fields:
            fields["label"] = str(fields["label"])
        return cls(**fields)


def draw_confidence_map(ax, data: ConfidenceMapData, title: str):
    """One panel: scores coloured from `low` to `high` (1/K to 1 for max softmax), the
    threshold contour (dashed white), the true ID support outlined (cyan), training points on
    top (ID by class, OOD grey)."""
    mesh = ax.pcolormesh(
        data.axis,
        data.axis,
        data.scores,
        cmap="magma",
        vmin=data.low,
        vmax=data.high,
        shading="auto",
        rasterized=True,
    )
    if data.scores.min() < data.delta < data.scores.max():
        ax.contour(data.axis, data.axis, data.scores, levels=[data.delta], colors="white",
                   linestyles="--", linewidths=1.3)  # fmt: skip
    ax.contour(data.axis, data.axis, data.support.astype(float), levels=[0.5], colors="cyan",
               linewidths=1.3)  # fmt: skip
    ax.scatter(data.ood_x[:, 0], data.ood_x[:, 1], s=1.5, c="0.75", alpha=0.6, linewidths=0)
    for k in range(data.num_classes):
        points = data.id_x[data.id_y == k]
        colour = CLASS_COLOURS[k % len(CLASS_COLOURS)]
        ax.scatter(points[:, 0], points[:, 1], s=1.5, c=colour, alpha=0.8, linewidths=0)
    ax.set_xlim(data.axis[0], data.axis[-1])
    ax.set_ylim(data.axis[0], data.axis[-1])
    ax.set_aspect("equal")
    ax.set_title(title)
    return mesh


def confidence_map_figure(panels: Sequence[tuple[str, ConfidenceMapData]]) -> Figure:
    """Panels side by side with one colour bar and one legend."""
    figure = Figure(figsize=(4.0 * len(panels) + 1.2, 4.6), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    mesh = None
    for ax, (title, data) in zip(axes, panels):
        mesh = draw_confidence_map(ax, data, title)
    labels = {data.label for _, data in panels}
    figure.colorbar(mesh, ax=list(axes), label=" / ".join(sorted(labels)), shrink=0.9)
    deltas = {round(data.delta, 4) for _, data in panels}
    threshold = f"{deltas.pop():g}" if len(deltas) == 1 else "per panel"
    handles = [
        Line2D([], [], color="white", linestyle="--", label=f"score = threshold ({threshold})"),
        Line2D([], [], color="cyan", label="true ID support"),
        *[
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                label=f"ID class {k}",
                color=CLASS_COLOURS[k % len(CLASS_COLOURS)],
            )
            for k in range(panels[0][1].num_classes)
        ],
        Line2D([], [], marker="o", linestyle="", color="0.6", label="OOD training points"),
    ]
    legend = figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5))
    legend.get_frame().set_facecolor("0.3")
    for text in legend.get_texts():
        text.set_color("white")
    return figure
