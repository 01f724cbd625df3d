"""What the check before writing costs (oodmix.config.preflight): a single run's check, and a
sweep's, before its first job, for the sweeps of benchmarks/stacked.py.

    python benchmarks/preflight.py [--repeats 5]

A single run: `check_job` of the default config (it builds the job's data module, objective,
network, module, callbacks, logger and trainer). A sweep: `check_sweep` of the multirun's config
as Hydra hands it to the check (composed with the fixed overrides, every override in
hydra.overrides.task), timed after one warm-up call so that imports are not counted. Prints the
median of the repeats, the number of distinct jobs built, and the load average.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time
from collections.abc import Callable, Sequence

#: name -> the multirun's overrides (benchmarks/stacked.py's sweeps, the README's study).
SWEEPS: dict[str, tuple[str, ...]] = {
    "grid": ("loss=ce_kl_mixup", "beta=0.1,0.3,1,3", "mixup.alpha=0.2,0.5,1,2", "seed=0,1,2"),
    "paper": ("experiment=paper",),
    "study": (
        "loss=ce_kl_mixup",
        "beta=0.03,0.1,0.3,1,3,10",
        "mixup.alpha=0.1,0.2,0.5,1,2,5",
        "seed=" + ",".join(map(str, range(10))),
    ),
    "1000 seeds": ("seed=" + ",".join(map(str, range(1000))),),
}


def multirun_config(overrides: Sequence[str]):
    """The multirun's config as Hydra hands it to on_multirun_start (Hydra initialised)."""
    from hydra import compose
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import open_dict

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    cfg = compose("train", overrides=fixed, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.overrides.task = list(overrides)
    return cfg


def median_seconds(call: Callable[[], None], repeats: int) -> float:
    call()  # warm-up: imports, caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: Sequence[str] | None = None) -> list[tuple[str, int, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sweeps", default=",".join(SWEEPS), help="names, comma-separated")
    args = parser.parse_args(argv)

    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from oodmix.config.paths import config_dir
    from oodmix.config.preflight import check_job, check_sweep, sweep_jobs

    rows = []
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        single = compose("train", return_hydra_config=True)
        with open_dict(single):
            single.hydra.runtime.output_dir = "/nonexistent/run"  # never written
        rows.append(("single run", 1, median_seconds(lambda: check_job(single), args.repeats)))
        for name in args.sweeps.split(","):
            cfg = multirun_config(SWEEPS[name])
            jobs = sweep_jobs(cfg)
            built = len(jobs.composed) * len(jobs.values)
            seconds = median_seconds(functools.partial(check_sweep, cfg), args.repeats)
            rows.append((name, built, seconds))
    print(f"load average: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| check | jobs built | seconds (median) |\n|---|---:|---:|")
    for name, built, seconds in rows:
        print(f"| {name} | {built} | {seconds:.2f} |")
    return rows


if __name__ == "__main__":
    main()
