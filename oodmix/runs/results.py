"""What a finished run leaves: <run>/metrics.json and the printed table of its results."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from oodmix.allowed import require
from oodmix.config.paths import shown_path
from oodmix.files import write_json_atomic
from oodmix.runs.context import choice, in_multirun

# Shown in the printed table, in this order, when present.
TABLE_ROWS = {
    "test/f1": "F1 (ID positive)",
    "test/precision": "precision (ID)",
    "test/recall": "recall (ID)",
    "test/f1_ood": "F1 (OOD positive)",
    "test/f1_tuned": "F1 at val-tuned delta",
    "test/auroc": "AUROC",
    "test/fpr95": "FPR at 95% TPR",
    "test/acc": "ID accuracy",
}


def check_optimized_metric(name: Any) -> str:
    """optimized_metric, the value a run hands to Hydra's sweepers: a validation metric
    (val/<name>), never a test one, which would leak the test set into model selection."""
    return require(
        "optimized_metric",
        name,
        isinstance(name, str) and name.startswith("val/"),
        "a validation metric, val/<name>, e.g. val/f1",
    )


def format_results(metrics: dict[str, Any], threshold: str, output: Path) -> str:
    """A short human-readable table of the test metrics."""
    lines = [
        f"oodmix  loss={metrics['loss']}  detector={metrics['detector']}  seed={metrics['seed']}"
        f"  threshold: {threshold}  (test set)"
    ]
    for key, label in TABLE_ROWS.items():
        if key in metrics:
            lines.append(f"  {label:<22} {metrics[key]:.4f}")
    lines.append(f"  written to {shown_path(output)}")
    return "\n".join(lines)


def write_metrics(
    cfg: DictConfig, loss: Any, metrics: dict[str, Any], main_process: bool = True
) -> dict[str, Any]:
    """Add what identifies the run (seed, loss, detector) to its metrics and write
    <run>/metrics.json (on the main process only); `loss` is the run's objective. The file is
    strict JSON: an undefined value (NaN, inf) is written as null, which oodmix's readers read
    back as NaN (oodmix.reporting.jobs.read_metrics)."""
    metrics = dict(metrics)
    metrics.update(
        seed=int(cfg.seed),
        loss=choice("loss", type(loss).__name__),
        detector=choice("detector", str(cfg.detector._target_).rsplit(".", 1)[-1]),
    )
    if main_process:
        strict = {
            name: None if isinstance(value, float) and not math.isfinite(value) else value
            for name, value in metrics.items()
        }
        write_json_atomic(Path(cfg.output_dir) / "metrics.json", strict)
    return metrics


def report(cfg: DictConfig, metrics: dict[str, Any]) -> float:
    """Print the table of a run's results (unless quiet) and return the metric that sweepers
    optimise."""
    fixed = getattr(hydra.utils.get_class(cfg.detector._target_), "fixed_threshold", False)
    threshold = (
        f"delta={cfg.delta}"
        if fixed
        else f"tuned on validation, val/delta_best={metrics['val/delta_best']:.4g}"
    )
    from lightning.pytorch.utilities import rank_zero_only

    from oodmix.console import is_quiet

    quiet = is_quiet(cfg.get("quiet", "auto"), multirun=in_multirun())
    if rank_zero_only.rank == 0 and not quiet:  # one table, also under torchrun or srun
        print(format_results(metrics, threshold, Path(cfg.output_dir) / "metrics.json"))
    return metrics[cfg.optimized_metric]
