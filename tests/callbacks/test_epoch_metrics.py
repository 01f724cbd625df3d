"""The validation after each training epoch computes what is read per epoch (monitors, progress
bars, a logger's HParams list, `epoch_metrics`); the validation after training and the test
compute every metric, so metrics.json keeps its full set of keys."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

import oodmix.callbacks.detection_evaluation as detection_evaluation
from oodmix.callbacks import DetectionEvaluation
from oodmix.callbacks.detection_evaluation import ALL_METRICS, epoch_metric_names
from oodmix.callbacks.requested_metrics import requested_metrics
from oodmix.runs.job import train

EPOCHS = 3
EVAL_METRICS = sorted(ALL_METRICS - {"delta_best"})
#: metrics.json of a default run: every metric of every evaluation set, and the run's names.
EXPECTED_KEYS = {
    *(f"{s}/{m}" for s in ("val", "test", "test_near", "test_far") for m in EVAL_METRICS),
    "val/delta_best",
    "seed",
    "loss",
    "detector",
}


@pytest.fixture
def counted(monkeypatch):
    """Counts of ranking_metrics and best_f1_threshold calls: in total, and at the end of fit
    (before the validation that oodmix-train runs on the tested weights)."""
    calls = {"ranking": 0, "tune": 0}
    at_fit_end: dict[str, int] = {}
    ranking, tune = detection_evaluation.ranking_metrics, detection_evaluation.best_f1_threshold

    def counted_ranking(*args):
        calls["ranking"] += 1
        return ranking(*args)

    def counted_tune(*args):
        calls["tune"] += 1
        return tune(*args)

    monkeypatch.setattr(detection_evaluation, "ranking_metrics", counted_ranking)
    monkeypatch.setattr(detection_evaluation, "best_f1_threshold", counted_tune)
    monkeypatch.setattr(
        DetectionEvaluation,
        "on_fit_end",
        lambda self, trainer, module: at_fit_end.update(calls),
        raising=False,
    )
    return calls, at_fit_end


def csv_rows(run: Path) -> list[dict[str, str]]:
    with open(run / "csv" / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


def logged_during_fit(run: Path) -> set[str]:
    """The val/* columns that have a value in a row of a training epoch (validation after
    training logs at epoch == max_epochs)."""
    return {
        key
        for row in csv_rows(run)
        if int(row["epoch"]) < EPOCHS
        for key, value in row.items()
        if key.startswith("val/") and value
    }


def test_default_run_validates_each_epoch_for_val_f1_only(compose_config, counted) -> None:
    """Per epoch: val/f1 (monitored by the best checkpoint), no ranking metric, no tuned
    threshold. After training: one validation and three test sets computed in full."""
    calls, at_fit_end = counted
    cfg = compose_config(f"trainer.max_epochs={EPOCHS}", "plots=false")
    train(cfg)
    run = Path(cfg.output_dir)
    assert at_fit_end == {"ranking": 0, "tune": 0}
    assert calls == {"ranking": 1 + 3, "tune": 1}  # val after fit; test, test_near, test_far
    assert logged_during_fit(run) == {"val/f1"}
    assert set(json.loads((run / "metrics.json").read_text())) == EXPECTED_KEYS


def test_epoch_metrics_adds_metrics_to_every_epoch(compose_config, counted) -> None:
    """callbacks.detection.epoch_metrics=[auroc,val/delta_best]: the ranking metrics (auroc
    logged) and the tuned threshold each epoch too."""
    _, at_fit_end = counted
    cfg = compose_config(
        f"trainer.max_epochs={EPOCHS}",
        "plots=false",
        "callbacks.detection.epoch_metrics=[auroc,val/delta_best]",
        run="epoch_metrics",
    )
    train(cfg)
    assert at_fit_end == {"ranking": EPOCHS, "tune": EPOCHS}
    assert logged_during_fit(Path(cfg.output_dir)) == {"val/f1", "val/auroc", "val/delta_best"}


def test_a_changed_monitor_is_what_each_epoch_computes(compose_config, counted) -> None:
    """The best checkpoint chosen by val/auroc: each epoch computes val/auroc (looked up on the
    trainer, not assumed), and no longer val/f1."""
    _, at_fit_end = counted
    cfg = compose_config(
        f"trainer.max_epochs={EPOCHS}",
        "plots=false",
        "callbacks.model_checkpoint.monitor=val/auroc",
        run="auroc_monitor",
    )
    train(cfg)
    assert at_fit_end["ranking"] == EPOCHS
    assert logged_during_fit(Path(cfg.output_dir)) == {"val/auroc"}


def test_a_tuned_threshold_is_found_each_epoch_when_f1_needs_it(compose_config, counted) -> None:
    """detector=energy: val/f1 is taken at the threshold tuned on validation, so each epoch
    tunes it (without logging it) and computes no ranking metric."""
    _, at_fit_end = counted
    cfg = compose_config(
        f"trainer.max_epochs={EPOCHS}", "plots=false", "detector=energy", run="energy"
    )
    train(cfg)
    assert at_fit_end == {"ranking": 0, "tune": EPOCHS}
    assert logged_during_fit(Path(cfg.output_dir)) == {"val/f1"}


def test_all_gives_every_metric_every_epoch() -> None:
    assert epoch_metric_names(["all"]) == ALL_METRICS
    assert epoch_metric_names(["val/auroc", "acc"]) == {"auroc", "acc"}
    assert epoch_metric_names([]) == frozenset()


def test_unknown_epoch_metric_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError) as raised:
        DetectionEvaluation(0.8, epoch_metrics=["auroc", "roc"])
    message = str(raised.value)
    assert message.startswith("callbacks.detection.epoch_metrics=roc is not allowed")
    assert "auroc" in message and "or [all]" in message and "\n" not in message
    # One name as a string is refused, not read letter by letter ("a", "u", ...).
    with pytest.raises(ValueError, match=r"^callbacks.detection.epoch_metrics=auroc is not"):
        DetectionEvaluation(0.8, epoch_metrics="auroc")


def test_requested_metrics_reads_monitors_bars_and_logger_hparams() -> None:
    """Monitors of callbacks and schedulers, a progress bar's metrics and a logger's HParams
    list; nothing from objects that have none."""
    bar = SimpleNamespace(metrics=("train/loss", "val/f1"))
    trainer = SimpleNamespace(
        callbacks=[
            SimpleNamespace(monitor="val/auroc"),
            SimpleNamespace(monitor=None),
            SimpleNamespace(),
            bar,
        ],
        lr_scheduler_configs=[SimpleNamespace(monitor="val/fpr95")],
        progress_bar_callback=bar,
        loggers=[SimpleNamespace(hparams_metrics=["val/aupr_in", "test/f1"]), SimpleNamespace()],
    )
    assert requested_metrics(trainer) == {
        "val/auroc",
        "val/fpr95",
        "train/loss",
        "val/f1",
        "val/aupr_in",
        "test/f1",
    }
