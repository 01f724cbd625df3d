"""One report for a multirun folder: table.md, table.csv and the figures the sweep allows."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from oodmix.files import save_figure_atomic, write_text_atomic
from oodmix.reporting import paper as paper_table
from oodmix.reporting.aggregate import Group, fixed_overrides, group_jobs, metric_names
from oodmix.reporting.jobs import FAILURE_FILE, Job, load_jobs
from oodmix.reporting.tables import csv_table, markdown_table

HEATMAP_AXES = ("mixup.alpha", "beta")  # x, y
DELTA_GRID_POINTS = 201
MAX_MAP_PANELS = 6  # more confidence maps side by side are too small to read


@dataclass
class Report:
    sweep_dir: Path
    keys: list[str]
    groups: list[Group]
    metrics: list[str]
    table: str
    written: list[Path] = field(default_factory=list)


def best_job(jobs: list[Job], metric: str = "val/f1") -> Job | None:
    """The finished job with the highest validation metric (never chosen on the test set)."""
    candidates = [job for job in jobs if job.ok and metric in job.metrics]
    return max(candidates, key=lambda job: job.metrics[metric]) if candidates else None


def _settings(overrides: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in overrides.items()) or "(none)"


def _summary(report: Report, jobs: list[Job], paper: bool) -> str:
    finished = sum(job.ok for job in jobs)
    lines = [
        f"# oodmix report: {report.sweep_dir}",
        "",
        f"{len(jobs)} jobs, {finished} finished, {len(jobs) - finished} failed. Rows group the "
        f"jobs by every swept key but the seed ({', '.join(report.keys) or 'none'}); cells are "
        "mean ± sample standard deviation over seeds. F1, precision and recall take ID as the "
        "positive class; `_ood` columns take OOD as positive; `acc` is ID accuracy.",
        "",
        f"Fixed overrides: {_settings(fixed_overrides(jobs))}",
        "",
        report.table,
    ]
    best = best_job(jobs)
    if best is not None:
        lines += [
            "",
            f"Best job by validation F1: job {best.name} ({_settings(best.overrides)}): "
            f"val/f1 {best.metrics['val/f1']:.3f}, "
            f"test/f1 {best.metrics.get('test/f1', math.nan):.3f}",
        ]
    failed = [job for job in jobs if not job.ok]
    if failed:
        heading = "Failed jobs"
        if any((job.path / FAILURE_FILE).is_file() for job in failed):
            heading += f" (tracebacks in <job>/{FAILURE_FILE})"
        lines += ["", f"{heading}:"]
        lines += [f"- job {job.name} ({_settings(job.overrides)}): {job.failure}" for job in failed]
    if paper:
        lines += ["", "**Against the paper's Table 1**", ""]
        if report.keys == ["loss"]:
            lines.append(paper_table.comparison(report.groups))
        else:
            lines.append(
                "The comparison needs a sweep over `loss` alone (and seeds); this one varies "
                f"{', '.join(report.keys) or 'nothing'}."
            )
        configs = (job.path / ".hydra" / "config.yaml" for job in jobs if job.ok)
        config = next((path for path in configs if path.is_file()), None)
        if config is not None:
            choices = paper_table.our_choices(config)
            lines += ["", "**Our choices where the paper is silent**", "", choices]
    lines += ["", *[f"![{p.stem}]({p.name})" for p in report.written if p.suffix == ".png"]]
    return "\n".join(lines) + "\n"


def write_heatmaps(report: Report, metric: str = "test/f1") -> Path | None:
    """Mean `metric` over (mixup.alpha, beta), one panel per value of the other swept keys."""
    x_key, y_key = HEATMAP_AXES
    if not set(HEATMAP_AXES) <= set(report.keys):
        return None
    from oodmix.plots.sweeps import heatmap_figure

    others = [k for k in report.keys if k not in HEATMAP_AXES]
    panels: dict[str, dict[tuple[str, str], float]] = {}
    for group in report.groups:
        title = ", ".join(f"{k}={group.settings[k]}" for k in others) or f"mean {metric}"
        cell = (group.settings[x_key], group.settings[y_key])
        panels.setdefault(title, {})[cell] = group.mean(metric)
    for cells in panels.values():
        # Only a full grid of at least 2 x 2 makes a heatmap: a random search (Optuna) would
        # leave it mostly empty.
        xs, ys = {x for x, _ in cells}, {y for _, y in cells}
        if len(xs) < 2 or len(ys) < 2 or len(cells) < len(xs) * len(ys):
            return None
    path = report.sweep_dir / "heatmap_beta_alpha.png"
    save_figure_atomic(heatmap_figure(panels, x_key, y_key, f"mean {metric} over seeds"), path)
    return path


def write_f1_delta(report: Report, marked_delta: float) -> Path | None:
    """Test F1 against delta per group, from every job's saved scores (no retraining)."""
    from oodmix.plots.sweeps import f1_against_threshold, f1_delta_figure, stack_curves

    stored: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for group in report.groups:
        for job in group.finished:
            path = job.path / "scores.npz"
            if path.is_file():
                with np.load(path, allow_pickle=False) as scores:
                    stored.setdefault(group.label(), []).append(
                        (scores["test_score"], scores["test_is_id"])
                    )
    if not stored:
        return None
    lowest = min(float(s.min()) for runs in stored.values() for s, _ in runs)
    deltas = np.linspace(math.floor(lowest * 20) / 20, 1.0, DELTA_GRID_POINTS)
    curves = {}
    for label, runs in stored.items():
        mean, std = stack_curves([f1_against_threshold(s, t, deltas) for s, t in runs])
        curves[f"{label} ({len(runs)} seeds)"] = (deltas, mean, std)
    path = report.sweep_dir / "f1_vs_delta.png"
    save_figure_atomic(f1_delta_figure(curves, marked_delta), path)
    return path


def write_confidence_maps(report: Report, paper: bool) -> Path | None:
    """One confidence map per group (its lowest seed), side by side: the paper's Figure 1."""
    from oodmix.plots.confidence import ConfidenceMapData, confidence_map_figure

    panels = []
    for group in report.groups:
        maps = [job for job in group.finished if (job.path / "confidence_map.npz").is_file()]
        if maps:
            job = min(maps, key=lambda j: int(j.metrics.get("seed", 0)))
            title = group.settings.get("loss", group.label())
            if paper:
                title = paper_table.OBJECTIVE_NAMES.get(title, title)
            title += f"\n(seed {job.metrics.get('seed')}, test F1 {job.metrics['test/f1']:.3f})"
            panels.append((title, ConfidenceMapData.load(job.path / "confidence_map.npz")))
    if not panels or len(panels) > MAX_MAP_PANELS:
        return None
    path = report.sweep_dir / ("figure1.png" if paper else "confidence_maps.png")
    save_figure_atomic(confidence_map_figure(panels), path)
    return path


def build_report(sweep_dir: Path, paper: bool = False, columns: list[str] | None = None) -> Report:
    """Aggregate a multirun folder and write table.md, table.csv and figures into it.

    `columns` chooses the metrics of the Markdown table (default: every test/* metric); the
    CSV always holds every metric.
    """
    sweep_dir = Path(sweep_dir)
    jobs = load_jobs(sweep_dir)
    if not jobs:
        raise FileNotFoundError(f"{sweep_dir} holds no job folders (<n>/.hydra/overrides.yaml)")
    keys, groups = group_jobs(jobs)
    metrics = metric_names(groups)
    shown = columns or [m for m in metrics if m.startswith("test/")] or metrics
    unknown = [m for m in shown if m not in metrics]
    if unknown:
        raise ValueError(f"no job reports {', '.join(unknown)}; known: {', '.join(metrics)}")
    report = Report(sweep_dir, keys, groups, metrics, markdown_table(keys, groups, shown))
    marked_delta = _configured_delta(jobs)
    for writer in (
        lambda: write_confidence_maps(report, paper),
        lambda: write_heatmaps(report),
        lambda: write_f1_delta(report, marked_delta),
    ):
        path = writer()
        if path is not None:
            report.written.append(path)
    write_text_atomic(sweep_dir / "table.csv", csv_table(keys, groups, metrics))
    write_text_atomic(sweep_dir / "table.md", _summary(report, jobs, paper))
    report.written = [sweep_dir / "table.md", sweep_dir / "table.csv", *report.written]
    return report


def _configured_delta(jobs: list[Job]) -> float:
    for job in jobs:
        config = job.path / ".hydra" / "config.yaml"
        if config.is_file():
            return float(OmegaConf.load(config).get("delta", 0.8))
    return 0.8


__all__ = ["Report", "best_job", "build_report"]
