"""benchmarks/stacked.py: its pure helpers on synthetic numbers, and a tiny run of part 2."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def stacked():
    spec = importlib.util.spec_from_file_location("stacked_benchmark", BENCHMARKS / "stacked.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sweep_run(launcher: str, wall: float, repeat: int = 0, difference: float | None = None):
    run = {
        "launcher": launcher,
        "repeat": repeat,
        "wall_s": wall,
        "peak_rss_mb": 400.0 if launcher == "basic" else 600.0,
        "groups": None if launcher == "basic" else 1,
        "load_before": [0.5, 0.4, 0.3],
        "load_after": [0.9, 0.5, 0.3],
    }
    if launcher == "stacked":
        run["max_difference"] = difference
    return run


def group(k: int, path: str = "stacked", total: float = 10.0, epochs: int = 50) -> dict:
    """What a --one-group process writes (before member_row derives the per-member numbers)."""
    return {
        "k": k,
        "epochs": epochs,
        "device": "cpu",
        "path": path,
        "forced": False,
        "total_s": total,
        "setup_s": 0.1 * total,
        "fit_s": 0.6 * total,
        "finish_s": 0.3 * total,
        "finish_per_member_s": 0.3 * total / k,
        "peak_rss_mb": 450.0,
        "load_before": [0.2, 0.2, 0.2],
        "load_after": [1.1, 0.4, 0.3],
    }


def test_ratio_and_members(stacked) -> None:
    assert stacked.ratio(10.0, 4.0) == 2.5
    assert stacked.ratio(None, 4.0) is None and stacked.ratio(1.0, 0.0) is None
    assert stacked.parse_members("16,1,4,4") == [1, 4, 16]
    with pytest.raises(ValueError):
        stacked.parse_members("0,4")


def test_load_warning_only_above_the_threshold(stacked) -> None:
    assert stacked.load_warning("x", [1.5, 3.0, 3.0]) is None
    assert "1-minute load 1.60" in stacked.load_warning("the grid", [1.6, 0.1, 0.1])
    assert stacked.settle(0) < 1.0  # no wait asked for: none made


def test_metric_difference(stacked) -> None:
    a = {"val/f1": 0.9, "test/auroc": 0.99, "seed": 0, "loss": "ce_kl_mixup", "x": math.nan}
    assert stacked.metric_difference(a, dict(a)) == (0.0, None)
    gap, key = stacked.metric_difference(a, {**a, "test/auroc": 0.98})
    assert key == "test/auroc" and gap == pytest.approx(0.01)
    assert stacked.metric_difference(a, {**a, "loss": "ce"}) == (math.inf, "loss")
    assert stacked.metric_difference(a, {k: v for k, v in a.items() if k != "seed"})[0] == math.inf
    assert stacked.metric_difference(a, {**a, "x": 1.0})[0] == math.inf


def test_compare_sweeps_job_by_job(stacked, tmp_path: Path) -> None:
    for sweep, values in (("basic", [0.5, 0.7, 0.1]), ("stacked", [0.5, 0.7 + 2e-7, None])):
        for job, value in enumerate(values):
            (tmp_path / sweep / str(job)).mkdir(parents=True)
            if value is not None:
                metrics = {"val/f1": value, "seed": job}
                (tmp_path / sweep / str(job) / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "basic" / ".submitit").mkdir()  # not a job folder
    result = stacked.compare_sweeps(tmp_path / "basic", tmp_path / "stacked")
    assert result["job"] == "1" and result["key"] == "val/f1"
    assert result["max_difference"] == pytest.approx(2e-7)
    assert result["jobs_compared"] == 2 and result["jobs_without_metrics"] == ["2"]
    assert list(result["differing"]) == ["val/f1"]
    assert result["differing"]["val/f1"] == pytest.approx(2e-7)


def test_sweep_summary_and_table(stacked) -> None:
    runs = [
        sweep_run("basic", 100.0, 0),
        sweep_run("stacked", 20.0, 0, 1e-7),
        sweep_run("basic", 110.0, 1),
        sweep_run("stacked", 30.0, 1, 3e-7),
    ]
    row = stacked.summarise_sweep("grid", runs, 48, 5.0)
    assert (row["basic_s"], row["stacked_s"]) == (105.0, 25.0)
    assert row["ratio"] == pytest.approx(4.2) and row["meets_target"] is False
    assert row["max_metric_difference"] == 3e-7 and row["metrics_agree"] is True
    assert (row["basic_peak_rss_mb"], row["stacked_peak_rss_mb"]) == (400.0, 600.0)
    table = stacked.format_sweeps([row], repeats=2)
    assert (
        "| grid | 48 | 1 | 105.0 | 25.0 | 4.20x | >= 5x (missed) | 400 / 600 | 3.0e-07 |" in table
    )
    assert "grid basic #0 0.50 / 0.90" in table


def test_member_rows_ratio_and_table(stacked) -> None:
    rows = [
        stacked.member_row(group(1, "solo", total=5.0)),
        stacked.member_row(group(1, "stacked", total=8.0)),
        stacked.member_row(group(48, total=48.0)),
        stacked.member_row(group(192, total=211.2)),
    ]
    assert rows[2]["s_per_member"] == 1.0
    assert rows[2]["fit_ms_per_member_epoch"] == pytest.approx(0.6 * 48 / (48 * 50) * 1000)
    part = stacked.summarise_members(rows, "cpu", 50)
    assert part["ratio"]["value"] == pytest.approx(1.1)
    assert (part["ratio"]["large"], part["ratio"]["small"], part["ratio"]["target"]) == (
        192,
        48,
        1.2,
    )
    table = stacked.format_members(part)
    assert (
        "| 48 | stacked | 48.00 | 4.80 | 28.80 | 14.40 | 1.000 | 12.00 | 450 | 0.20 / 1.10 |"
        in (table)
    )
    assert "K=192 / K=48: 1.10 (target <= 1.2) (met)" in table
    # Without both sizes there is no ratio, and the table says what it needs.
    short = stacked.summarise_members(rows[:2], "cpu", 50)
    assert short["ratio"]["value"] is None
    assert "(needs K=192 and K=48)" in stacked.format_members(short)


def test_gpu_ratio_is_against_the_solo_run(stacked) -> None:
    rows = [
        stacked.member_row(group(1, "solo", total=4.0)),
        stacked.member_row(group(1, "stacked", total=6.0)),
        stacked.member_row(group(1000, total=10.0)),
    ]
    part = stacked.summarise_members(rows, "cuda", 50)
    assert part["ratio"]["value"] == 2.5
    assert part["fit_ratio"]["value"] == pytest.approx(2.5)  # fits: 0.6 * 10 / (0.6 * 4)
    assert "fit_ratio" not in stacked.summarise_members(rows, "cpu", 50)


def test_report_json_shape_and_plot(stacked) -> None:
    runs = [sweep_run("basic", 50.0), sweep_run("stacked", 10.0, difference=0.0)]
    members = [stacked.member_row(group(1, "solo")), stacked.member_row(group(4))]
    results = {
        "machine": {"cpu_count": 2},
        "warnings": ["warning: busy"],
        "load_average_start": [0.1, 0.1, 0.1],
        "load_average_end": [0.2, 0.1, 0.1],
        "sweeps": {
            "repeats": 1,
            "rows": [stacked.summarise_sweep("paper", runs, 15, 2.0)],
            "warnings": [],
        },
        "members": {**stacked.summarise_members(members, "cpu", 50), "warnings": ["warning: K"]},
        "gpu": {"device": "cuda", "rows": None, "note": "no GPU"},
    }
    assert json.loads(json.dumps(results)) == results  # plain JSON: numbers, strings, lists
    report = stacked.format_report(results)
    assert report.startswith("warning: busy\nwarning: K\n\n| sweep |")
    assert "| paper | 15 | 1 | 50.0 | 10.0 | 5.00x | >= 2x (met) |" in report
    assert report.endswith("GPU: not measured (no GPU).")
    figure = stacked.plot(results)
    left, right = figure.axes
    assert left.get_xscale() == "log" and len(left.get_lines()) == 2
    assert len(right.patches) == 2
    stacked.plot({"gpu": results["gpu"]})  # nothing measured: an empty figure, no error


def test_rejects_bad_arguments(stacked, capsys) -> None:
    for bad in (["--members", "0,4"], ["--epochs", "0"], ["--repeats", "0"], ["--settle", "-1"]):
        with pytest.raises(SystemExit) as exit_info:
            stacked.main(bad)
        assert exit_info.value.code == 2
    assert "--members" in capsys.readouterr().err


@pytest.mark.slow
def test_a_tiny_run_writes_json_table_and_plot(stacked, tmp_path: Path) -> None:
    """Groups of 1 and 2 members for one epoch, each in its own process: the solo path, the
    forced stack of one and a stack of two are timed, and the files are written."""
    out = tmp_path / "bench"
    stacked.main(
        [
            "--members",
            "1,2",
            "--gpu-members",
            "1,2",
            "--epochs",
            "1",
            "--skip-sweeps",
            "--skip-fixed-cost",
            "--skip-scale",
            "--settle",
            "0",
            "--out",
            str(out),
        ]
    )
    results = json.loads((out / "stacked.json").read_text())
    rows = results["members"]["rows"]
    assert [(r["k"], r["path"], r["forced"]) for r in rows] == [
        (1, "solo", False),
        (1, "stacked", True),
        (2, "stacked", False),
    ]
    for r in rows:
        assert r["total_s"] > 0 and r["fit_s"] > 0 and r["peak_rss_mb"] > 0
        assert r["setup_s"] + r["fit_s"] + r["finish_s"] == pytest.approx(r["total_s"])
    assert results["sweeps"] is None and results["gpu"]["device"] == "cuda"
    assert "| 2 | stacked |" in (out / "table.md").read_text()
    assert (out / "stacked.png").stat().st_size > 0


def test_a_members_fixed_cost_is_the_intercept_over_the_slope(stacked) -> None:
    """W(K, E) = a + b E + K (c + m E), with a = 10 s (start-up), b = 0.5 s per epoch (shared),
    c = 20 ms per member and m = 5 ms per member-epoch: c and m come back, and c / m = 4."""

    def wall(k: int, epochs: int) -> float:
        return 10 + 0.5 * epochs + k * (0.020 + 0.005 * epochs)

    walls = {(k, e): wall(k, e) for k in (48, 192) for e in (2, 22)}
    result = stacked.fixed_cost(walls)
    assert result["s_per_member_epoch"] == pytest.approx(0.005)
    assert result["fixed_s_per_member"] == pytest.approx(0.020)
    assert result["fixed_member_epochs"] == pytest.approx(4.0)


def test_the_fixed_cost_table_names_every_command_and_the_ratio(stacked) -> None:
    runs = [{"k": k, "epochs": e, "wall_s": 10.0 + k * e / 100, "peak_rss_mb": 500.0,
             "load_before": [0.5, 0.4, 0.3], "load_after": [0.6, 0.4, 0.3]}
            for k in (48, 192) for e in (2, 22)]  # fmt: skip
    part = {"runs": runs, "target_member_epochs": 3.0, "s_per_member_epoch": 0.0053,
            "fixed_s_per_member": 0.0159, "fixed_member_epochs": 3.0}  # fmt: skip
    table = stacked.format_fixed_cost(part)
    assert table.count("\n| 192 |") == 2 and "| 48 | 22 |" in table
    assert "5.30 ms per member-epoch" in table and "15.9 ms per member = 3.0 member-epochs" in table


def test_the_scale_table_shows_wall_over_fit(stacked) -> None:
    row = {"name": "study", "jobs": 360, "wall_s": 130.0, "fit_s": 100.0, "wall_over_fit": 1.3,
           "peak_rss_mb": 1500.0, "load_before": [0.5, 0.4, 0.3],
           "load_after": [0.9, 0.5, 0.3]}  # fmt: skip
    table = stacked.format_scale({"rows": [row], "study_target": 1.3})
    assert "| study | 360 | 130.0 | 100.0 | 1.30x |" in table
    assert "target wall / fit <= 1.3" in table
