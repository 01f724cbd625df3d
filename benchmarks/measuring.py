"""What benchmarks/performance.py and benchmarks/stacked.py both need: peak resident memory
(of an `oodmix-train` subprocess, or of this process), the load average, the machine's facts,
markdown tables, and the result files (<name>.json and table.md).

Only the standard library is imported here; torch and oodmix on first use, so that a
benchmark's --help and its pure helpers stay light.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

# Runs `python -m oodmix ...` (what `oodmix-train ...` runs) and, at exit, writes the process's
# own peak resident memory (VmHWM of its address space) to $OODMIX_PEAK_RSS_FILE. A child's
# rusage is no good here: Linux carries the parent's peak across fork and exec, so every child
# would report at least the benchmark's own peak. {program}: the child's sys.argv[0].
# With $OODMIX_FIT_TIME_FILE set, it also writes the seconds spent in Lightning's Trainer.fit
# (every fit of the process, summed) there.
PEAK_MEMORY_WRAPPER = """
import atexit, os, runpy, sys, time
fit_seconds = [0.0]
def report():
    with open("/proc/self/status") as status:
        kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    with open(os.environ["OODMIX_PEAK_RSS_FILE"], "w") as out:
        out.write(str(kb))
    if os.environ.get("OODMIX_FIT_TIME_FILE"):
        with open(os.environ["OODMIX_FIT_TIME_FILE"], "w") as out:
            out.write(str(fit_seconds[0]))
atexit.register(report)
if os.environ.get("OODMIX_FIT_TIME_FILE"):
    from lightning.pytorch import Trainer
    fit = Trainer.fit
    def timed_fit(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fit(*args, **kwargs)
        finally:
            fit_seconds[0] += time.perf_counter() - start
    Trainer.fit = timed_fit
sys.argv[0] = {program!r}
runpy.run_module("oodmix", run_name="__main__", alter_sys=True)
"""


def run_oodmix(
    args: Sequence[str],
    cwd: str | Path,
    program: str,
    keep_stdout: bool = False,
    fit_time_file: Path | None = None,
) -> tuple[subprocess.CompletedProcess[str], float, float | None]:
    """Run `python -m oodmix *args` in `cwd` (warnings off, sys.argv[0] = `program`): the
    finished process (stderr kept, stdout too with `keep_stdout`), its wall time in seconds and
    its own peak resident memory in MB (None without /proc, or when it ended before writing
    it). With `fit_time_file`, the process writes its seconds in Trainer.fit there. A failure
    is the caller's to report: the return code is not checked here."""
    peak_file = Path(cwd) / "peak_rss_kb"
    peak_file.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OODMIX_PEAK_RSS_FILE": str(peak_file)}
    if fit_time_file is not None:
        env["OODMIX_FIT_TIME_FILE"] = str(fit_time_file)
    start = time.perf_counter()
    process = subprocess.run(
        [sys.executable, "-c", PEAK_MEMORY_WRAPPER.format(program=program), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE if keep_stdout else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wall = time.perf_counter() - start
    peak = int(peak_file.read_text()) / 1024 if peak_file.exists() else None
    return process, wall, peak


def peak_rss_mb() -> float | None:
    """This process's peak resident memory in MB (None without /proc)."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        return None


def load_average(digits: int | None = None) -> list[float]:
    """The 1-, 5- and 15-minute load averages, rounded to `digits` decimals if given."""
    load = os.getloadavg()
    return list(load) if digits is None else [round(x, digits) for x in load]


def machine() -> dict[str, Any]:
    """CPU count, torch's threads and version, Python's version and the GPU's name (or None)."""
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def synchronize(device: str) -> None:
    """Wait for the GPU's queued work when `device` is cuda (a timer around GPU work needs it)."""
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def progress(line: str) -> None:
    """A progress line on stderr, at once (stdout carries the tables)."""
    print(line, file=sys.stderr, flush=True)


def markdown_table(
    header: Sequence[str], align: str, rows: Iterable[Sequence[object]]
) -> list[str]:
    """The lines of a markdown table: the header, its rule (`align`, a letter per column: "l"
    left, "r" right), and a line per row of already formatted cells."""
    if len(align) != len(header) or set(align) - {"l", "r"}:
        raise ValueError(f"align {align!r}: one of l or r for each of {len(header)} columns")

    def line(cells: Sequence[object]) -> str:
        if len(cells) != len(header):
            raise ValueError(f"{len(cells)} cells in a table of {len(header)} columns")
        return "| " + " | ".join(str(cell) for cell in cells) + " |"

    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
    return [line(header), rule, *(line(row) for row in rows)]


def write_results(out: Path, json_name: str, results: dict[str, Any], table: str) -> None:
    """out/<json_name> (the results as JSON) and out/table.md (the tables), each written whole
    or not at all; `out` is made if missing."""
    from oodmix.files import write_json_atomic, write_text_atomic

    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / json_name, results)
    write_text_atomic(out / "table.md", table + "\n")
