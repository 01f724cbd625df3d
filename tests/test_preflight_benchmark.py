"""benchmarks/preflight.py: it times the check before writing of the sweeps it names."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "preflight.py"


def test_the_benchmark_counts_the_jobs_it_builds(capsys) -> None:
    spec = importlib.util.spec_from_file_location("preflight_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.main(["--repeats", "1", "--sweeps", "paper"])
    # The paper experiment sweeps three objectives and five seeds: three jobs are built.
    assert [(name, built) for name, built, _ in rows] == [("single run", 1), ("paper", 3)]
    assert all(seconds > 0 for _, _, seconds in rows)
    assert "| paper | 3 |" in capsys.readouterr().out
