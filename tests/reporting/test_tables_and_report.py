"""Tables of grouped results, the report written into a sweep folder, its CLI and Hydra callback."""

from __future__ import annotations

import csv
import io
import logging
import math
import statistics
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from sweep_factory import make_job

from oodmix.reporting.aggregate import Group
from oodmix.reporting.cli import main as report_main
from oodmix.reporting.hydra_callback import WriteSweepReport
from oodmix.reporting.jobs import Job
from oodmix.reporting.report import build_report
from oodmix.reporting.tables import csv_table, markdown_table


def hand_job(metrics: dict | None) -> Job:
    return Job(Path("unused"), {}, metrics, None if metrics else "failed")


def hand_groups() -> list[Group]:
    """ce: test/f1 0.1, 0.2, 0.6 and test/acc 0.9, 0.95, 1.0; ce_kl: one seed (f1 0.5, no acc)
    and one failed job."""
    ce = Group(
        {"loss": "ce"},
        [
            hand_job({"test/f1": 0.1, "test/acc": 0.9}),
            hand_job({"test/f1": 0.2, "test/acc": 0.95}),
            hand_job({"test/f1": 0.6, "test/acc": 1.0}),
        ],
    )
    ce_kl = Group({"loss": "ce_kl"}, [hand_job({"test/f1": 0.5}), hand_job(None)])
    return [ce, ce_kl]


# --- tables ----------------------------------------------------------------------------------


def test_markdown_table_exact() -> None:
    """mean ± sample std to 3 decimals, the mean alone for one seed, '–' with no value."""
    table = markdown_table(["loss"], hand_groups(), ["test/f1", "test/acc"])
    # sqrt(0.07) = 0.26458; stdev(0.9, 0.95, 1.0) = 0.05
    assert table == (
        "| loss | test/f1 | test/acc | seeds | failed |\n"
        "|---|---|---|---|---|\n"
        "| ce | 0.300 ± 0.265 | 0.950 ± 0.050 | 3 | 0 |\n"
        "| ce_kl | 0.500 | – | 1 | 1 |"
    )


def test_csv_table_contents() -> None:
    """One row per group: settings, n_seeds, n_failed, then mean and std per metric; empty
    cells where there is no value."""
    rows = list(
        csv.reader(io.StringIO(csv_table(["loss"], hand_groups(), ["test/f1", "test/acc"])))
    )
    assert rows[0] == [
        "loss",
        "n_seeds",
        "n_failed",
        "test/f1_mean",
        "test/f1_std",
        "test/acc_mean",
        "test/acc_std",
    ]
    assert len(rows) == 3
    ce, ce_kl = rows[1], rows[2]
    assert ce[:3] == ["ce", "3", "0"]
    expected = [
        statistics.fmean([0.1, 0.2, 0.6]),
        statistics.stdev([0.1, 0.2, 0.6]),
        statistics.fmean([0.9, 0.95, 1.0]),
        statistics.stdev([0.9, 0.95, 1.0]),
    ]
    assert [float(cell) for cell in ce[3:]] == pytest.approx(expected, abs=1e-12)
    assert float(ce[3]) == pytest.approx(0.3, abs=1e-12)
    assert float(ce[4]) == pytest.approx(math.sqrt(0.07), abs=1e-12)
    assert ce_kl == ["ce_kl", "1", "1", "0.5", "", "", ""]


# --- build_report ----------------------------------------------------------------------------


def paper_sweep(sweep: Path) -> None:
    """Three objectives x 2 seeds, plus two failures. Test F1 means: ce 0.1, ce_kl 0.2,
    ce_kl_mixup 0.5. Highest val/f1: job 2 (ce_kl); highest test/f1: job 4 (ce_kl_mixup)."""
    rows = [  # loss, seed, test/f1, val/f1
        ("ce", 0, 0.1, 0.15),
        ("ce", 1, 0.1, 0.15),
        ("ce_kl", 0, 0.2, 0.9),
        ("ce_kl", 1, 0.2, 0.3),
        ("ce_kl_mixup", 0, 0.6, 0.5),
        ("ce_kl_mixup", 1, 0.4, 0.4),
    ]
    for n, (loss, seed, test_f1, val_f1) in enumerate(rows):
        metrics = {"test/f1": test_f1, "val/f1": val_f1, "seed": seed, "loss": loss}
        make_job(sweep, n, [f"loss={loss}", f"seed={seed}"], metrics)
    make_job(sweep, 6, ["loss=ce_kl_mixup", "seed=2"])  # no metrics.json
    make_job(sweep, 7, ["loss=ce", "seed=2"], metrics_text="{broken")


def test_build_report_writes_both_tables_without_temporary_files(tmp_path: Path) -> None:
    """table.md and table.csv are written, and no '.table.*' temporary file is left behind."""
    paper_sweep(tmp_path)
    report = build_report(tmp_path)
    assert (tmp_path / "table.md").is_file()
    assert (tmp_path / "table.csv").is_file()
    assert report.written[:2] == [tmp_path / "table.md", tmp_path / "table.csv"]
    assert list(tmp_path.glob(".table.*")) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert report.table in (tmp_path / "table.md").read_text()


def test_build_report_table_rows(tmp_path: Path) -> None:
    """The markdown rows show each objective's test F1 over finished seeds and its failures;
    the CSV rows carry the same counts."""
    paper_sweep(tmp_path)
    build_report(tmp_path)
    text = (tmp_path / "table.md").read_text()
    # stdev(0.6, 0.4) = sqrt(0.02) = 0.1414
    assert "| ce | 0.100 ± 0.000 | 2 | 1 |" in text
    assert "| ce_kl | 0.200 ± 0.000 | 2 | 0 |" in text
    assert "| ce_kl_mixup | 0.500 ± 0.141 | 2 | 1 |" in text
    assert "8 jobs, 6 finished, 2 failed." in text
    with open(tmp_path / "table.csv") as handle:
        rows = {row["loss"]: row for row in csv.DictReader(handle)}
    assert {loss: (r["n_seeds"], r["n_failed"]) for loss, r in rows.items()} == {
        "ce": ("2", "1"),
        "ce_kl": ("2", "0"),
        "ce_kl_mixup": ("2", "1"),
    }
    assert float(rows["ce_kl_mixup"]["val/f1_mean"]) == pytest.approx(0.45, abs=1e-12)


def test_build_report_lists_failed_jobs_with_reasons(tmp_path: Path) -> None:
    """Each failed job appears with its overrides and why it failed."""
    paper_sweep(tmp_path)
    build_report(tmp_path)
    lines = (tmp_path / "table.md").read_text().splitlines()
    missing = [line for line in lines if line.startswith("- job 6 ")]
    broken = [line for line in lines if line.startswith("- job 7 ")]
    assert missing == [
        "- job 6 (loss=ce_kl_mixup seed=2): did not finish (no metrics.json, no failure.json)"
    ]
    assert len(broken) == 1
    assert broken[0].startswith("- job 7 (loss=ce seed=2): metrics.json is not valid JSON")


def test_best_job_is_chosen_on_validation_not_test_f1(tmp_path: Path) -> None:
    """Job 2 has the highest val/f1 and is named best, not job 4 with the highest test/f1."""
    paper_sweep(tmp_path)
    build_report(tmp_path)
    text = (tmp_path / "table.md").read_text()
    assert (
        "Best job by validation F1: job 2 (loss=ce_kl seed=0): val/f1 0.900, test/f1 0.200"
    ) in text
    assert "job 4 (" not in text


def test_paper_comparison_shows_means_beside_the_paper(tmp_path: Path) -> None:
    """paper=True: our mean ± std per objective beside 0.134 / 0.480 / 0.531, and gains
    computed from our means (0.5 / 0.1 - 1 = +400.0%, 0.2 / 0.1 - 1 = +100.0%,
    0.5 / 0.2 - 1 = +150.0%)."""
    paper_sweep(tmp_path)
    build_report(tmp_path, paper=True)
    text = (tmp_path / "table.md").read_text()
    assert "Against the paper's Table 1" in text
    assert "| cross-entropy only | `ce` | 0.100 ± 0.000 | 2 | 0.134 |" in text
    assert "| + confidence loss (KL to uniform) | `ce_kl` | 0.200 ± 0.000 | 2 | 0.480 |" in text
    assert "| + confidence loss + mixup | `ce_kl_mixup` | 0.500 ± 0.141 | 2 | 0.531 |" in text
    assert "| `ce_kl` over `ce` | +100.0% | +258% |" in text
    assert "| `ce_kl_mixup` over `ce` | +400.0% | +296% |" in text
    assert "| `ce_kl_mixup` over `ce_kl` | +150.0% | +10.6% |" in text
    assert "- optimiser: Adam, lr 0.01, weight decay 0.0" in text


def test_paper_comparison_marks_objectives_not_run(tmp_path: Path) -> None:
    """An objective absent from the sweep is 'not run' and its gains are '–'."""
    make_job(tmp_path, 0, ["loss=ce", "seed=0"], {"test/f1": 0.1, "val/f1": 0.1, "seed": 0})
    make_job(tmp_path, 1, ["loss=ce_kl", "seed=0"], {"test/f1": 0.3, "val/f1": 0.3, "seed": 0})
    build_report(tmp_path, paper=True)
    text = (tmp_path / "table.md").read_text()
    assert "| + confidence loss + mixup | `ce_kl_mixup` | not run | 0 | 0.531 |" in text
    assert "| `ce_kl` over `ce` | +200.0% | +258% |" in text
    assert "| `ce_kl_mixup` over `ce` | – | +296% |" in text


def test_without_paper_there_is_no_comparison(tmp_path: Path) -> None:
    """paper=False leaves the paper's section out."""
    paper_sweep(tmp_path)
    build_report(tmp_path, paper=False)
    text = (tmp_path / "table.md").read_text()
    assert "Against the paper" not in text
    assert "0.134" not in text


# --- oodmix-report ---------------------------------------------------------------------------


def test_cli_prints_the_table_and_written_files(tmp_path: Path, capsys) -> None:
    """oodmix-report DIR prints the markdown table and the files it wrote."""
    paper_sweep(tmp_path)
    report_main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "| loss | test/f1 | seeds | failed |" in out
    assert "| ce_kl_mixup | 0.500 ± 0.141 | 2 | 1 |" in out
    assert f"wrote {tmp_path / 'table.md'}" in out
    assert f"wrote {tmp_path / 'table.csv'}" in out


def test_cli_paper_flag_adds_the_comparison(tmp_path: Path, capsys) -> None:
    """--paper writes the comparison into table.md."""
    paper_sweep(tmp_path)
    report_main([str(tmp_path), "--paper"])
    capsys.readouterr()
    assert "| `ce_kl_mixup` over `ce` | +400.0% | +296% |" in (tmp_path / "table.md").read_text()


@pytest.mark.parametrize("case", ["missing", "empty", "no_jobs"])
def test_cli_exits_2_with_one_line_for_no_jobs(tmp_path: Path, capsys, case: str) -> None:
    """A missing folder, an empty one, or one whose folders are not jobs: exit code 2 and one
    error line, no table."""
    sweep = tmp_path / "sweep"
    if case != "missing":
        sweep.mkdir()
    if case == "no_jobs":
        (sweep / "0" / ".hydra").mkdir(parents=True)  # no overrides.yaml
    with pytest.raises(SystemExit) as exit_info:
        report_main([str(sweep)])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err_lines = captured.err.splitlines()
    assert len(err_lines) == 1
    assert err_lines[0].startswith("oodmix-report: error: ")
    assert str(sweep) in err_lines[0]
    assert not (sweep / "table.md").exists()


# --- Hydra callback --------------------------------------------------------------------------


def sweep_config(sweep: Path):
    return OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})


def test_hydra_callback_writes_the_report(tmp_path: Path, capsys) -> None:
    """on_multirun_end reports the folder of hydra.sweep.dir (paper flag passed on)."""
    paper_sweep(tmp_path)
    WriteSweepReport(paper=True).on_multirun_end(sweep_config(tmp_path))
    text = (tmp_path / "table.md").read_text()
    assert "| ce_kl_mixup | 0.500 ± 0.141 | 2 | 1 |" in text
    assert "| `ce_kl_mixup` over `ce` | +400.0% | +296% |" in text
    assert (tmp_path / "table.csv").is_file()
    assert "| ce | 0.100 ± 0.000 | 2 | 1 |" in capsys.readouterr().out


def test_hydra_callback_only_logs_when_there_are_no_jobs(tmp_path: Path, caplog) -> None:
    """A sweep folder without jobs: a warning is logged, nothing raised, nothing written."""
    with caplog.at_level(logging.WARNING, logger="oodmix.reporting.hydra_callback"):
        WriteSweepReport().on_multirun_end(sweep_config(tmp_path))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "no report for" in warnings[0].getMessage()
    assert str(tmp_path) in warnings[0].getMessage()
    assert list(tmp_path.iterdir()) == []


def test_hydra_callback_disabled_writes_nothing(tmp_path: Path) -> None:
    """enabled=False: no report even for a folder full of jobs."""
    paper_sweep(tmp_path)
    WriteSweepReport(enabled=False).on_multirun_end(sweep_config(tmp_path))
    assert not (tmp_path / "table.md").exists()
    assert not (tmp_path / "table.csv").exists()
