"""logger=none: no logger files; the run still writes metrics.json."""

from __future__ import annotations

import json


def test_no_logger_writes_no_logger_files(logged_run) -> None:
    run, metrics = logged_run("none")
    assert json.loads((run / "metrics.json").read_text()) == metrics
    assert metrics["test/f1"] >= 0.0
    # What a run folder holds without a logger (plots=false: no confidence map).
    assert {p.name for p in run.iterdir()} == {"checkpoints", "metrics.json", "scores.npz"}
    for name in ("csv", "tensorboard", "mlruns", "lightning_logs", "hparams.yaml"):
        assert not list(run.rglob(name)), name
    assert not list(run.rglob("events.out.tfevents.*"))
