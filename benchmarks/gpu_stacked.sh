#!/usr/bin/env bash
# Stacked sweeps on a GPU: for a machine with one (run from the repository root).
#
#     bash benchmarks/gpu_stacked.sh [GROUP SIZES] [EPOCHS]     # default 1,10,100,1000 and 50
#
# The variables GPU_MEMBERS and GPU_EPOCHS set the defaults (for a caller that passes no
# arguments, such as a GPU check that runs every benchmarks/gpu_*.sh).
# 1. The same 4-job sweep on the GPU under hydra/launcher=basic, under the stacked launcher
#    (one group of 4) and under basic again: whole-command wall time of each, and, job by
#    job, the largest difference of every metrics.json value between the stacked and the
#    first basic sweep, and between the two basic sweeps (whether the GPU repeats a run).
# 2. Part 3 of benchmarks/stacked.py alone: one group of each size on the GPU, time per member,
#    peak GPU memory, and a 1,000-member group's time over a solo run's (target <= 3).
# Writes stacked.json, stacked.png and table.md under $OUT/stacked_gpu when OUT is set (a
# lent GPU machine's output folder), else under outputs/benchmarks/stacked_gpu; the sweep
# comparison is printed. PYTHON picks the interpreter (default python3).
set -euo pipefail
members=${1:-${GPU_MEMBERS:-1,10,100,1000}}
epochs=${2:-${GPU_EPOCHS:-50}}
python=${PYTHON:-python3}
out=${OUT:-outputs/benchmarks}/stacked_gpu
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PYTHONWARNINGS=ignore

"$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no GPU: torch.cuda.is_available() is False")'

for sweep in basic stacked basic-again; do
  start=$(date +%s%N)
  "$python" -m oodmix -m trainer=gpu seed=0,1 beta=0.3,1 plots=false \
    "hydra/launcher=${sweep%-again}" "hydra.sweep.dir=$work/sweep-$sweep" >"$work/$sweep.log" 2>&1 \
    || { tail -n 20 "$work/$sweep.log"; exit 1; }
  elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
  printf 'GPU sweep of 4 jobs, %-11s: %d.%03d s\n' "$sweep" $((elapsed_ms / 1000)) $((elapsed_ms % 1000))
done
"$python" - "$work" <<'PY'
import json
import sys
from pathlib import Path

work = Path(sys.argv[1])


def differences(a: Path, b: Path) -> dict[str, float]:
    """Per metrics.json key, the largest |a - b| over the sweeps' jobs (numbers only)."""
    worst: dict[str, float] = {}
    for job in sorted(p.name for p in a.iterdir() if p.name.isdigit()):
        x, y = (json.loads((s / job / "metrics.json").read_text()) for s in (a, b))
        for key, value in x.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                worst[key] = max(worst.get(key, 0.0), abs(value - y[key]))
    return worst


for name, other in (("stacked", "sweep-stacked"), ("basic again", "sweep-basic-again")):
    worst = differences(work / "sweep-basic", work / other)
    differing = {k: f"{v:.2e}" for k, v in sorted(worst.items()) if v > 0}
    print(f"metrics.json, {name} against basic, on the GPU: {len(worst)} values compared, "
          f"largest difference {max(worst.values()):.2e}; the values that differ: {differing}")
PY

"$python" benchmarks/stacked.py --skip-sweeps --skip-cpu-members --gpu-members "$members" \
  --epochs "$epochs" --settle 0 --out "$out"
