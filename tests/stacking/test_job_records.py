"""A group's job folders, as the stacked launcher starts them (job_records.start_jobs), are file
for file what Hydra's run_job writes for the same jobs; the callbacks see each job start before
the group trains and end after it, with its result."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus, run_job
from hydra.types import HydraContext
from omegaconf import DictConfig

import oodmix.stacking.group_run as group_run
from oodmix.config.job import job_config
from oodmix.config.paths import config_dir

# One group: every job differs from the first in per-member values only, among them values
# YAML writes in exponent form; all share a title long enough to be folded.
JOBS = [
    ["seed=0", "beta=0.1", "delta=0.8"],
    ["seed=1", "beta=1e-05", "delta=0.75"],
    ["seed=2", "beta=3", "delta=0.5"],
    ["seed=3", "beta=0.30000000000000004", "delta=0.9"],
]
TITLE = "callbacks.confidence_map.title='" + "a title with words " * 6 + "'"


class Events:
    """Hydra's callbacks, recorded: (event, job number, its status and value at on_job_end)."""

    def __init__(self) -> None:
        self.seen: list[tuple] = []

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        assert HydraConfig.get().job.num == config.hydra.job.num
        self.seen.append(("start", config.hydra.job.num))

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        assert HydraConfig.get().job.num == config.hydra.job.num
        self.seen.append(("end", config.hydra.job.num, job_return.status, job_return._return_value))


def folder_files(folder: Path) -> dict[str, bytes]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): p.read_bytes() for p in files}


@pytest.fixture
def started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The launcher's group: its configs (as train_group got them), the callbacks' events and
    the JobReturns; the jobs' folders under tmp_path/sweep."""
    monkeypatch.chdir(tmp_path)
    GlobalHydra.instance().clear()
    from hydra_plugins.oodmix_stacked_launcher import stacked_launcher

    monkeypatch.setattr(stacked_launcher, "configure_log", lambda *args, **kwargs: None)
    trained: list[list[DictConfig]] = []
    events = Events()

    def train_group(configs, returns=None):
        assert [e[0] for e in events.seen] == ["start"] * len(configs)  # all started, none ended
        trained.append([copy.deepcopy(cfg) for cfg in configs])
        for cfg, ret in zip(configs, returns, strict=True):  # as train_group gives them
            ret.cfg = job_config(cfg)
        return [0.25 * k for k in range(len(configs))]

    monkeypatch.setattr(group_run, "train_group", train_group)
    jobs = [[*job, TITLE] for job in JOBS]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        master = compose(
            "train",
            overrides=["hydra/launcher=stacked", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
            return_hydra_config=True,
        )
        context = HydraContext(GlobalHydra.instance().config_loader(), events)  # type: ignore
        launcher = Plugins.instance().instantiate_launcher(
            hydra_context=context, task_function=lambda cfg: None, config=master
        )
        returns = list(launcher.launch(jobs, initial_job_idx=0))
        yield trained, events, returns, context
    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None


def test_a_groups_job_folders_are_run_jobs_file_for_file(started, tmp_path: Path):
    trained, _, _, context = started
    assert len(trained) == 1 and len(trained[0]) == len(JOBS)  # one group
    ours = {k: folder_files(tmp_path / "sweep" / str(k)) for k in range(len(JOBS))}
    log = f"{trained[0][0].hydra.job.name}.log"  # empty: the group logs to the sweep's log
    records = {".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", log}
    assert all(set(files) == records and files[log] == b"" for files in ours.values())

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        for k, cfg in enumerate(trained[0]):
            folder = tmp_path / "sweep" / str(k)
            for path in sorted(folder.rglob("*"), reverse=True):
                path.unlink() if path.is_file() else path.rmdir()
            run_job(
                task_function=lambda cfg: None,
                config=cfg,
                job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir",
                hydra_context=HydraContext(context.config_loader, type(context.callbacks)()),
            )
            assert folder_files(folder) == ours[k], f"job {k}"
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)


def test_callbacks_see_each_job_start_before_and_end_after_the_group_trains(started):
    trained, events, returns, _ = started
    n = len(JOBS)
    assert events.seen[:n] == [("start", k) for k in range(n)]
    assert events.seen[n:] == [("end", k, JobStatus.COMPLETED, 0.25 * k) for k in range(n)]
    assert [r.return_value for r in returns] == [0.25 * k for k in range(n)]
    assert [r.hydra_cfg.hydra.job.num for r in returns] == list(range(n))
    assert [r.cfg.seed for r in returns] == list(range(n)) and "hydra" not in returns[0].cfg
    assert [list(r.overrides)[:3] for r in returns] == JOBS
    assert {r.task_name for r in returns} == {trained[0][0].hydra.job.name}
