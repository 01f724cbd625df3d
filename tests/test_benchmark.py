"""benchmarks/performance.py on tiny sizes: the two loops do identical work, files are written."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def performance():
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("performance", BENCHMARKS / "performance.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    sys.path.remove(str(BENCHMARKS))


@pytest.mark.parametrize("objective", ["ce", "ce_kl", "ce_kl_mixup"])
def test_oodmix_and_the_plain_loop_end_with_the_same_weights(performance, tmp_path, objective):
    """Same data, initial weights, draws and steps (45: two epochs and a part): same weights.

    This is what makes the timing comparison fair, and it shows that oodmix's chunked steps
    compute exactly what a plain loop computes.
    """
    row = performance.compare(objective, 1000, 45, 1, "cpu", str(tmp_path))
    assert row["max_weight_difference"] == 0.0
    assert row["steps"] == 45 and row["oodmix_s"] > 0 and row["reference_s"] > 0


def test_benchmark_writes_json_table_and_plot(performance, tmp_path):
    out = tmp_path / "bench"
    performance.main(
        ["--sizes", "400", "--steps", "8", "--repeats", "1", "--no-process", "--out", str(out)]
    )
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
