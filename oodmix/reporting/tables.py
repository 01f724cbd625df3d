"""Tables of grouped results: Markdown (mean +- std) and CSV (one column per statistic)."""

from __future__ import annotations

import csv
import io
import math

from oodmix.reporting.aggregate import Group


def mean_std(mean: float, std: float, digits: int = 3) -> str:
    """'0.958 ± 0.017'; the mean alone for a single seed; '–' with no value."""
    if math.isnan(mean):
        return "–"
    if math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_table(keys: list[str], groups: list[Group], metrics: list[str]) -> str:
    header = [*keys, *metrics, "seeds", "failed"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for group in groups:
        cells = [group.settings[k] for k in keys]
        cells += [mean_std(group.mean(m), group.std(m)) for m in metrics]
        cells += [str(len(group.finished)), str(len(group.failed))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def csv_table(keys: list[str], groups: list[Group], metrics: list[str]) -> str:
    """One row per group: its settings, n_seeds, n_failed, then <metric>_mean, <metric>_std."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [*keys, "n_seeds", "n_failed", *[f"{m}_{s}" for m in metrics for s in ("mean", "std")]]
    )
    for group in groups:
        stats = []
        for metric in metrics:
            stats += [group.mean(metric), group.std(metric)]
        writer.writerow(
            [
                *[group.settings[k] for k in keys],
                len(group.finished),
                len(group.failed),
                *["" if math.isnan(v) else repr(v) for v in stats],
            ]
        )
    return buffer.getvalue()
