"""benchmarks/performance.py on tiny sizes: the two loops do identical work, files are written."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

# Every part of the benchmark at its smallest: 8 training steps on 400 points, one repeat, and
# validation fits of 2 epochs, twice (its defaults, 50 epochs 21 times, take two minutes).
TINY = ["--sizes", "400", "--steps", "8", "--repeats", "1", "--no-process",
        "--validation-epochs", "2", "--validation-repeats", "2"]  # fmt: skip


@pytest.fixture(scope="module")
def performance():
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("performance", BENCHMARKS / "performance.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    sys.path.remove(str(BENCHMARKS))


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["ce", "ce_kl", "ce_kl_mixup"])
def test_oodmix_and_the_plain_loop_end_with_the_same_weights(performance, tmp_path, objective):
    """Same data, initial weights, draws and steps (45: two epochs and a part): same weights.

    This is what makes the timing comparison fair, and it shows that oodmix's chunked steps
    compute exactly what a plain loop computes.
    """
    row = performance.compare(objective, 1000, 45, 1, "cpu", str(tmp_path))
    assert row["max_weight_difference"] == 0.0
    assert row["steps"] == 45 and row["oodmix_s"] > 0 and row["reference_s"] > 0


@pytest.fixture(scope="module")
def tiny_benchmark(performance, tmp_path_factory) -> Path:
    """The output folder of one whole TINY benchmark run, shared by the tests of its files."""
    out = tmp_path_factory.mktemp("performance") / "bench"
    performance.main([*TINY, "--out", str(out)])
    return out


@pytest.mark.slow
def test_benchmark_writes_json_table_and_plot(tiny_benchmark):
    out = tiny_benchmark
    results = json.loads((out / "performance.json").read_text())
    assert [r["objective"] for r in results["training"]] == ["ce", "ce_kl", "ce_kl_mixup"]
    assert all(r["ratio"] == r["oodmix_s"] / r["reference_s"] for r in results["training"])
    assert results["epochs"][0]["same_tensors_every_epoch"] is True
    assert (out / "performance.png").stat().st_size > 0
    assert "| cpu | 400 | ce_kl_mixup |" in (out / "table.md").read_text()


def test_benchmark_rejects_bad_arguments(performance, capsys):
    with pytest.raises(SystemExit) as exit_info:
        performance.main(["--steps", "0"])
    assert exit_info.value.code == 2
    assert "--steps" in capsys.readouterr().err


@pytest.mark.slow
def test_validation_case_alone_keeps_the_other_parts(performance, tiny_benchmark, tmp_path, capsys):
    """`--only validation` measures fits with and without per-epoch validation, prints the cost
    in ms with the load average, and replaces only that part of an existing performance.json."""
    out = tmp_path / "bench"
    shutil.copytree(tiny_benchmark, out)
    before = json.loads((out / "performance.json").read_text())
    capsys.readouterr()
    only = ["--only", "validation", "--validation-epochs", "2", "--validation-repeats", "2"]
    performance.main([*only, "--out", str(out)])
    results = json.loads((out / "performance.json").read_text())
    assert results["training"] == before["training"] and results["epochs"] == before["epochs"]
    (row,) = results["validation"]
    assert row["epochs"] == 2 and row["repeats"] == 2 and row["n_points"] == 4000
    assert len(row["training_all_ms"]) == len(row["validation_all_ms"]) == 2
    differences = [v - t for v, t in zip(row["validation_all_ms"], row["training_all_ms"])]
    assert row["validation_cost_ms"] == pytest.approx(sum(differences) / 2)  # median of two
    assert len(row["load_average_before"]) == 3 and row["target_ms"] == 2.0
    printed = capsys.readouterr().out
    assert f"cpu: per-epoch validation costs {row['validation_cost_ms']:.2f} ms an epoch" in printed
    whole = [
        v - t for v, t in zip(row["whole_fit_validation_all_ms"], row["whole_fit_training_all_ms"])
    ]
    assert row["whole_fit_validation_cost_ms"] == pytest.approx(sum(whole) / 2)
    # The floor: the same fits with a constant val/f1 instead of the detection metrics.
    floors = [f - t for f, t in zip(row["floor_all_ms"], row["training_all_ms"])]
    assert len(floors) == 2 and row["floor_cost_ms"] == pytest.approx(sum(floors) / 2)
    assert f"(val/f1 a constant): {row['floor_cost_ms']:.2f} ms" in printed
    table = (out / "table.md").read_text()
    assert "| cpu | 400 | ce_kl_mixup |" in table  # the kept comparison
    assert f"| cpu | 4,000 | ce_kl_mixup | {row['training_ms_per_epoch']:.2f} |" in table
