"""Hydra entry point: `oodmix-train [overrides]` (also `python -m oodmix`).

compose conf/train.yaml -> check values -> datamodule, loss, model, callbacks, trainer
-> fit -> test (best validation checkpoint) -> <run dir>/metrics.json and a printed table
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from oodmix.config.errors import debugging, describe
from oodmix.config.job import job_config
from oodmix.config.overrides import check_command_line
from oodmix.config.paths import config_dir, shown_path
from oodmix.config.run_checks import tested_weights_problem
from oodmix.config.validation import ConfigError, check_accelerator, validate
from oodmix.failures import RunFailure
from oodmix.files import write_json_atomic

# Lightning 2.6 calls a torch pytree API that newer torch marks deprecated, on every run.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")

# Lightning, torch and the model are imported inside the functions that use them: importing
# them takes seconds, and a mistyped command line should be answered at once.

# Shown in the printed table, in this order, when present.
TABLE_ROWS = {
    "test/f1": "F1 (ID positive)",
    "test/precision": "precision (ID)",
    "test/recall": "recall (ID)",
    "test/f1_ood": "F1 (OOD positive)",
    "test/f1_tuned": "F1 at val-tuned delta",
    "test/auroc": "AUROC",
    "test/fpr95": "FPR at 95% TPR",
    "test/acc": "ID accuracy",
}


def _choice(group: str, fallback: str) -> str:
    """The config-group option this run uses (e.g. loss=ce_kl), when Hydra composed it."""
    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get(group)
        if choice:
            return str(choice)
    return fallback


@contextmanager
def refusals_as_config_errors() -> Iterator[None]:
    """Turn a constructor's refusal of a value into a ConfigError (one line, exit 2).

    oodmix's classes raise ValueError (or ConfigError) naming the key and what is allowed;
    Hydra wraps those in a multi-line InstantiationException, which is unwrapped here.
    """
    try:
        yield
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, ConfigError):  # already one line, of its own kind (DataError)
            raise cause from None
        if isinstance(cause, ValueError):
            raise ConfigError(str(cause)) from None
        raise
    except ConfigError:
        raise
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _logged(trainer: Any, prefix: str) -> dict[str, float]:
    return {
        name: float(value)
        for name, value in trainer.callback_metrics.items()
        if name.startswith(prefix)
    }


def tested_checkpoint(trainer: Any, which: str) -> str | None:
    """The weights the test set sees. "last": those in memory after fitting (the final epoch).
    "best": the file of the checkpoint callback that monitors val/f1 (validation data only)."""
    if which == "last":
        return None
    return _monitoring_checkpoints(trainer)[0].best_model_path


def _monitoring_checkpoints(trainer: Any) -> list[Any]:
    return [cb for cb in trainer.checkpoint_callbacks if getattr(cb, "monitor", None)]


def build_trainer(cfg: DictConfig) -> Any:
    """The Lightning Trainer with the configured callbacks (null ones switched off) and logger."""
    from oodmix.console import is_quiet, progress_bar

    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    quiet = is_quiet(cfg.get("quiet", "auto"), multirun=_in_multirun())
    bar = progress_bar(cfg.get("progress", "auto"), quiet=quiet)  # root knobs (oodmix.console)
    return instantiate(
        cfg.trainer,
        callbacks=[*callbacks, bar] if bar else callbacks,
        logger=logger,
        enable_progress_bar=bar is not None,
    )


def format_results(metrics: dict[str, Any], threshold: str, output: Path) -> str:
    """A short human-readable table of the test metrics."""
    lines = [
        f"oodmix  loss={metrics['loss']}  detector={metrics['detector']}  seed={metrics['seed']}"
        f"  threshold: {threshold}  (test set)"
    ]
    for key, label in TABLE_ROWS.items():
        if key in metrics:
            lines.append(f"  {label:<22} {metrics[key]:.4f}")
    lines.append(f"  written to {shown_path(output)}")
    return "\n".join(lines)


@dataclass
class Run:
    """What one training run is made of, built from its config (see `build_run`)."""

    datamodule: Any
    module: Any  # OODClassifier; its objective is module.loss
    trainer: Any


def quiet_lightning() -> None:
    """Lightning sets its loggers to INFO when first imported (after Hydra configured
    logging); its start-up notices (accelerators present, tips) would bury the results."""
    import lightning  # noqa: F401  (imported first: its import sets the levels)

    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def build_parts(cfg: DictConfig) -> tuple[Any, Any, Any]:
    """The datamodule, objective and network of a run; a constructor's refusal as ConfigError.

    Also built before Hydra makes the run folder (oodmix.config.run_checks), so that such a
    refusal leaves nothing behind.
    """
    with refusals_as_config_errors():
        datamodule = instantiate(cfg.data)
        loss = instantiate(cfg.loss)
        datamodule.request_parts(loss.requires)  # refuses e.g. a mixup loss with mixup=null
        net = instantiate(
            cfg.model.net, in_features=datamodule.num_features, num_classes=datamodule.num_classes
        )
    return datamodule, loss, net


def build_run(cfg: DictConfig) -> Run:
    """Validate `cfg`, seed everything, and build the datamodule, model and trainer of a run.

    Shared by `train` and the benchmarks, so that a benchmark times exactly what a run trains.
    A single run of oodmix-train made these checks before Hydra made its folder
    (oodmix.config.hydra_callback); here they are the last resort, for what had no such check.
    """
    validate(cfg)
    check_accelerator(cfg)
    import lightning as L

    from oodmix.models import OODClassifier

    quiet_lightning()
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule, loss, net = build_parts(cfg)
    # Hydra's own section is present only when a config is composed with it (tests).
    run_config = job_config(cfg)
    module = OODClassifier(
        net,
        loss,
        instantiate(cfg.model.optimizer),
        config=OmegaConf.to_container(run_config, resolve=True),
        gradient_clip_val=cfg.model.get("gradient_clip_val"),
        gradient_clip_algorithm=cfg.model.get("gradient_clip_algorithm", "norm"),
    )
    trainer = build_trainer(cfg)
    reason = tested_weights_problem(cfg.test_ckpt, bool(_monitoring_checkpoints(trainer)))
    if reason:
        raise ConfigError(reason)
    return Run(datamodule, module, trainer)


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
            _exit_interrupted(trainer, stop.name or "SIGTERM", output_dir)
    return write_metrics(cfg, trainer, module, metrics)


def evaluate(trainer: Any, module: Any, datamodule: Any, ckpt_path: str | None) -> dict[str, Any]:
    """val/* and test*/* of the tested weights (those of `ckpt_path`, or the module's own).

    Validate the very weights that are tested: their val/* is what sweepers optimise, and
    their validation pass sets the tuned threshold (val/delta_best) the test then uses.
    """
    trainer.validate(module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
    metrics: dict[str, Any] = _logged(trainer, "val/")
    trainer.test(module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
    metrics.update(_logged(trainer, "test"))  # test/*, and test_near/*, test_far/* if present
    return metrics


def write_metrics(
    cfg: DictConfig, trainer: Any, module: Any, metrics: dict[str, Any]
) -> dict[str, Any]:
    """Add what identifies the run (seed, loss, detector) and write <run>/metrics.json."""
    metrics = dict(metrics)
    metrics.update(
        seed=int(cfg.seed),
        loss=_choice("loss", type(module.loss).__name__),
        detector=_choice("detector", str(cfg.detector._target_).rsplit(".", 1)[-1]),
    )
    if trainer.is_global_zero:
        write_json_atomic(Path(cfg.output_dir) / "metrics.json", metrics)
    return metrics


def _exit_interrupted(trainer: Any, signal_name: str, output_dir: Path) -> None:
    """One line saying where the run stopped and the command that resumes it (in a stacked
    sweep: that continues the sweep); exit 128 + the signal's number."""
    from oodmix.checkpoints.interrupts import exit_stopped

    saved = output_dir / "checkpoints" / "interrupted.ckpt"
    if not saved.is_file():  # stopped outside training: the last epoch's checkpoint resumes
        saved = output_dir / "checkpoints" / "last.ckpt"
    if _in_stacked_sweep():
        # A job trained alone in a stacked sweep: the sweep stops with it, and continuing the
        # sweep resumes this job from `saved` and runs the jobs after it.
        from oodmix.stacking.checkpoint import exit_sweep_stopped

        hydra_config = HydraConfig.get()
        jobs = f"job #{hydra_config.job.num} trained alone"
        where = f"saved in {shown_path(saved)}"
        exit_sweep_stopped(trainer, signal_name, jobs, where, str(hydra_config.sweep.dir))
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    overrides = [o for o in overrides if not o.startswith("ckpt_path=")]
    command = " ".join(["oodmix-train", *overrides, f"ckpt_path={saved}"])
    exit_stopped(trainer, signal_name, f"; resume with: {command}")


def _train_and_print(cfg: DictConfig) -> float:
    """Train, print the table of results, and return the metric that sweepers optimise."""
    return report(cfg, train(cfg))


def report(cfg: DictConfig, metrics: dict[str, Any]) -> float:
    """Print the table of a run's results (unless quiet) and return the metric that sweepers
    optimise."""
    fixed = getattr(hydra.utils.get_class(cfg.detector._target_), "fixed_threshold", False)
    threshold = (
        f"delta={cfg.delta}"
        if fixed
        else f"tuned on validation, val/delta_best={metrics['val/delta_best']:.4g}"
    )
    from lightning.pytorch.utilities import rank_zero_only

    from oodmix.console import is_quiet

    quiet = is_quiet(cfg.get("quiet", "auto"), multirun=_in_multirun())
    if rank_zero_only.rank == 0 and not quiet:  # one table, also under torchrun or srun
        print(format_results(metrics, threshold, Path(cfg.output_dir) / "metrics.json"))
    return metrics[cfg.optimized_metric]


def _in_multirun() -> bool:
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _in_stacked_sweep() -> bool:
    """Whether this run is a job of a multirun under the stacked launcher (which can continue
    a stopped sweep, hydra.launcher.resume=true)."""
    if not _in_multirun():
        return False
    target = str(HydraConfig.get().launcher.get("_target_", ""))
    return target.endswith(".StackedLauncher")


def _failure_file() -> Path:
    from oodmix.reporting.jobs import FAILURE_FILE

    return Path(HydraConfig.get().runtime.output_dir) / FAILURE_FILE


def _record_job_failure(error: Exception) -> None:
    """<job folder>/failure.json (type, message, overrides, time, traceback) and one line on
    stderr: the failure of one job of a multirun, which then goes on with the others."""
    from oodmix.reporting.jobs import failure_reason, write_failure

    hydra_cfg = HydraConfig.get()
    path = _failure_file()
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
    other exception propagates with its traceback.
    """
    multirun = _in_multirun()
    if multirun:  # left by an earlier run into the same sweep folder
        _failure_file().unlink(missing_ok=True)
    try:
        return _train_and_print(cfg)
    except (ConfigError, RunFailure) as error:
        if not multirun:
            if debugging():
                raise
            print(f"oodmix-train: error: {error}", file=sys.stderr)
            sys.exit(2 if isinstance(error, ConfigError) else 1)
        _record_job_failure(error)
    except Exception as error:  # not KeyboardInterrupt or SystemExit: those stop the sweep
        if not multirun:
            raise
        _record_job_failure(error)
    return None


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def _run_job(cfg: DictConfig) -> float | None:
    """Hydra's task function: `run_job_task` (also what a launcher that trains jobs together
    calls per job)."""
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
