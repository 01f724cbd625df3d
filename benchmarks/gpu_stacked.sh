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
import sys
from pathlib import Path

sys.path.insert(0, "benchmarks")
from stacked import compare_sweeps

work = Path(sys.argv[1])
for name, other in (("stacked", "sweep-stacked"), ("basic again", "sweep-basic-again")):
    result = compare_sweeps(work / "sweep-basic", work / other)
    differing = {key: f"{gap:.2e}" for key, gap in result["differing"].items()}
    print(f"metrics.json, {name} against basic, on the GPU: {result['jobs_compared']} jobs "
          f"compared, largest difference {result['max_difference']:.2e}; the values that "
          f"differ: {differing}")
    if result["jobs_without_metrics"]:
        sys.exit(f"jobs without metrics.json: {result['jobs_without_metrics']}")
PY

"$python" benchmarks/stacked.py --skip-sweeps --skip-cpu-members --gpu-members "$members" \
  --epochs "$epochs" --settle 0 --out "$out"
