"""One run, or one job of a multirun: train, test, write, and what happens when it fails or is
stopped by a signal."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from oodmix.config.errors import ConfigError, debugging
from oodmix.config.paths import shown_path
from oodmix.failures import RunFailure
from oodmix.files import no_space_left
from oodmix.runs.build import build_run
from oodmix.runs.context import failure_file, in_multirun, in_stacked_sweep
from oodmix.runs.evaluation import evaluate, tested_checkpoint
from oodmix.runs.results import report, write_metrics


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and test one run; write and return its metrics (flat: `test/<name>`, seed, loss)."""
    run = build_run(cfg)
    datamodule, module, trainer = run.datamodule, run.module, run.trainer
    output_dir = Path(cfg.output_dir)
    resume_from = cfg.get("ckpt_path")
    if resume_from:
        from oodmix.checkpoints.resume import check_same_settings

        check_same_settings(resume_from, cfg)

    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from oodmix.checkpoints import stop_gracefully_on_signals

    with stop_gracefully_on_signals() as stop:
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
            ckpt_path = tested_checkpoint(trainer, cfg.test_ckpt)
            metrics = evaluate(trainer, module, datamodule, ckpt_path)
        except SIGTERMException:
            exit_interrupted(trainer, stop.name or "SIGTERM", output_dir)
    return write_metrics(cfg, module.loss, metrics, main_process=trainer.is_global_zero)


def exit_interrupted(trainer: Any, signal_name: str, output_dir: Path) -> None:
    """One line saying where the run stopped and the command that resumes it (in a stacked
    sweep: that continues the sweep); exit 128 + the signal's number."""
    from oodmix.checkpoints.interrupts import exit_stopped, exit_sweep_stopped, invoked_command

    saved = output_dir / "checkpoints" / "interrupted.ckpt"
    if not saved.is_file():  # stopped outside training: the last epoch's checkpoint resumes
        saved = output_dir / "checkpoints" / "last.ckpt"
    if in_stacked_sweep():
        # A job trained alone in a stacked sweep: the sweep stops with it, and continuing the
        # sweep resumes this job from `saved` and runs the jobs after it.
        hydra_config = HydraConfig.get()
        jobs = f"job #{hydra_config.job.num} trained alone"
        where = f"saved in {shown_path(saved)}"
        exit_sweep_stopped(trainer, signal_name, jobs, where, str(hydra_config.sweep.dir))
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    overrides = [o for o in overrides if not o.startswith("ckpt_path=")]
    command = " ".join([invoked_command(), *overrides, f"ckpt_path={saved}"])
    exit_stopped(trainer, signal_name, f"; resume with: {command}")


def train_and_print(cfg: DictConfig) -> float:
    """Train, print the table of results, and return the metric that sweepers optimise."""
    return report(cfg, train(cfg))


def record_job_failure(error: Exception) -> None:
    """<job folder>/failure.json (type, message, overrides, time, traceback) and one line on
    stderr: the failure of the current job of a multirun, which then goes on with the others."""
    from oodmix.reporting.jobs import failure_reason, write_failure

    hydra_cfg = HydraConfig.get()
    path = failure_file()
    record = write_failure(path.parent, error, hydra_cfg.job.num, list(hydra_cfg.overrides.task))
    # OODMIX_DEBUG=1: the traceback on the console too (main() sets HYDRA_FULL_ERROR itself).
    if debugging():
        print(record["traceback"], file=sys.stderr, end="")
    reason = failure_reason(record)
    shown = shown_path(path)
    print(f"oodmix-train: job {hydra_cfg.job.num} failed: {reason} (see {shown})", file=sys.stderr)


def run_job_task(cfg: DictConfig) -> float | None:
    """One run, or one job of a multirun; returns the metric that sweepers optimise.

    A failed job of a multirun is recorded in its folder and returns None, so that Hydra's
    launchers go on with the next jobs and the Optuna sweeper marks the trial failed (a NaN
    would crash hydra-optuna-sweeper 1.3). A single run keeps its errors: a ConfigError is
    one line and exit code 2, a RunFailure (the run diverged) one line and exit code 1; any
    other exception propagates with its traceback. A full disk is one line and exit code 1
    for both (`exit_no_space`): the sweep stops, since no later job could write either.
    """
    multirun = in_multirun()
    if multirun:  # left by an earlier run into the same sweep folder
        failure_file().unlink(missing_ok=True)
    try:
        try:
            return train_and_print(cfg)
        except Exception as error:
            if no_space_left(error) is not None:
                raise
            return _failed(error, multirun)  # recording it may find the disk full, too
    except Exception as error:
        full = no_space_left(error)
        if full is None:
            raise
        # Not a failure of this job: the jobs after it could write nothing either.
        exit_no_space(full, Path(cfg.output_dir))
    return None


def _failed(error: Exception, multirun: bool) -> None:
    """A job's failure recorded (the sweep goes on); a single run's ConfigError or RunFailure
    as one line and exit code 2 or 1; any other error raised."""
    if multirun:
        record_job_failure(error)
        return None
    if isinstance(error, (ConfigError, RunFailure)) and not debugging():
        print(f"oodmix-train: error: {error}", file=sys.stderr)
        sys.exit(2 if isinstance(error, ConfigError) else 1)
    raise error


def exit_no_space(error: OSError, output_dir: Path) -> None:
    """One line: the file that could not be written for lack of space, and how to go on once
    there is space again (resume the run from its last checkpoint, continue the stacked
    sweep, or run again); exit 1."""
    from oodmix.checkpoints.interrupts import continue_command, invoked_command

    # A write into an open file (a logger's) reports no file name: the folder, then.
    written = (
        shown_path(Path(error.filename)) if error.filename else f"into {shown_path(output_dir)}"
    )
    last = output_dir / "checkpoints" / "last.ckpt"
    if in_stacked_sweep():
        go_on = f"continue the sweep with: {continue_command(str(HydraConfig.get().sweep.dir))}"
    elif in_multirun():
        go_on = "run the sweep again"
    elif last.is_file():
        overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
        overrides = [o for o in overrides if not o.startswith("ckpt_path=")]
        go_on = "resume with: " + " ".join([invoked_command(), *overrides, f"ckpt_path={last}"])
    else:
        go_on = "run it again"
    print(
        f"oodmix-train: error: no space left on the device writing {written}; free space "
        f"there, then {go_on}",
        file=sys.stderr,
    )
    sys.exit(1)
