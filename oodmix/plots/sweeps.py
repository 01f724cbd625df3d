"""Figures of a sweep: mean F1 over (beta, alpha), and F1 against the threshold delta."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from oodmix.metrics.threshold_f1 import f1_at_thresholds


def f1_against_threshold(scores: np.ndarray, is_id: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """F1 (ID positive) of the rule "ID when score >= delta", for every delta at once.

    The run's own counting and formula (oodmix.metrics.f1_at_thresholds), on the arrays of a
    scores.npz: F1 = 2 tp / (2 tp + fp + fn), 0 when nothing is predicted ID and nothing is ID;
    delta is compared in the scores' precision (float32 in scores.npz), as the run compared it.
    """
    f1 = f1_at_thresholds(
        torch.from_numpy(np.asarray(scores)),
        torch.from_numpy(np.asarray(is_id, dtype=bool)),
        torch.from_numpy(np.asarray(deltas, dtype=np.float64)),
    )
    return f1.numpy()


def heatmap_figure(
    panels: Mapping[str, Mapping[tuple[str, str], float]],
    x_label: str,
    y_label: str,
    value_label: str,
    center: float | None = None,
) -> Figure:
    """One annotated heatmap per panel title; cells keyed by (x value, y value) as strings.

    The colour scale is shared by all panels. By default it runs from the smallest to the largest
    value (viridis). With `center` (e.g. 0 for differences) it is a diverging scale (RdBu: red
    below, blue above) symmetric about `center`: vmin = center - m, vmax = center + m with
    m = max |value - center|, so the centre is the neutral middle colour and equal distances
    above and below it get equally strong colours.
    """
    figure = Figure(figsize=(4.6 * len(panels) + 1.0, 4.2), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    values = [v for cells in panels.values() for v in cells.values() if np.isfinite(v)]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    cmap = "viridis"
    if center is not None:
        # Every value equal to the centre (or none at all) would give an empty range.
        span = max((abs(v - center) for v in values), default=0.0) or 1.0
        low, high, cmap = center - span, center + span, "RdBu"
    image = None
    for ax, (title, cells) in zip(axes, panels.items()):
        xs = sorted({x for x, _ in cells}, key=_numeric_key)
        ys = sorted({y for _, y in cells}, key=_numeric_key)
        grid = np.array([[cells.get((x, y), np.nan) for x in xs] for y in ys])
        image = ax.imshow(grid, origin="lower", cmap=cmap, vmin=low, vmax=high, aspect="auto")
        for i, j in np.ndindex(grid.shape):
            if np.isfinite(grid[i, j]):
                if center is None:
                    bright = grid[i, j] > (low + high) / 2
                else:
                    # A diverging map is light near its centre and dark at both ends.
                    bright = abs(grid[i, j] - center) <= 0.6 * (high - center)
                ax.text(j, i, f"{grid[i, j]:.3f}", ha="center", va="center",
                        color="black" if bright else "white", fontsize=9)  # fmt: skip
        ax.set_xticks(range(len(xs)), xs)
        ax.set_yticks(range(len(ys)), ys)
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        ax.set_title(title)
    figure.colorbar(image, ax=list(axes), label=value_label)
    return figure


def f1_delta_figure(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    marked_delta: float,
    title: str = "",
) -> Figure:
    """Mean F1 against delta per group, a band of +- one std over seeds, the configured delta
    marked, and each curve's best delta."""
    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = figure.subplots()
    for label, (deltas, mean, std) in curves.items():
        (line,) = ax.plot(deltas, mean, label=label)
        ax.fill_between(deltas, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        best = int(np.argmax(mean))
        ax.plot(deltas[best], mean[best], "o", color=line.get_color())
    ax.axvline(marked_delta, color="0.3", linestyle="--", label=f"delta = {marked_delta:g}")
    ax.set_xlabel("threshold delta (predicted ID when score >= delta)")
    ax.set_ylabel("test F1 (ID positive)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return figure


def _numeric_key(value: str) -> tuple[int, float | str]:
    try:
        return (0, float(value))
    except ValueError:
        return (1, value)


def stack_curves(curves: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (sample, when more than one) standard deviation of curves of equal length."""
    stacked = np.stack(curves)
    std = stacked.std(axis=0, ddof=1) if len(curves) > 1 else np.zeros(stacked.shape[1])
    return stacked.mean(axis=0), std
