"""The CSV logger keeps the rows a run has already written (resumed runs, later processes)."""

from __future__ import annotations

import csv

from oodmix.loggers import ContinuingCSVLogger


def _rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_second_logger_continues_the_file(tmp_path):
    first = ContinuingCSVLogger(save_dir=str(tmp_path), name="csv", version="")
    first.log_metrics({"train/loss": 0.5}, step=0)
    first.log_metrics({"train/loss": 0.25}, step=1)
    first.save()
    second = ContinuingCSVLogger(save_dir=str(tmp_path), name="csv", version="")
    second.log_metrics({"train/loss": 0.125}, step=2)
    second.log_metrics({"test/f1": 0.9}, step=3)  # a new column widens the header
    second.save()
    rows = _rows(tmp_path / "csv" / "metrics.csv")
    assert [(r["step"], r["train/loss"], r["test/f1"]) for r in rows] == [
        ("0", "0.5", ""),
        ("1", "0.25", ""),
        ("2", "0.125", ""),
        ("3", "", "0.9"),
    ]


def test_a_new_folder_starts_a_new_file(tmp_path):
    logger = ContinuingCSVLogger(save_dir=str(tmp_path), name="csv", version="")
    logger.log_metrics({"val/f1": 0.75}, step=0)
    logger.save()
    assert _rows(tmp_path / "csv" / "metrics.csv") == [{"step": "0", "val/f1": "0.75"}]
