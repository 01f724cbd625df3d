"""`hydra/launcher=stacked`: a local launcher that trains the jobs of a sweep in groups.

Jobs whose composed configs differ only in per-run numbers (seed, beta, mixup.alpha, delta,
model.lr, the objective's numbers: see `oodmix.stacking.groups`) form a group, which one call
of `oodmix.stacking.group_run.train_group` trains; a group of one job runs exactly as Hydra's
BasicLauncher runs it. Every job keeps what the basic launcher gives it (its number, its folder
with `.hydra/` and log file, the callbacks' on_job_start / on_job_end, its JobReturn; for a
group's jobs `job_records` makes them, file for file what Hydra's run_job makes, from one YAML
dump per group), so the sweepers (the basic one, Optuna) and the sweep report see a sweep as
they always do.

    oodmix-train -m hydra/launcher=stacked loss=ce_kl,ce_kl_mixup seed=0,1,2
    oodmix-train -m hydra/launcher=stacked hydra.launcher.max_members=4 seed=0,1,2,3,4,5

Hydra imports this module whenever it scans its plugins (every run of every Hydra app in the
environment), so oodmix itself, which imports torch, is imported only when a sweep launches.
"""

# No `from __future__ import annotations`: Hydra's plugin scan runs this module before it is in
# sys.modules, where a dataclass with string annotations looks itself up and fails.
import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import (
    JobReturn,
    JobStatus,
    configure_log,
    env_override,
    filter_overrides,
    run_job,
    setup_globals,
)
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict, read_write

log = logging.getLogger(__name__)


@dataclass
class StackedLauncherConf:
    """`hydra.launcher` of `hydra/launcher=stacked`."""

    _target_: str = "hydra_plugins.oodmix_stacked_launcher.stacked_launcher.StackedLauncher"
    # The largest group (its members are trained side by side, so this bounds the memory a
    # group takes); None: no limit. hydra.launcher.max_members=4 on the command line.
    max_members: int | None = None
    # Continue a stopped sweep in its folder (hydra.sweep.dir=<the sweep's folder>
    # hydra.launcher.resume=true): finished jobs are kept, stopped ones resume from their
    # checkpoints (oodmix.stacking.continuing).
    resume: bool = False


ConfigStore.instance().store(
    group="hydra/launcher", name="stacked", node=StackedLauncherConf, provider="oodmix"
)


def _start(cfg: DictConfig) -> tuple[tuple[str, str], ...] | None:
    """What Hydra's own section changes about how a job runs, which group_jobs does not
    compare: the environment variables it sets (hydra.job.env_set); None when the job runs in
    its own working directory (hydra.job.chdir=true), which a group of jobs, trained in one
    process at once, cannot have."""
    job = cfg.hydra.job
    if job.get("chdir"):
        return None
    return tuple(sorted((str(k), str(v)) for k, v in (job.get("env_set") or {}).items()))


class KeptSweepConfigs:
    """Hydra's config loader, keeping the job configs that the sweeper composes to check a
    batch (Sweeper.validate_batch_is_legal composes every job of a batch, then drops it) until
    the launcher, which composes the same jobs next, takes them: each job is composed once
    instead of twice. A job whose overrides differ from an earlier job's only in values is not
    composed by Hydra at all but derived from that job's config (`SiblingConfigs`): a copy
    instead of about 0.1 s of composition per job, the largest fixed cost of a stacked sweep.

    Everything else is passed to Hydra's loader. A config is handed out once; a job the
    sweeper did not check (Optuna's sweeper checks none) is composed when it is taken.
    """

    def __init__(self, loader: Any) -> None:
        from .sibling_configs import SiblingConfigs

        self.loader = loader
        self.siblings = SiblingConfigs(loader)
        self._kept: dict[tuple[int, tuple[str, ...]], DictConfig] = {}

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> Any:
        cfg = self.siblings.load_sweep_config(master_config, sweep_overrides)
        self._kept[(id(master_config), tuple(sweep_overrides))] = cfg
        return cfg

    def take_sweep_config(self, master_config: DictConfig, overrides: list[str]) -> DictConfig:
        """The job's config as the sweeper composed it, or composed now."""
        kept = self._kept.pop((id(master_config), tuple(overrides)), None)
        if kept is not None:
            return kept
        return self.siblings.load_sweep_config(master_config, overrides)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)


@contextmanager
def _registered(cfg: DictConfig) -> Iterator[None]:
    """`cfg` as the registered Hydra config (what `${hydra:...}` reads), as run_job registers a
    job's config while it runs; the one registered before comes back afterwards."""
    outer = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(cfg)
    try:
        yield
    finally:
        HydraConfig.instance().cfg = outer


@contextmanager
def _stop_says_how_to_continue(sweep_dir: str) -> Iterator[None]:
    """While the launcher prepares the jobs (composing, grouping, starting them; no training
    yet, whose own handlers take over), SIGTERM or Ctrl+C stops the sweep with one line and
    the command that continues it, exit 128 + the signal's number (not a silent exit 143)."""
    import signal
    import sys

    def stop(signum: int, frame: Any) -> None:
        from oodmix.checkpoints.interrupts import continue_command

        name = signal.Signals(signum).name
        print(
            f"oodmix-train: stopped by {name} while preparing the sweep's jobs (nothing trained "
            f"yet); continue the sweep with: {continue_command(sweep_dir)}",
            file=sys.stderr,
        )
        sys.exit(128 + signum)

    signals = (signal.SIGTERM, signal.SIGINT)
    before = {s: signal.signal(s, stop) for s in signals}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


class StackedLauncher(Launcher):
    """Runs the jobs of each launch in groups that are trained together, one group after the
    other (see the module's docstring)."""

    def __init__(self, max_members: int | None = None, resume: bool = False) -> None:
        if max_members is not None and (isinstance(max_members, bool) or max_members < 1):
            from oodmix.config.errors import ConfigError

            raise ConfigError(
                f"hydra.launcher.max_members={max_members} is not allowed: it must be a whole "
                "number >= 1 (the most jobs trained together), or null for no limit"
            )
        self.max_members = max_members
        self.resume = bool(resume)
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None
        # A continued sweep's multirun.yaml as the sweep that started it wrote it: the sweeper
        # writes the continuing command's over it before the launch (`_keep_sweep_record`).
        self._sweep_record: tuple[Path, bytes] | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function
        # The sweeper holds this same context and reads its loader when it checks a batch.
        if not isinstance(hydra_context.config_loader, KeptSweepConfigs):
            hydra_context.config_loader = KeptSweepConfigs(hydra_context.config_loader)
        if self.resume:  # set up before the sweeper writes multirun.yaml
            record = Path(str(config.hydra.sweep.dir)) / "multirun.yaml"
            if record.is_file():
                self._sweep_record = (record, record.read_bytes())

    def _keep_sweep_record(self) -> bytes | None:
        """A continued sweep keeps the multirun.yaml of the command that started it (put back
        here); returns the continuing command's, which the sweeper wrote over it (None when
        there is nothing to put back)."""
        if self._sweep_record is None:
            return None
        from oodmix.files import write_bytes_atomic

        record, original = self._sweep_record
        self._sweep_record = None
        current = record.read_bytes() if record.is_file() else None
        if current == original:
            return None
        write_bytes_atomic(record, original)
        return current

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        """Compose every job's config, group the jobs, run the groups in order; the JobReturns
        come back in job order, numbered from `initial_job_idx` as the basic launcher numbers
        them (a sweeper that launches in batches, like Optuna, passes where a batch starts)."""
        setup_globals()
        assert self.hydra_context is not None
        assert self.config is not None
        assert self.task_function is not None

        self._hydra_logging()
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        log.info(f"Launching {len(job_overrides)} jobs locally")
        with _stop_says_how_to_continue(str(self.config.hydra.sweep.dir)):
            # Every job's config first: the groups depend on all of them.
            configs = []
            for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
                log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
                configs.append(self._compose(list(overrides), idx))
            groups = self.groups(configs)
            with _registered(configs[0]):
                self._log_groups(groups, configs)

        runs: list[JobReturn | None] = [None] * len(configs)
        if self.resume:  # every job checked before any runs; finished ones are not run again
            from oodmix.stacking import continuing

            log.info(f"Continuing the sweep in {self.config.hydra.sweep.dir}")
            continuing_record = self._keep_sweep_record()
            groups, recorded = continuing.continue_sweep(groups, configs, log.info)
            if continuing_record is not None:  # beside it, as a continued job's .hydra/resumed_*
                from oodmix.files import write_bytes_atomic

                sweep_dir = Path(str(self.config.hydra.sweep.dir))
                stamp = time.strftime("%H-%M-%S")
                write_bytes_atomic(sweep_dir / f"multirun_resumed_{stamp}.yaml", continuing_record)
            for i, value in recorded.items():
                runs[i] = continuing.recorded_return(configs[i], value)
        for group in groups:
            if len(group) == 1:
                runs[group[0]] = self._run_alone(configs[group[0]])
            else:
                returns = self._run_together([configs[i] for i in group])
                for i, ret in zip(group, returns):
                    runs[i] = ret
        assert all(ret is not None for ret in runs)
        return runs  # type: ignore[return-value]

    def groups(self, configs: Sequence[DictConfig]) -> list[list[int]]:
        """Indices of `configs` in the groups that are trained together, in the order of each
        group's first job: `group_jobs` (which compares the configs without Hydra's section),
        with jobs that Hydra starts differently (`_start`) kept apart."""
        from oodmix.stacking.groups import group_jobs

        # group_jobs resolves every value, and `${hydra:...}` (output_dir, a plot's title) reads
        # the Hydra config that is registered, which in a sweep is none between jobs. It leaves
        # every value that reads Hydra's config out of the comparison, so the first job's
        # answers those reads for all.
        with _registered(configs[0]):
            grouped = group_jobs(configs, self.max_members)
        groups: list[list[int]] = []
        for group in grouped:
            together: dict[tuple[tuple[str, str], ...], list[int]] = {}
            for i in group:
                start = _start(configs[i])
                if start is None:
                    groups.append([i])
                else:
                    together.setdefault(start, []).append(i)
            groups.extend(together.values())
        return sorted(groups, key=lambda group: group[0])

    def _compose(self, overrides: list[str], idx: int) -> DictConfig:
        """A job's config, numbered as the basic launcher numbers it, with the folder that
        run_job will give it (run_job computes it the same way and records it again)."""
        assert self.hydra_context is not None and self.config is not None
        loader = self.hydra_context.config_loader
        assert isinstance(loader, KeptSweepConfigs)
        cfg = loader.take_sweep_config(self.config, overrides)
        with open_dict(cfg):
            cfg.hydra.job.id = idx
            cfg.hydra.job.num = idx
        with _registered(cfg):
            folder = Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
        with read_write(cfg.hydra.runtime), open_dict(cfg.hydra.runtime):
            cfg.hydra.runtime.output_dir = os.path.abspath(folder)
        return cfg

    def _log_groups(self, groups: list[list[int]], configs: Sequence[DictConfig]) -> None:
        from oodmix.stacking.groups import differing_members, job_numbers

        limit = f" (hydra.launcher.max_members={self.max_members})" if self.max_members else ""
        plural = "s" if len(groups) > 1 else ""
        log.info(f"{len(configs)} jobs in {len(groups)} group{plural}{limit}")
        for n, group in enumerate(groups, start=1):
            jobs = job_numbers([configs[i].hydra.job.num for i in group])
            if len(group) == 1:
                log.info(f"\tgroup {n}: job {jobs} alone")
                continue
            differing = ", ".join(differing_members([configs[i] for i in group]))
            by = f", differing in {differing}" if differing else ""
            log.info(f"\tgroup {n}: jobs {jobs} trained together{by}")

    def _run_job(self, cfg: DictConfig, task_function: TaskFunction) -> JobReturn:
        """Hydra's run_job, exactly as the basic launcher calls it (it records the job's folder
        in cfg.hydra.runtime.output_dir)."""
        assert self.hydra_context is not None
        ret = run_job(
            hydra_context=self.hydra_context,
            task_function=task_function,
            config=cfg,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
        self._hydra_logging()  # run_job switched logging to the job's log file
        return ret

    def _run_alone(self, cfg: DictConfig) -> JobReturn:
        assert self.task_function is not None
        return self._run_job(cfg, self.task_function)

    def _run_together(self, configs: list[DictConfig]) -> list[JobReturn]:
        """Start the group's jobs as run_job starts a job (`job_records.start_jobs`: folder,
        records, log file, on_job_start), train the group in one call, end the jobs
        (on_job_end, with their results).

        Each job's JobReturn gets its value from train_group: COMPLETED with the float, or
        None for a job that failed (its folder holds failure.json). train_group itself raising
        is a bug: every job of the group is then FAILED with that exception, as Hydra marks a
        task that raises, and the launch goes on with the next group (the sweeper raises it
        when it reads the returns).
        """
        from oodmix.stacking import group_run

        from .job_records import end_jobs, start_jobs

        assert self.hydra_context is not None and self.task_function is not None
        with _stop_says_how_to_continue(str(configs[0].hydra.sweep.dir)):
            returns = start_jobs(configs, self.hydra_context, self.task_function)
        # train_group registers each job's config in turn; the one registered now comes back.
        outer = HydraConfig.instance().cfg
        env = dict(_start(configs[0]) or ())  # the same for every job of a group
        try:
            with env_override(env):
                values: Any = group_run.train_group(configs, returns)
            if len(values) != len(configs):
                raise RuntimeError(
                    f"train_group returned {len(values)} values for a group of {len(configs)} jobs"
                )
        except Exception as error:  # not KeyboardInterrupt: that stops the sweep
            jobs = ", ".join(f"#{cfg.hydra.job.num}" for cfg in configs)
            message = " ".join(str(error).split())  # one line
            log.error(f"group of jobs {jobs} failed: {type(error).__name__}: {message}")
            for ret in returns:
                ret.status = JobStatus.FAILED
                ret.return_value = error
        else:
            for ret, value in zip(returns, values):
                ret.status = JobStatus.COMPLETED
                ret.return_value = value
        finally:
            HydraConfig.instance().cfg = outer
            self._hydra_logging()
        end_jobs(configs, returns, self.hydra_context)
        return returns

    def _hydra_logging(self) -> None:
        assert self.config is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
