"""logger=csv (the default): hyperparameters and every metric in <run>/csv/."""

from __future__ import annotations

import csv
import json

import yaml


def test_csv_logger_writes_the_hyperparameters_and_every_metric(logged_run) -> None:
    run, metrics = logged_run("csv")
    assert json.loads((run / "metrics.json").read_text()) == metrics
    hparams = yaml.safe_load((run / "csv" / "hparams.yaml").read_text())
    assert hparams["config"]["beta"] == 0.5 and hparams["config"]["seed"] == 3
    with open(run / "csv" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    # train/loss once per epoch, at the epoch's last optimiser step.
    losses = [(r["step"], r["epoch"]) for r in rows if r["train/loss"]]
    assert losses == [("16", "0"), ("32", "1")]
    # Every validation and test metric: its last value is metrics.json's (the tested weights).
    logged = [name for name in metrics if name.startswith(("val/", "test"))]
    assert {"val/f1", "test/f1", "test_near/auroc", "test_far/auroc"} <= set(logged)
    for name in logged:
        values = [float(r[name]) for r in rows if r.get(name)]
        assert values and values[-1] == metrics[name], name
    assert len([r for r in rows if r["val/f1"]]) == 3  # 2 epochs + the tested weights' pass
