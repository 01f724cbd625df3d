"""hydra/launcher=stacked: the jobs of a launch are grouped, each larger group is trained by one
call of train_group, and every job's folder, number and return look as with the basic launcher.

The in-process tests drive the launcher with configs Hydra composes from conf/ and a stand-in
train_group (no training); the slow ones run real sweeps through the console script's entry
point (in this process, tests/console_scripts.py).
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from console_scripts import Completed, run_script
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext
from omegaconf import DictConfig, OmegaConf

import oodmix.stacking.group_run as group_run
from oodmix.config.errors import ConfigError
from oodmix.config.job import job_config
from oodmix.config.overrides import check_command_line
from oodmix.config.paths import config_dir


class RecordedCallbacks:
    """Stands in for Hydra's callbacks: which jobs started and ended, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.events.append(("start", config.hydra.job.num))

    def on_job_end(self, config: DictConfig, **kwargs: Any) -> None:
        self.events.append(("end", config.hydra.job.num))


class FakeTraining:
    """A stand-in train_group and task function: records what each is given and returns the
    values it was told to (train_group: one list, or an exception to raise, per call; the
    task: always `task_value`)."""

    def __init__(self, group_values: list[Any] | None = None, task_value: float = 0.5) -> None:
        self.group_values = list(group_values or [])
        self.task_value = task_value
        self.groups: list[list[int]] = []  # job numbers per train_group call
        self.folders_ready: list[bool] = []
        self.tasks: list[int] = []  # job numbers the task function ran
        self.composed: list[list[str]] = []  # the overrides of each job config Hydra composed

    def train_group(
        self, configs: list[DictConfig], returns: list | None = None
    ) -> list[float | None]:
        self.groups.append([cfg.hydra.job.num for cfg in configs])
        # The launcher's JobReturns come with the group, which gives each its task config.
        assert returns is not None and len(returns) == len(configs)
        for cfg, ret in zip(configs, returns, strict=True):
            assert ret.hydra_cfg.hydra.job.num == cfg.hydra.job.num and ret.cfg is None
            ret.cfg = job_config(cfg)
        # Each job's folder exists, with Hydra's record, before its group trains.
        self.folders_ready.append(
            all(
                (Path(cfg.hydra.runtime.output_dir) / ".hydra" / "config.yaml").is_file()
                and Path(cfg.hydra.runtime.output_dir).name == str(cfg.hydra.job.num)
                for cfg in configs
            )
        )
        values = self.group_values.pop(0)
        if isinstance(values, Exception):
            raise values
        return values

    def task(self, cfg: DictConfig) -> float:
        self.tasks.append(HydraConfig.get().job.num)
        return self.task_value


@pytest.fixture
def launch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., tuple[list, RecordedCallbacks]]]:
    """launch(jobs, fake, *hydra_overrides, start=0) -> (JobReturns, callbacks): the stacked
    launcher, set up as Hydra sets it up for `oodmix-train -m`, launching `jobs` (a list of
    override lists) into tmp_path/sweep with `fake` as train_group and task function."""
    monkeypatch.chdir(tmp_path)
    # Hydra reconfigures the root logger for every job; pytest's own handlers stay as they are.
    monkeypatch.setattr("hydra.core.utils.configure_log", lambda *args, **kwargs: None)
    GlobalHydra.instance().clear()

    def _launch(
        jobs: list[list[str]],
        fake: FakeTraining,
        *hydra_overrides: str,
        start: int = 0,
        check_batch: bool = False,
    ) -> tuple[list, RecordedCallbacks]:
        from hydra_plugins.oodmix_stacked_launcher import stacked_launcher

        monkeypatch.setattr(stacked_launcher, "configure_log", lambda *args, **kwargs: None)
        monkeypatch.setattr(group_run, "train_group", fake.train_group)
        master = compose(
            "train",
            overrides=[
                "hydra/launcher=stacked",
                f"hydra.sweep.dir={tmp_path / 'sweep'}",
                f"hydra.run.dir={tmp_path / 'run'}",
                *hydra_overrides,
            ],
            return_hydra_config=True,
        )
        callbacks = RecordedCallbacks()
        loader = GlobalHydra.instance().config_loader()
        compose_job = loader.load_sweep_config

        def counted(master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
            fake.composed.append(list(sweep_overrides))
            return compose_job(master_config, sweep_overrides)

        monkeypatch.setattr(loader, "load_sweep_config", counted)
        context = HydraContext(loader, callbacks)  # type: ignore[arg-type]
        # As a sweeper makes its launcher: hydra.launcher instantiated, then set up.
        launcher = Plugins.instance().instantiate_launcher(
            hydra_context=context, task_function=fake.task, config=master
        )
        assert type(launcher).__name__ == "StackedLauncher"
        if check_batch:  # what Hydra's basic sweeper does before it launches a batch
            sweeper = SimpleNamespace(hydra_context=context, config=master)
            Sweeper.validate_batch_is_legal(sweeper, jobs)  # type: ignore[arg-type]
        return list(launcher.launch(jobs, initial_job_idx=start)), callbacks

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        yield _launch
    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None


def test_the_launcher_is_registered_and_passes_the_command_line_checks() -> None:
    """Hydra's plugin scan registers hydra/launcher=stacked (it is no file of conf/), and the
    command-line checks let it and its option through."""
    from hydra.plugins.launcher import Launcher

    launchers = [f"{p.__module__}.{p.__name__}" for p in Plugins.instance().discover(Launcher)]
    assert "hydra_plugins.oodmix_stacked_launcher.stacked_launcher.StackedLauncher" in launchers
    node = ConfigStore.instance().load("hydra/launcher/stacked.yaml").node
    assert node.max_members is None
    check_command_line(["-m", "hydra/launcher=stacked", "hydra.launcher.max_members=2", "seed=0,1"])


def test_each_group_trains_once_and_returns_land_on_their_jobs(launch, tmp_path: Path) -> None:
    """Jobs 3, 5, 6 differ in seed only: one train_group call, with their configs in job order,
    after run_job made their folders; job 4 (another objective) runs alone through the task
    function, as the basic launcher runs a job. Returns come back in job order."""
    fake = FakeTraining(group_values=[[0.1, None, 0.3]], task_value=0.7)
    jobs = [["seed=0"], ["loss=ce", "seed=0"], ["seed=1"], ["seed=2"]]
    returns, callbacks = launch(jobs, fake, start=3)

    assert fake.groups == [[3, 5, 6]] and fake.folders_ready == [True]
    assert fake.tasks == [4]
    assert [r.hydra_cfg.hydra.job.num for r in returns] == [3, 4, 5, 6]
    assert [list(r.overrides) for r in returns] == jobs
    assert [r.status for r in returns] == [JobStatus.COMPLETED] * 4
    assert [r.return_value for r in returns] == [0.1, 0.7, None, 0.3]
    # Every job went through Hydra's run_job: its folder, its record, its callbacks.
    sweep = tmp_path / "sweep"
    for num, overrides in zip(range(3, 7), jobs):
        recorded = OmegaConf.load(sweep / str(num) / ".hydra" / "overrides.yaml")
        assert list(recorded) == overrides
        assert (sweep / str(num) / ".hydra" / "hydra.yaml").is_file()
    assert sorted(callbacks.events) == sorted(
        (event, num) for num in range(3, 7) for event in ("start", "end")
    )


@pytest.mark.parametrize("check_batch", [True, False])
def test_each_job_is_composed_once(launch, check_batch: bool) -> None:
    """Whether or not the sweeper composed the batch's jobs to check them (the basic sweeper
    does, Optuna's does not), each job is composed at most once: the launcher takes the
    sweeper's configs. A job that differs from an earlier one in values alone (seed=1) is not
    composed by Hydra but derived from that job's config (SiblingConfigs). Each job still gets
    its own values."""
    fake = FakeTraining(group_values=[[0.1, 0.2]], task_value=0.7)
    jobs = [["seed=0"], ["seed=1"], ["loss=ce", "seed=3"]]
    returns, _ = launch(jobs, fake, check_batch=check_batch)
    assert fake.composed == [jobs[0], jobs[2]]
    assert [r.cfg.seed for r in returns] == [0, 1, 3]
    assert [r.hydra_cfg.hydra.runtime.choices.loss for r in returns] == [
        "ce_kl_mixup",
        "ce_kl_mixup",
        "ce",
    ]
    assert [r.return_value for r in returns] == [0.1, 0.2, 0.7]


def test_max_members_splits_a_group(launch) -> None:
    fake = FakeTraining(group_values=[[0.1, 0.2], [0.3, 0.4]], task_value=0.5)
    jobs = [[f"seed={seed}"] for seed in range(5)]
    returns, _ = launch(jobs, fake, "hydra.launcher.max_members=2")
    assert fake.groups == [[0, 1], [2, 3]] and fake.tasks == [4]
    assert [r.return_value for r in returns] == [0.1, 0.2, 0.3, 0.4, 0.5]


def test_a_group_whose_training_raises_fails_its_jobs_and_the_next_group_runs(launch) -> None:
    """train_group raising is a bug, not a failed run: the group's jobs are FAILED with the
    exception (the sweeper raises it when it reads them), and the next group still trains."""
    bug = RuntimeError("a bug in stacked training")
    fake = FakeTraining(group_values=[bug, [0.3, 0.4]])
    jobs = [["seed=0"], ["seed=1"], ["loss=ce", "seed=0"], ["loss=ce", "seed=1"]]
    returns, _ = launch(jobs, fake)
    assert fake.groups == [[0, 1], [2, 3]]
    assert [r.status for r in returns] == [JobStatus.FAILED] * 2 + [JobStatus.COMPLETED] * 2
    for failed in returns[:2]:
        with pytest.raises(RuntimeError, match="a bug in stacked training"):
            failed.return_value  # noqa: B018 (the property raises the job's exception)
    assert [r.return_value for r in returns[2:]] == [0.3, 0.4]


def test_a_wrong_number_of_values_fails_the_group(launch) -> None:
    fake = FakeTraining(group_values=[[0.1]])
    returns, _ = launch([["seed=0"], ["seed=1"]], fake)
    assert [r.status for r in returns] == [JobStatus.FAILED] * 2
    with pytest.raises(RuntimeError, match="returned 1 values for a group of 2 jobs"):
        returns[0].return_value  # noqa: B018


def test_jobs_in_their_own_working_directory_run_alone(launch) -> None:
    """hydra.job.chdir=true: each job runs in its folder, which jobs trained together in one
    process cannot; every job then runs as with the basic launcher."""
    fake = FakeTraining(task_value=0.5)
    returns, _ = launch([["seed=0"], ["seed=1"]], fake, "hydra.job.chdir=true")
    assert fake.groups == [] and fake.tasks == [0, 1]
    assert [r.return_value for r in returns] == [0.5, 0.5]


def test_max_members_below_one_is_refused() -> None:
    from hydra_plugins.oodmix_stacked_launcher.stacked_launcher import StackedLauncher

    with pytest.raises(ConfigError, match=r"hydra.launcher.max_members=0 is not allowed"):
        StackedLauncher(max_members=0)


# Small data: a job takes a second or two.
SMALL = [
    "trainer.max_epochs=1",
    "plots=false",
    "logger=none",
    "data.n_ood_train=200",
    "data.n_val=200",
    "data.n_test=200",
    "data.n_shift=100",
]
# Two groups of two jobs: the objectives differ, the seeds do not matter.
GRID = ["loss=ce_kl,ce_kl_mixup", "seed=0,1"]


def one_by_one(configs: list[DictConfig], returns: list | None = None) -> list[Any]:
    """The one-by-one reference train_group: each job through the ordinary task, so that a
    stacked sweep must write exactly what the basic launcher writes."""
    from oodmix.runs.job import run_job_task

    values = []
    for k, cfg in enumerate(configs):
        HydraConfig.instance().set_config(cfg)
        task = job_config(cfg)
        if returns is not None:
            returns[k].cfg = task
        values.append(run_job_task(task))
    return values


def oodmix_train(args: list[str], cwd: Path, one_by_one_groups: bool = False) -> Completed:
    """`oodmix-train <args>` (in this process), optionally with the one-by-one train_group."""
    stacked_train_group = group_run.train_group
    if one_by_one_groups:
        group_run.train_group = one_by_one
    try:
        return run_script("oodmix-train", args, cwd=cwd)
    finally:
        group_run.train_group = stacked_train_group


@pytest.fixture(scope="module")
def basic_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The grid under the basic launcher, the reference the stacked sweeps are compared with."""
    root = tmp_path_factory.mktemp("basic")
    sweep = root / "sweep"
    result = oodmix_train(
        ["-m", "hydra/launcher=basic", *GRID, *SMALL, f"hydra.sweep.dir={sweep}"], cwd=root
    )
    assert result.returncode == 0, result.stderr
    return sweep


def jobs_of(sweep: Path) -> list[str]:
    return sorted(p.name for p in sweep.iterdir() if p.is_dir())


def text(path: Path, sweep: Path) -> str:
    """A file's text with its sweep folder's path taken out."""
    return path.read_text().replace(str(sweep), "<sweep>")


def sweep_record(sweep: Path) -> dict:
    """multirun.yaml without what names the launcher or the folders (sweep, working one)."""
    record = OmegaConf.to_container(OmegaConf.load(sweep / "multirun.yaml"))
    hydra = record["hydra"]
    for key in ("launcher", "sweep"):
        hydra.pop(key)
    hydra["overrides"].pop("hydra")
    hydra["runtime"].pop("cwd")
    hydra["runtime"]["choices"].pop("hydra/launcher")
    return record


def report_shape(sweep: Path) -> str:
    """table.md without its numbers and its best job (the training's): job counts, rows,
    columns, fixed overrides."""
    lines = text(sweep / "table.md", sweep).splitlines()
    kept = "\n".join(line for line in lines if not line.startswith("Best job"))
    return re.sub(r"\d+\.\d+", "<x>", kept)


@pytest.mark.slow
def test_stacked_sweep_writes_the_jobs_of_the_basic_launcher(basic_sweep: Path, tmp_path: Path):
    """The same job folders (numbers, .hydra/config.yaml, overrides.yaml, metrics.json with the
    same keys), multirun.yaml and report; the log names the groups."""
    sweep = tmp_path / "sweep"
    result = oodmix_train(
        ["-m", "hydra/launcher=stacked", *GRID, *SMALL, f"hydra.sweep.dir={sweep}"], cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "4 jobs in 2 groups" in result.stdout
    assert "\tgroup 1: jobs #0, #1 trained together, differing in seed" in result.stdout
    assert "\tgroup 2: jobs #2, #3 trained together, differing in seed" in result.stdout

    assert jobs_of(sweep) == jobs_of(basic_sweep) == ["0", "1", "2", "3"]
    for job in jobs_of(sweep):
        for record in ("config.yaml", "overrides.yaml"):
            ours, basic = sweep / job / ".hydra" / record, basic_sweep / job / ".hydra" / record
            assert text(ours, sweep) == text(basic, basic_sweep)
        ours = json.loads((sweep / job / "metrics.json").read_text())
        basic = json.loads((basic_sweep / job / "metrics.json").read_text())
        assert ours.keys() == basic.keys()
        assert (ours["seed"], ours["loss"]) == (basic["seed"], basic["loss"])
        assert (sweep / job / "train.log").is_file()
    assert sweep_record(sweep) == sweep_record(basic_sweep)
    assert report_shape(sweep) == report_shape(basic_sweep)
    assert (sweep / "f1_vs_delta.png").is_file()


@pytest.mark.slow
def test_stacked_sweep_trained_one_by_one_writes_the_basic_values(
    basic_sweep: Path, tmp_path: Path
) -> None:
    """With the one-by-one train_group, every metrics.json and the report are the basic
    launcher's, byte for byte: the launcher itself changes nothing."""
    sweep = tmp_path / "sweep"
    result = oodmix_train(
        ["-m", "hydra/launcher=stacked", *GRID, *SMALL, f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path,
        one_by_one_groups=True,
    )
    assert result.returncode == 0, result.stderr
    for job in jobs_of(basic_sweep):
        assert (sweep / job / "metrics.json").read_bytes() == (
            basic_sweep / job / "metrics.json"
        ).read_bytes()
    assert text(sweep / "table.md", sweep) == text(basic_sweep / "table.md", basic_sweep)


@pytest.mark.slow
def test_a_diverging_job_fails_alone(tmp_path: Path) -> None:
    """model.lr=1e30 diverges: failure.json for that job only, the other finishes, exit 1."""
    sweep = tmp_path / "sweep"
    result = oodmix_train(
        ["-m", "hydra/launcher=stacked", "model.lr=1e30,0.01", *SMALL, f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    assert "\tgroup 1: jobs #0, #1 trained together, differing in model.lr" in result.stdout
    record = json.loads((sweep / "0" / "failure.json").read_text())
    assert record["type"] == "TrainingDiverged" and record["job"] == 0
    assert not (sweep / "0" / "metrics.json").exists()
    assert not (sweep / "1" / "failure.json").exists()
    assert json.loads((sweep / "1" / "metrics.json").read_text())["test/f1"] >= 0
    ours = [line for line in result.stderr.splitlines() if line.startswith("oodmix-train:")]
    assert len(ours) == 2
    assert ours[0].startswith("oodmix-train: job 0 failed: TrainingDiverged: training diverged")
    assert ours[1] == f"oodmix-train: 1 of 2 jobs failed: see {sweep / 'table.md'}"


@pytest.mark.slow
def test_optuna_batches_become_groups(tmp_path: Path) -> None:
    """hparams_search=optuna with n_jobs=2: each batch of two trials is one group; four trials
    finish and Optuna writes its results."""
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    sweep = tmp_path / "optuna"
    result = oodmix_train(
        ["hparams_search=optuna", "hydra/launcher=stacked", "hydra.sweeper.n_trials=4",
         "hydra.sweeper.n_jobs=2", *SMALL, f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "\tgroup 1: jobs #0, #1 trained together" in result.stdout
    assert "\tgroup 1: jobs #2, #3 trained together" in result.stdout
    trials = [json.loads((sweep / str(n) / "metrics.json").read_text()) for n in range(4)]
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    assert best.best_value == pytest.approx(max(t["val/f1"] for t in trials))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_while_jobs_are_prepared_says_how_to_continue(capsys, signum) -> None:
    """SIGTERM or Ctrl+C while the launcher composes and starts the jobs (before any trains):
    one line with the command that continues the sweep, exit 128 + the signal's number; the
    handlers before it come back afterwards."""
    from hydra_plugins.oodmix_stacked_launcher.stacked_launcher import _stop_says_how_to_continue

    before = signal.getsignal(signum)
    with pytest.raises(SystemExit) as exited, _stop_says_how_to_continue("outputs/sweep"):
        os.kill(os.getpid(), signum)
        time.sleep(1)  # the handler runs before this ends
    assert exited.value.code == 128 + signum
    (line,) = capsys.readouterr().err.strip().splitlines()
    name = signal.Signals(signum).name
    assert line.startswith(f"oodmix-train: stopped by {name} while preparing the sweep's jobs ")
    assert line.endswith("hydra.sweep.dir=outputs/sweep hydra.launcher.resume=true")
    assert signal.getsignal(signum) is before
