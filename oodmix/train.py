"""Hydra entry point: `oodmix-train [overrides]` (also `python -m oodmix`).

compose conf/train.yaml -> check values -> (one run, or each job of a multirun)
oodmix.runs.job.run_job_task: build, fit, validate and test the tested weights, write
<run dir>/metrics.json and print a table. This file is only the entry: the command line's
checks, Hydra's main, and one line with exit code 2 for every configuration error.
"""

from __future__ import annotations

import os
import sys

import hydra
from omegaconf import DictConfig

from oodmix.config.errors import debugging, describe
from oodmix.config.overrides import check_command_line
from oodmix.config.paths import config_dir

# The run library (oodmix.runs: Lightning, torch and the model) is imported inside the
# functions that use it: importing it takes seconds, and a mistyped command line should be
# answered at once.


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def _run_job(cfg: DictConfig) -> float | None:
    """Hydra's task function: oodmix.runs.job.run_job_task (also what a launcher that trains
    jobs together calls for a job trained alone)."""
    from oodmix.runs.job import run_job_task

    return run_job_task(cfg)


def _hydra_main() -> None:
    """Hydra's entry (a run or a multirun); exit code 1 after a multirun where jobs failed,
    with one line that points to the sweep's report."""
    from oodmix.reporting.hydra_callback import take_sweep_outcome

    _run_job()
    outcome = take_sweep_outcome()  # recorded by the WriteSweepReport callback
    if outcome is not None and outcome.failed:
        print(f"oodmix-train: {outcome.summary()}", file=sys.stderr)
        sys.exit(1)


def main() -> None:
    """Console entry: check the command line, then hand over to Hydra.

    Every configuration error (oodmix's checks, Hydra's composition, OmegaConf's resolution)
    ends in one line on stderr and exit code 2, before anything is written; OODMIX_DEBUG=1
    shows the traceback instead.
    """
    argv = sys.argv[1:]
    if os.environ.get("HYDRA_FULL_ERROR", "") not in ("", "0"):
        os.environ["OODMIX_DEBUG"] = "1"  # Hydra's own switch asks for the same
    debug = debugging()
    if not debug:
        # Hydra prints its own errors over several lines and exits 1; with this set it raises
        # them, and they are answered here in one line.
        os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        check_command_line(argv)
        _hydra_main()
    except Exception as error:
        from oodmix.config.paths import shown_path
        from oodmix.files import no_space_left

        full = None if debug else no_space_left(error)
        if full is not None:  # outside a run (Hydra's records, the sweep's report)
            written = shown_path(full.filename) if full.filename else "a file"
            print(
                f"oodmix-train: error: no space left on the device writing {written}; free "
                "space there and run the command again",
                file=sys.stderr,
            )
            sys.exit(1)
        message = None if debug else describe(error, argv)
        if message is None:
            raise
        print(f"oodmix-train: error: {message}", file=sys.stderr)
        sys.exit(2)
    finally:
        if not debug:
            os.environ.pop("HYDRA_FULL_ERROR", None)


if __name__ == "__main__":
    main()
