"""Stacked sweeps (`hydra/launcher=stacked`) against one job after another (`hydra/launcher=basic`).

    .venv/bin/python benchmarks/stacked.py                    # about 17 minutes on 2 CPU cores
    .venv/bin/python benchmarks/stacked.py --skip-sweeps      # part 2 only: about 3 minutes
    .venv/bin/python benchmarks/stacked.py --skip-sweeps --members 1,4 --epochs 5   # seconds

Measures, and prints as tables:
  1. Whole-command wall time of two sweeps under each launcher, every command a subprocess
     (`oodmix-train ...`, as a user types it), the launchers alternated (basic, stacked, basic,
     stacked, ... `--repeats` times each); medians and the ratio basic / stacked (targets: grid
     >= 6x, paper >= 3x), each command's peak resident memory (its own VmHWM), and the largest
     difference between the two launchers' metrics.json values over every job (they should
     agree within 1e-6):
       grid:  oodmix-train -m loss=ce_kl_mixup beta=0.1,0.3,1,3 mixup.alpha=0.2,0.5,1,2
              seed=0,1,2 plots=false hydra/launcher=<L>        (48 jobs, one group of 48)
       paper: oodmix-train experiment=paper hydra/launcher=<L>  (15 jobs, 3 groups of 5)
  2. Time per member of one group of K = 1, 4, 16, 48, 192 jobs (`--members`), trained in a
     process of its own (so that its peak resident memory is the group's alone) through
     oodmix.stacking.group_run.train_group, the call the launcher makes: K configs (one
     composed with Hydra's compose API and copied per seed: seeds 0..K-1, the default data and
     model, loss=ce_kl_mixup, `--epochs` epochs, plots=false, logger=none), each with its own
     folder. The call is split
     into setup (resolving configs, building each member's data, objective and network), the
     group's fit (Trainer.fit), and what follows it (each member's checkpoints, the group's
     one validation and test, each member's metrics.json); seconds per member, ms per
     member-epoch of the fit,
     and the ratio of time per member at K=192 to K=48 (target <= 1.2). train_group runs a
     group of one as a solo run; K=1 is also timed forced through StackedGroup. Each process
     first trains a small group for one epoch (not timed), so that first-call costs (lazy
     imports, allocator warm-up) belong to no K.
  3. With a GPU (torch.cuda.is_available()): the same with trainer=gpu for K = 1, 10, 100,
     1000 (`--gpu-members`), each group's peak GPU memory (torch.cuda.max_memory_allocated),
     and the ratio of a 1,000-member group's time to a solo run's (target <= 3), whole and
     for the fits alone. Without one, the output and the JSON say so.
     benchmarks/gpu_stacked.sh runs this part alone on a GPU machine.
  4. A member's fixed cost (composition, folder and records, setup, evaluation, files):
     `oodmix-train -m seed=0,...,K-1 trainer.max_epochs=E plots=false` (one group of K) for
     K = 48, 192 and E = 2, 22, whole commands; the slope per member-epoch and the intercept
     per member (`fixed_cost`), and their ratio in member-epochs (target <= 3).
  5. Large groups, whole commands with their seconds in Trainer.fit: the README's 360-member
     study command (target: wall <= 1.3x its fit) and a 1,000-member group of 5 epochs (it
     completes; its peak memory).
The 1-minute load average at the start and end of each measurement goes into the JSON and the
tables; a warning is printed when it exceeds 1.5 at a start (a shared machine: numbers taken
under load are not the quiet figure; on 2 cores, torch's two threads wait for each other when
another process takes a core, and a fit can then take ten times as long). Before each
measurement the benchmark waits up to a minute (`--settle`) for the load its own previous one
left to fall.

`--skip-sweeps`, `--skip-members` (parts 2 and 3), `--skip-cpu-members` (part 2),
`--skip-fixed-cost` (part 4) and `--skip-scale` (part 5) leave
parts out; the parts already in <out>/stacked.json are then kept, so a part can be rerun alone.

Writes <out>/stacked.json, <out>/stacked.png and <out>/table.md (default
outputs/benchmarks/stacked).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measuring import (
    load_average,
    machine,
    markdown_table,
    peak_rss_mb,
    progress,
    run_oodmix,
    synchronize,
    write_results,
)

DEFAULT_OUT = Path("outputs/benchmarks/stacked")
DEFAULT_MEMBERS = (1, 4, 16, 48, 192)
DEFAULT_GPU_MEMBERS = (1, 10, 100, 1000)
#: A 1-minute load average above this at the start of a measurement earns a warning.
LOAD_WARNING = 1.5
#: Before each measurement, how long to wait at most for the load to fall to LOAD_WARNING.
SETTLE_S = 60.0
#: The largest |difference| between the launchers' metrics.json values that counts as equal.
METRIC_TOLERANCE = 1e-6

#: The two sweeps of part 1: name -> (oodmix-train arguments without launcher and folder,
#: number of jobs, target of basic / stacked).
SWEEPS: dict[str, tuple[tuple[str, ...], int, float]] = {
    "grid": (
        (
            "-m",
            "loss=ce_kl_mixup",
            "beta=0.1,0.3,1,3",
            "mixup.alpha=0.2,0.5,1,2",
            "seed=0,1,2",
            "plots=false",
        ),
        48,
        6.0,
    ),
    "paper": (("experiment=paper",), 15, 3.0),
}
#: Time per member at the larger K over the smaller (CPU), and its target.
MEMBER_RATIO = (192, 48, 1.2)
#: A 1,000-member group's time over a solo run's on the GPU, and its target.
GPU_RATIO = (1000, 1, 3.0)


# --------------------------------------------------------------------------- pure helpers


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def parse_members(text: str) -> list[int]:
    """'1,4,16' -> [1, 4, 16] (sorted, without repeats); every K must be >= 1."""
    values = sorted({int(part) for part in text.split(",") if part.strip()})
    if not values or values[0] < 1:
        raise ValueError(f"{text!r}: give group sizes >= 1, separated by commas")
    return values


def load_sample() -> list[float]:
    """The 1-, 5- and 15-minute load averages, to 2 decimals."""
    return load_average(digits=2)


def settle(max_wait_s: float, poll_s: float = 2.0) -> float:
    """Wait (at most max_wait_s) for the 1-minute load to fall to LOAD_WARNING; the seconds
    waited. The benchmark's own previous command keeps the 1-minute average near 1.5 for a
    while after it ends (it decays by e each minute); without the wait a measurement would
    start under a load that is only the benchmark's own echo, and the warning would mean
    nothing. Load from other work does not fall: the measurement then starts, with its warning.
    """
    start = time.monotonic()
    while os.getloadavg()[0] > LOAD_WARNING and time.monotonic() - start < max_wait_s:
        time.sleep(poll_s)
    return time.monotonic() - start


def load_warning(what: str, load: Sequence[float]) -> str | None:
    """A warning line when the 1-minute load at the start of `what` exceeds LOAD_WARNING."""
    if load[0] <= LOAD_WARNING:
        return None
    return (
        f"warning: 1-minute load {load[0]:.2f} > {LOAD_WARNING} at the start of {what}: the "
        "machine is busy, these times are not the quiet figure"
    )


def metric_gaps(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    """|a[key] - b[key]| for every key of two metrics.json.

    A key in one only, a non-numeric value that differs (the loss's name) or a NaN on one side
    only counts as an infinite difference; NaN on both sides as none.
    """

    def gap(x: Any, y: Any) -> float:
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y))
        if not numbers:
            return 0.0 if x == y else math.inf
        if math.isnan(x) or math.isnan(y):
            return 0.0 if math.isnan(x) and math.isnan(y) else math.inf
        return abs(x - y)

    return {key: gap(a.get(key), b.get(key)) for key in sorted(set(a) | set(b))}


def metric_difference(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, str | None]:
    """The largest of `metric_gaps(a, b)` and its key (0.0 and None: all equal)."""
    gaps = metric_gaps(a, b)
    key = max(gaps, key=gaps.__getitem__, default=None)
    if key is None or gaps[key] == 0:
        return 0.0, None
    return gaps[key], key


def compare_sweeps(basic: Path, stacked: Path) -> dict[str, Any]:
    """Job by job, the metrics.json of two sweep folders: the largest difference, where it is,
    the largest difference of each key that differs in some job (`differing`), and the jobs
    whose folder lacks metrics.json in either (a failed or missing job)."""
    jobs = sorted(
        {p.name for sweep in (basic, stacked) for p in sweep.iterdir() if p.name.isdigit()},
        key=int,
    )
    worst: dict[str, Any] = {"max_difference": 0.0, "job": None, "key": None}
    differing: dict[str, float] = {}
    missing = []
    for job in jobs:
        files = [sweep / job / "metrics.json" for sweep in (basic, stacked)]
        if not all(f.is_file() for f in files):
            missing.append(job)
            continue
        a, b = (json.loads(f.read_text()) for f in files)
        for key, gap in metric_gaps(a, b).items():
            if gap > 0:
                differing[key] = max(differing.get(key, 0.0), gap)
        gap, key = metric_difference(a, b)
        if gap > worst["max_difference"]:
            worst = {"max_difference": gap, "job": job, "key": key}
    return {
        **worst,
        "differing": differing,
        "jobs_compared": len(jobs) - len(missing),
        "jobs_without_metrics": missing,
    }


def summarise_sweep(name: str, runs: list[dict[str, Any]], jobs: int, target: float):
    """Medians per launcher, their ratio against the target, peaks and the worst difference."""
    by = {
        launcher: [r for r in runs if r["launcher"] == launcher]
        for launcher in ("basic", "stacked")
    }
    basic = statistics.median(r["wall_s"] for r in by["basic"])
    stacked = statistics.median(r["wall_s"] for r in by["stacked"])
    differences = [
        r["max_difference"] for r in by["stacked"] if r.get("max_difference") is not None
    ]
    # A job with metrics.json under one launcher only (failed under the other) disagrees too.
    without = sorted({j for r in by["stacked"] for j in r.get("jobs_without_metrics", [])}, key=int)
    groups = {r["groups"] for r in by["stacked"] if r.get("groups") is not None}
    peak = {
        launcher: max((r["peak_rss_mb"] or 0) for r in rows) or None
        for launcher, rows in by.items()
    }
    return {
        "sweep": name,
        "jobs": jobs,
        "groups_stacked": min(groups) if groups else None,
        "basic_s": basic,
        "stacked_s": stacked,
        "ratio": ratio(basic, stacked),
        "target": target,
        "meets_target": (ratio(basic, stacked) or 0) >= target,
        "basic_peak_rss_mb": peak["basic"],
        "stacked_peak_rss_mb": peak["stacked"],
        "max_metric_difference": max(differences) if differences else None,
        "jobs_without_metrics": without,
        "metrics_agree": bool(differences) and max(differences) <= METRIC_TOLERANCE and not without,
        "runs": runs,
    }


def member_row(result: dict[str, Any]) -> dict[str, Any]:
    """A group's timing (from a --one-group process) with what is derived from it."""
    k, epochs = result["k"], result["epochs"]
    return {
        **result,
        "s_per_member": result["total_s"] / k,
        "fit_ms_per_member_epoch": result["fit_s"] / (k * epochs) * 1000,
        "finish_s_per_member": result["finish_s"] / k,
    }


def member_ratio(rows: list[dict[str, Any]], large: int, small: int, key: str = "s_per_member"):
    """rows[K=large][key] / rows[K=small][key], stacked path (train_group's for K > 1)."""
    pick = {r["k"]: r for r in rows if r["path"] == "stacked"}
    if large not in pick or small not in pick:
        return None
    return ratio(pick[large][key], pick[small][key])


def summarise_members(rows: list[dict[str, Any]], device: str, epochs: int) -> dict[str, Any]:
    """Part 2 (CPU) or 3 (GPU): the rows and the ratio its target is about (on the GPU also
    `fit_ratio`, the same for the fits alone)."""
    extra: dict[str, Any] = {}
    if device == "cpu":
        large, small, target = MEMBER_RATIO
        value = member_ratio(rows, large, small)
        what = f"time per member at K={large} / K={small}"
    else:
        large, small, target = GPU_RATIO
        solo = next((r for r in rows if r["k"] == small and r["path"] == "solo"), None)
        group = next((r for r in rows if r["k"] == large and r["path"] == "stacked"), None)
        value = ratio(group and group["total_s"], solo and solo["total_s"])
        what = f"time of a {large:,}-member group / a solo run"
        # The fits alone: what is left once the per-member work on the CPU (building each
        # member's parts, writing each one's folder) is set aside.
        fit = ratio(group and group["fit_s"], solo and solo["fit_s"])
        extra["fit_ratio"] = {
            "what": f"fit of a {large:,}-member group / a solo run's",
            "value": fit,
        }
    return {
        "device": device,
        "epochs": epochs,
        "rows": rows,
        "ratio": {"what": what, "value": value, "target": target, "large": large, "small": small},
        **extra,
    }


def _load(pair: Sequence[Sequence[float]]) -> str:
    return f"{pair[0][0]:.2f} / {pair[1][0]:.2f}"


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_sweeps(sweeps: list[dict[str, Any]], repeats: int) -> str:
    header = ["sweep", "jobs", "groups (stacked)", "basic (s)", "stacked (s)"]
    header += ["basic / stacked", "target", "peak RSS basic / stacked (MB)"]
    header += ["max metric difference"]
    rows = []
    for s in sweeps:
        verdict = "met" if s["meets_target"] else "missed"
        difference = s["max_metric_difference"]
        rows.append(
            [
                s["sweep"],
                s["jobs"],
                s["groups_stacked"] or "-",
                f"{s['basic_s']:.1f}",
                f"{s['stacked_s']:.1f}",
                f"{_num(s['ratio'])}x",
                f">= {s['target']:g}x ({verdict})",
                f"{_mb(s['basic_peak_rss_mb'])} / {_mb(s['stacked_peak_rss_mb'])}",
                "-" if difference is None else format(difference, ".1e"),
            ]
        )
    lines = markdown_table(header, "lrrrrrrrr", rows)
    lines.append("")
    lines.append(
        f"Whole commands (subprocesses), medians of {repeats} alternated runs per launcher; "
        f"metrics.json of every job compared (tolerance {METRIC_TOLERANCE:g}). Each command "
        f"starts once the 1-minute load is <= {LOAD_WARNING:g} (or after --settle seconds)."
    )
    for s in sweeps:
        if s.get("jobs_without_metrics"):
            jobs = ", ".join(s["jobs_without_metrics"])
            lines.append(f"{s['sweep']}: jobs with metrics.json under one launcher only: {jobs}.")
    loads = "; ".join(
        f"{s['sweep']} {r['launcher']} #{r['repeat']} {_load((r['load_before'], r['load_after']))}"
        for s in sweeps
        for r in s["runs"]
    )
    lines.append(f"1-minute load (start / end): {loads}.")
    return "\n".join(lines)


def format_members(part: dict[str, Any]) -> str:
    header = ["K", "path", "total (s)", "setup (s)", "fit (s)", "after fit (s)"]
    header += ["s per member", "fit ms per member-epoch", "peak RSS (MB)", "load (start / end)"]
    on_gpu = part["device"] != "cpu"
    if on_gpu:
        header.insert(-1, "peak GPU memory (MB)")
    rows = [
        [
            f"{r['k']:,}",
            r["path"],
            f"{r['total_s']:.2f}",
            f"{r['setup_s']:.2f}",
            f"{r['fit_s']:.2f}",
            f"{r['finish_s']:.2f}",
            f"{r['s_per_member']:.3f}",
            f"{r['fit_ms_per_member_epoch']:.2f}",
            _mb(r["peak_rss_mb"]),
            *([_mb(r.get("peak_gpu_mb"))] if on_gpu else []),
            _load((r["load_before"], r["load_after"])),
        ]
        for r in part["rows"]
    ]
    lines = markdown_table(header, "rl" + "r" * (len(header) - 2), rows)
    q = part["ratio"]
    if q["value"] is None:
        verdict = f" (needs K={q['large']} and K={q['small']})"
    else:
        verdict = " (met)" if q["value"] <= q["target"] else " (missed)"
    lines += [
        "",
        f"{part['device']}, ce_kl_mixup, {part['epochs']} epochs; one group per process; "
        "solo: train_group's group of one (a solo run), stacked: StackedGroup.",
        f"{q['what']}: {_num(q['value'])} (target <= {q['target']:g}){verdict}",
    ]
    if part.get("fit_ratio"):
        lines.append(f"{part['fit_ratio']['what']}: {_num(part['fit_ratio']['value'])}")
    return "\n".join(lines)


def format_report(results: dict[str, Any]) -> str:
    """Every part present in `results` as markdown tables, each after its load warnings."""
    warnings = [*results.get("warnings", [])]
    for part in ("sweeps", "members", "gpu"):
        warnings += (results.get(part) or {}).get("warnings") or []
    sections = ["\n".join(warnings)] if warnings else []
    if results.get("sweeps"):
        sections.append(format_sweeps(results["sweeps"]["rows"], results["sweeps"]["repeats"]))
    if results.get("members"):
        sections.append(format_members(results["members"]))
    gpu = results.get("gpu")
    if gpu and gpu.get("rows"):
        sections.append(format_members(gpu))
    elif gpu:
        sections.append(f"GPU: not measured ({gpu['note']}).")
    if results.get("fixed_cost"):
        sections.append(format_fixed_cost(results["fixed_cost"]))
    if results.get("scale"):
        sections.append(format_scale(results["scale"]))
    return "\n\n".join(sections)


def plot(results: dict[str, Any]):
    """Time per member against K (log axes) and the sweeps' wall times, as a Figure."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4))
    left, right = figure.subplots(1, 2)
    for part, marker in (("members", "o"), ("gpu", "s")):
        rows = (results.get(part) or {}).get("rows") or []
        if not rows:
            continue
        device = results[part]["device"]
        for path, style in (("stacked", "-"), ("solo", "")):
            points = [r for r in rows if r["path"] == path]
            if points:
                left.loglog(
                    [r["k"] for r in points],
                    [r["s_per_member"] for r in points],
                    marker + style,
                    label=f"{device} {path}",
                )
    left.set_xlabel("members in the group (K)")
    left.set_ylabel("seconds per member (whole train_group call)")
    if left.get_legend_handles_labels()[0]:
        left.legend(fontsize=8)
    sweeps = (results.get("sweeps") or {}).get("rows") or []
    for i, s in enumerate(sweeps):
        right.bar(i - 0.2, s["basic_s"], 0.4, color="tab:grey", label="basic" if i == 0 else None)
        right.bar(
            i + 0.2, s["stacked_s"], 0.4, color="tab:blue", label="stacked" if i == 0 else None
        )
        right.annotate(f"{s['ratio']:.1f}x", (i + 0.2, s["stacked_s"]), ha="center", va="bottom")
    right.set_xticks(range(len(sweeps)))
    right.set_xticklabels([f"{s['sweep']}\n{s['jobs']} jobs" for s in sweeps])
    right.set_ylabel("whole command (s, median)")
    if sweeps:
        right.legend(fontsize=8)
    figure.tight_layout()
    return figure


# --------------------------------------------------------------------------- part 1: sweeps


def run_sweep(args: Sequence[str], workdir: Path, settle_s: float) -> dict[str, Any]:
    """Wall time, peak RSS (MB) and number of groups (stacked) of one `oodmix-train` command."""
    settled = settle(settle_s)
    load_before = load_sample()
    process, wall, peak = run_oodmix(args, workdir, program="oodmix-train", keep_stdout=True)
    if process.returncode != 0:
        raise RuntimeError(f"oodmix-train {' '.join(args)} failed:\n{process.stderr[-4000:]}")
    groups = re.search(r"\d+ jobs in (\d+) groups?", process.stdout + process.stderr)
    return {
        "wall_s": wall,
        "peak_rss_mb": peak,
        "groups": int(groups.group(1)) if groups else None,
        "settle_s": settled,
        "load_before": load_before,
        "load_after": load_sample(),
    }


def measure_sweeps(repeats: int, workdir: Path, settle_s: float) -> dict[str, Any]:
    """Part 1: each sweep under basic and stacked, alternated, compared job by job."""
    rows, warnings = [], []
    for name, (arguments, jobs, target) in SWEEPS.items():
        runs = []
        for repeat in range(repeats):
            for launcher in ("basic", "stacked"):
                sweep = workdir / f"{name}-{launcher}-{repeat}"
                args = [*arguments, f"hydra/launcher={launcher}", f"hydra.sweep.dir={sweep}"]
                run = run_sweep(args, workdir, settle_s)
                line = load_warning(f"{name} {launcher} #{repeat}", run["load_before"])
                if line:
                    progress(line)
                    warnings.append(line)
                run.update(launcher=launcher, repeat=repeat, command=["oodmix-train", *args])
                if launcher == "basic":
                    basic = sweep
                else:  # against this repeat's basic sweep
                    run.update(compare_sweeps(basic, sweep))
                runs.append(run)
                load = _load((run["load_before"], run["load_after"]))
                compared = (
                    f"  max |metric difference| {run['max_difference']:.1e}"
                    if launcher == "stacked"
                    else ""
                )
                progress(
                    f"{name:<5} {launcher:<7} #{repeat}  {run['wall_s']:7.1f} s  peak "
                    f"{_mb(run['peak_rss_mb'])} MB  load {load}{compared}"
                )
        rows.append(summarise_sweep(name, runs, jobs, target))
    return {"repeats": repeats, "rows": rows, "warnings": warnings}


#: Part 4: the group sizes and epoch counts of the whole commands that separate a member's
#: fixed cost from its fit.
FIXED_COST_SIZES = (48, 192)
FIXED_COST_EPOCHS = (2, 22)
#: Target: a member's fixed cost is at most this many member-epochs of fit.
FIXED_COST_TARGET = 3.0


def fixed_cost(walls: dict[tuple[int, int], float]) -> dict[str, float]:
    """A member's fixed cost from four whole commands' wall times W(K, E) (two group sizes K1 <
    K2, two epoch counts E1 < E2), with the model W(K, E) = a + b E + K (c + m E):

        m = ((W(K2,E2) - W(K2,E1)) - (W(K1,E2) - W(K1,E1))) / ((K2 - K1)(E2 - E1))
            seconds per member-epoch of fit (the slope)
        c = (W(K2,E1) - W(K1,E1)) / (K2 - K1) - m E1
            seconds per member that do not grow with epochs (the intercept per member)

    and c / m, the fixed cost in member-epochs."""
    (k1, k2), (e1, e2) = sorted({k for k, _ in walls}), sorted({e for _, e in walls})
    slope = ((walls[k2, e2] - walls[k2, e1]) - (walls[k1, e2] - walls[k1, e1])) / (
        (k2 - k1) * (e2 - e1)
    )
    intercept = (walls[k2, e1] - walls[k1, e1]) / (k2 - k1) - slope * e1
    return {
        "s_per_member_epoch": slope,
        "fixed_s_per_member": intercept,
        "fixed_member_epochs": intercept / slope if slope > 0 else None,
    }


def measure_fixed_cost(workdir: Path, settle_s: float) -> dict[str, Any]:
    """Part 4: `oodmix-train -m seed=0,...,K-1 trainer.max_epochs=E plots=false` (one group
    of K) for each K and E, whole commands; a member's fixed cost (see `fixed_cost`)."""
    runs, walls = [], {}
    for k in FIXED_COST_SIZES:
        for epochs in FIXED_COST_EPOCHS:
            sweep = workdir / f"fixed-{k}-{epochs}"
            seeds = ",".join(str(seed) for seed in range(k))
            args = ["-m", f"seed={seeds}", f"trainer.max_epochs={epochs}", "plots=false",
                    f"hydra.sweep.dir={sweep}"]  # fmt: skip
            run = run_sweep(args, workdir, settle_s)
            run.update(k=k, epochs=epochs)
            runs.append(run)
            walls[k, epochs] = run["wall_s"]
            progress(f"fixed cost: K={k:<4} {epochs:>3} epochs  {run['wall_s']:7.1f} s  "
                     f"load {_load((run['load_before'], run['load_after']))}")  # fmt: skip
    return {"runs": runs, "target_member_epochs": FIXED_COST_TARGET, **fixed_cost(walls)}


def format_fixed_cost(part: dict[str, Any]) -> str:
    rows = [
        [str(r["k"]), str(r["epochs"]), f"{r['wall_s']:.1f}", _mb(r["peak_rss_mb"]),
         _load((r["load_before"], r["load_after"]))]
        for r in part["runs"]
    ]  # fmt: skip
    lines = [
        "## A member's fixed cost (whole commands, one group each)",
        "",
        *markdown_table(["K", "epochs", "wall (s)", "peak RSS (MB)", "load"], "rrrrl", rows),
        "",
        f"Fit: {part['s_per_member_epoch'] * 1e3:.2f} ms per member-epoch. Fixed cost: "
        f"{part['fixed_s_per_member'] * 1e3:.1f} ms per member = "
        f"{_num(part['fixed_member_epochs'], 1)} member-epochs "
        f"(target <= {part['target_member_epochs']:g}).",
    ]
    return "\n".join(lines)


#: Part 5: the README's study command (360 members, one group) and a 1,000-member group.
STUDY = (
    "-m", "loss=ce_kl_mixup", "beta=0.03,0.1,0.3,1,3,10", "mixup.alpha=0.1,0.2,0.5,1,2,5",
    "seed=" + ",".join(map(str, range(10))), "plots=false", "logger=none",
)  # fmt: skip
THOUSAND = ("-m", "seed=" + ",".join(map(str, range(1000))), "trainer.max_epochs=5",
            "plots=false", "logger=none")  # fmt: skip
#: Target: the study command's wall time over its group's fit.
STUDY_TARGET = 1.3


def measure_scale(workdir: Path, settle_s: float) -> dict[str, Any]:
    """Part 5: whole commands, each with the seconds it spent in Trainer.fit: the README's
    360-member study (target: wall <= 1.3x the fit) and a 1,000-member group of 5 epochs (it
    completes; its peak memory)."""
    rows = []
    for name, args in (("study", STUDY), ("1,000 members", THOUSAND)):
        sweep = workdir / f"scale-{len(rows)}"
        fit_file = workdir / "fit_seconds"
        fit_file.unlink(missing_ok=True)
        settled = settle(settle_s)
        load_before = load_sample()
        process, wall, peak = run_oodmix(
            [*args, f"hydra.sweep.dir={sweep}"], workdir, "oodmix-train", fit_time_file=fit_file
        )
        if process.returncode != 0:
            raise RuntimeError(f"{name} failed:\n{process.stderr[-4000:]}")
        fit = float(fit_file.read_text()) if fit_file.is_file() else None
        jobs = sum(1 for _ in sweep.glob("*/metrics.json"))
        row = {
            "name": name,
            "command": ["oodmix-train", *args],
            "jobs": jobs,
            "wall_s": wall,
            "fit_s": fit,
            "wall_over_fit": ratio(wall, fit),
            "peak_rss_mb": peak,
            "settle_s": settled,
            "load_before": load_before,
            "load_after": load_sample(),
        }
        rows.append(row)
        progress(f"{name}: {jobs} jobs, {wall:.1f} s, fit {_num(fit, 1)} s, peak {_mb(peak)} MB")
    return {"rows": rows, "study_target": STUDY_TARGET}


def format_scale(part: dict[str, Any]) -> str:
    rows = [
        [r["name"], str(r["jobs"]), f"{r['wall_s']:.1f}", _num(r["fit_s"], 1),
         f"{_num(r['wall_over_fit'])}x", _mb(r["peak_rss_mb"]),
         _load((r["load_before"], r["load_after"]))]
        for r in part["rows"]
    ]  # fmt: skip
    header = ["command", "jobs", "wall (s)", "fit (s)", "wall / fit", "peak RSS (MB)", "load"]
    lines = [
        "## Large groups (whole commands)",
        "",
        *markdown_table(header, "lrrrrrl", rows),
        "",
        f"study: the README's 360-member command (target wall / fit <= {part['study_target']:g});"
        " 1,000 members: seeds 0-999, 5 epochs, logger=none.",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- part 2: members


def member_configs(k: int, epochs: int, device: str, root: Path, first_seed: int = 0) -> list:
    """K jobs of one group as the launcher hands them to train_group: job i with seed
    first_seed + i, its own folder root/<i>, numbered i, in a multirun. One config is composed
    with Hydra's compose API (as tests/conftest.py does) and copied for each job, with its seed
    and its `seed=` override set: the jobs differ in nothing else, and composing 1,000 configs
    one by one (about 0.1 s each) would cost minutes before a large group starts."""
    import copy

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode
    from omegaconf import open_dict, read_write

    from oodmix.config.paths import config_dir

    overrides = [
        "loss=ce_kl_mixup",
        f"trainer.max_epochs={epochs}",
        f"trainer={'gpu' if device == 'cuda' else 'cpu'}",
        "plots=false",
        "logger=none",
    ]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        composed = compose(
            "train", overrides=[*overrides, f"seed={first_seed}"], return_hydra_config=True
        )
    GlobalHydra.instance().clear()
    configs = []
    for i in range(k):
        cfg = copy.deepcopy(composed)
        with read_write(cfg), open_dict(cfg):
            cfg.seed = first_seed + i
            cfg.hydra.overrides.task = [*overrides, f"seed={first_seed + i}"]
            cfg.hydra.mode = RunMode.MULTIRUN
            cfg.hydra.job.num = i
            cfg.hydra.runtime.output_dir = str(root / str(i))
        configs.append(cfg)
    return configs


class GroupClock:
    """Times the fit of one train_group call (Trainer.fit, both paths), by wrapping it for the
    duration of the `with` block; what precedes it is setup, what follows it the group's
    evaluation and files."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.fits: list[tuple[float, float]] = []

    def _sync(self) -> None:
        synchronize(self.device)

    def __enter__(self) -> GroupClock:
        from lightning.pytorch import Trainer

        self._original = fit = Trainer.fit
        clock = self

        def timed_fit(trainer, *args, **kwargs):
            clock._sync()
            start = time.perf_counter()
            try:
                return fit(trainer, *args, **kwargs)
            finally:
                clock._sync()
                clock.fits.append((start, time.perf_counter()))

        Trainer.fit = timed_fit
        return self

    def __exit__(self, *exc: object) -> None:
        from lightning.pytorch import Trainer

        Trainer.fit = self._original


def run_group(configs: list, path: str) -> list[float | None]:
    """The group as the launcher runs it (`solo` or `stacked`: train_group, which takes a group
    of one as a solo run), or forced through StackedGroup (`forced`)."""
    from oodmix.stacking.group_run import StackedGroup, train_group

    values = StackedGroup(configs).run() if path == "forced" else train_group(configs)
    failed = [i for i, v in enumerate(values) if v is None]
    if failed:
        record = Path(str(configs[failed[0]].hydra.runtime.output_dir)) / "failure.json"
        detail = record.read_text() if record.is_file() else "(no failure.json)"
        raise RuntimeError(f"members {failed} of a group of {len(configs)} failed: {detail}")
    return values


def one_group(k: int, epochs: int, device: str, forced: bool) -> dict[str, Any]:
    """Time one group of K members in this process (what `--one-group K` runs)."""
    import logging

    for name in ("lightning.pytorch", "lightning.fabric"):  # start-up notices, per Trainer
        logging.getLogger(name).setLevel(logging.ERROR)
    path = "forced" if forced else ("solo" if k == 1 else "stacked")
    with tempfile.TemporaryDirectory(prefix="oodmix-stacked-") as tmp:
        root = Path(tmp)
        # Warm-up, not timed: the same path on a group of up to 2 for one epoch.
        run_group(member_configs(min(k, 2), 1, device, root / "warm", 10_000), path)
        configs = member_configs(k, epochs, device, root / "group")
        if device == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats()
        load_before = load_sample()
        with GroupClock(device) as clock:
            start = time.perf_counter()
            run_group(configs, path)
            end = time.perf_counter()
        load_after = load_sample()
    (fit_start, fit_end), *others = clock.fits
    assert not others, "one fit per group"
    return {
        "k": k,
        "epochs": epochs,
        "device": device,
        "path": "stacked" if path == "forced" else path,
        "forced": forced,
        "total_s": end - start,
        "setup_s": fit_start - start,
        "fit_s": fit_end - fit_start,
        "finish_s": end - fit_end,
        "finish_per_member_s": (end - fit_end) / k,
        "peak_rss_mb": peak_rss_mb(),
        "peak_gpu_mb": _peak_gpu_mb(device),
        "load_before": load_before,
        "load_after": load_after,
    }


def _peak_gpu_mb(device: str) -> float | None:
    """The most GPU memory torch held for tensors since the group started (None on the CPU)."""
    if device != "cuda":
        return None
    import torch

    return torch.cuda.max_memory_allocated() / 2**20


def group_process(k: int, epochs: int, device: str, forced: bool, workdir: Path, settle_s: float):
    """`--one-group K` in a child process: its result, peak resident memory its own."""
    result_file = workdir / f"group-{device}-{k}-{int(forced)}.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--one-group", str(k)]
    command += ["--epochs", str(epochs), "--device", device, "--result", str(result_file)]
    settled = settle(settle_s)
    process = subprocess.run(
        [*command, *(["--forced"] if forced else [])],
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
    )
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{process.stderr[-4000:]}")
    return member_row({**json.loads(result_file.read_text()), "settle_s": settled})


def measure_members(
    ks: Sequence[int], epochs: int, device: str, workdir: Path, settle_s: float
) -> dict[str, Any]:
    """Part 2 (device cpu) or 3 (cuda): one process per group size; K=1 both ways."""
    rows, warnings = [], []
    cases = [(k, False) for k in ks]
    if 1 in ks:
        cases.insert(1, (1, True))
    for k, forced in cases:
        row = group_process(k, epochs, device, forced, workdir, settle_s)
        line = load_warning(f"the {device} group of {k}", row["load_before"])
        if line:
            progress(line)
            warnings.append(line)
        rows.append(row)
        progress(
            f"{device} K={k:<5,} {row['path']:<7} total {row['total_s']:7.2f} s  fit "
            f"{row['fit_s']:7.2f} s  after {row['finish_s']:6.2f} s  {row['s_per_member']:.3f} "
            f"s/member  peak {_mb(row['peak_rss_mb'])} MB  "
            f"load {_load((row['load_before'], row['load_after']))}"
        )
    return {**summarise_members(rows, device, epochs), "warnings": warnings}


# --------------------------------------------------------------------------- command


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--repeats", type=int, default=2, help="runs of each sweep per launcher")
    p.add_argument("--members", default=",".join(map(str, DEFAULT_MEMBERS)), help="K, CPU")
    p.add_argument("--gpu-members", default=",".join(map(str, DEFAULT_GPU_MEMBERS)), help="K, GPU")
    p.add_argument("--epochs", type=int, default=50, help="epochs of each group (part 2, 3)")
    p.add_argument("--skip-sweeps", action="store_true", help="leave part 1 out")
    p.add_argument("--skip-members", action="store_true", help="leave parts 2 and 3 out")
    p.add_argument("--skip-cpu-members", action="store_true", help="leave part 2 out")
    p.add_argument("--skip-fixed-cost", action="store_true", help="leave part 4 out")
    p.add_argument("--skip-scale", action="store_true", help="leave part 5 out")
    p.add_argument(
        "--settle",
        type=float,
        default=SETTLE_S,
        help="before each measurement, wait at most this many seconds for the 1-minute load "
        f"to fall to {LOAD_WARNING} (0: no wait)",
    )
    # The child process of part 2/3: one group, its result written to --result.
    p.add_argument("--one-group", type=int, help=argparse.SUPPRESS)
    p.add_argument("--forced", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser()
    args = p.parse_args(argv)
    if args.repeats < 1 or args.epochs < 1 or args.settle < 0:
        p.error("--repeats and --epochs must be >= 1, --settle >= 0")
    try:
        members, gpu_members = parse_members(args.members), parse_members(args.gpu_members)
    except ValueError as error:
        p.error(f"--members / --gpu-members: {error}")

    from oodmix.files import save_figure_atomic

    if args.one_group is not None:  # the child of group_process
        from oodmix.files import write_json_atomic

        result = one_group(args.one_group, args.epochs, args.device, args.forced)
        write_json_atomic(args.result, result)
        return result

    import torch

    # Parts left out keep what an earlier run wrote.
    previous_file = args.out / "stacked.json"
    previous = json.loads(previous_file.read_text()) if previous_file.is_file() else {}
    results: dict[str, Any] = {
        "command": [
            Path(sys.executable).name,
            "benchmarks/stacked.py",
            *(sys.argv[1:] if argv is None else argv),
        ],
        "machine": machine(),
        "sweeps": previous.get("sweeps"),
        "members": previous.get("members"),
        "gpu": previous.get("gpu"),
        "fixed_cost": previous.get("fixed_cost"),
        "scale": previous.get("scale"),
    }
    results["load_average_start"] = start_load = load_sample()
    line = load_warning("the benchmark", start_load)
    results["warnings"] = [line] if line else []
    if line:
        progress(line)
    with tempfile.TemporaryDirectory(prefix="oodmix-stacked-bench-") as tmp:
        workdir = Path(tmp)
        if not args.skip_sweeps:
            results["sweeps"] = measure_sweeps(args.repeats, workdir, args.settle)
        if not args.skip_members:
            if not args.skip_cpu_members:
                results["members"] = measure_members(
                    members, args.epochs, "cpu", workdir, args.settle
                )
            if torch.cuda.is_available():
                results["gpu"] = measure_members(
                    gpu_members, args.epochs, "cuda", workdir, args.settle
                )
            else:
                note = "no GPU: torch.cuda.is_available() is False"
                progress(f"GPU part skipped ({note})")
                results["gpu"] = {"device": "cuda", "rows": None, "note": note}
        if not args.skip_fixed_cost:
            results["fixed_cost"] = measure_fixed_cost(workdir, args.settle)
        if not args.skip_scale:
            results["scale"] = measure_scale(workdir, args.settle)
    results["load_average_end"] = load_sample()
    table = format_report(results)
    write_results(args.out, "stacked.json", results, table)
    save_figure_atomic(plot(results), args.out / "stacked.png")
    print(table)
    print(f"\nwritten to {args.out}/stacked.json, stacked.png, table.md")
    return results


if __name__ == "__main__":
    main()
