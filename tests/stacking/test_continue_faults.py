"""Continuing a sweep whose files were damaged: a truncated group checkpoint is named and the
intact one used (or the continue refused in one line naming it), a damaged metrics.json makes
its job train again, an empty job record counts as a job that never started."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.types import RunMode
from omegaconf import open_dict, read_write

from oodmix.config.errors import ConfigError
from oodmix.stacking import continuing
from oodmix.stacking.checkpoint import damaged_metrics, latest_checkpoint, recorded_value


def checkpoint(path: Path, step: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"global_step": step, "epoch": step // 10}, path)
    return path


def truncated(path: Path, step: int = 50) -> Path:
    checkpoint(path, step)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_a_damaged_checkpoint_is_passed_over_and_named(tmp_path: Path) -> None:
    good = checkpoint(tmp_path / "group.ckpt", 20)
    bad = truncated(tmp_path / "group-interrupted.ckpt", 50)  # further on, but unreadable
    damaged: list = []
    assert latest_checkpoint([bad, good], damaged) == good
    assert [path for path, _ in damaged] == [bad] and damaged[0][1]
    with pytest.raises(Exception):  # noqa: B017 (torch's own error for a truncated file)
        latest_checkpoint([bad, good])  # without a list to report it in


@pytest.fixture
def sweep_jobs(compose_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """jobs(n) -> n job configs of one sweep in tmp_path/sweep (folders 0..n-1), as the
    stacked launcher composes them; checkpoint settings are not compared here."""
    monkeypatch.setattr(continuing, "check_same_settings", lambda *args: None)
    monkeypatch.chdir(tmp_path)  # paths are shown relative to the working directory

    def jobs(n: int):
        configs = []
        for k in range(n):
            cfg = compose_config(f"seed={k}", run=f"sweep/{k}")
            with read_write(cfg.hydra), open_dict(cfg.hydra):
                cfg.hydra.mode = RunMode.MULTIRUN
                cfg.hydra.job.num = k
                cfg.hydra.overrides.task = [f"seed={k}"]
            (tmp_path / "sweep" / str(k)).mkdir(parents=True, exist_ok=True)
            configs.append(cfg)
        return configs

    return jobs


def test_a_group_with_a_damaged_checkpoint_resumes_from_the_intact_one(sweep_jobs, tmp_path):
    configs = sweep_jobs(2)
    folder = tmp_path / "sweep" / "0" / "checkpoints"
    truncated(folder / "group-interrupted.ckpt")
    intact = checkpoint(folder / "group.ckpt", 20)
    said: list[str] = []
    plans, recorded = continuing.continue_sweep([[0, 1]], configs, said.append)
    assert plans == [[0, 1]] and recorded == {}
    assert any(
        "sweep/0/checkpoints/group-interrupted.ckpt is damaged" in line
        and line.endswith(f"using {intact.relative_to(tmp_path)}")
        for line in said
    ), said


def test_a_group_whose_only_checkpoint_is_damaged_is_refused_in_one_line(sweep_jobs, tmp_path):
    configs = sweep_jobs(2)
    truncated(tmp_path / "sweep" / "0" / "checkpoints" / "group.ckpt")
    with pytest.raises(ConfigError) as refused:
        continuing.continue_sweep([[0, 1]], configs)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("hydra.launcher.resume=true cannot continue jobs #0, #1: ")
    assert "sweep/0/checkpoints/group.ckpt is damaged" in message
    assert message.endswith("delete it to train them from the start")


def test_a_job_alone_with_a_damaged_last_checkpoint_resumes_from_its_interrupted_one(
    sweep_jobs, tmp_path
):
    (cfg,) = sweep_jobs(1)
    folder = tmp_path / "sweep" / "0" / "checkpoints"
    truncated(folder / "last.ckpt")
    interrupted = checkpoint(folder / "interrupted.ckpt", 10)
    said: list[str] = []
    plans, _ = continuing.continue_sweep([[0]], [cfg], said.append)
    assert plans == [[0]] and cfg.ckpt_path == str(interrupted)
    assert any("last.ckpt is damaged" in line for line in said)


@pytest.mark.parametrize("text", ['{"val/f1": 0.5', "", "[1, 2]", '{"test/f1": 0.5}'])
def test_a_damaged_metrics_json_makes_its_job_train_again(sweep_jobs, tmp_path, text):
    configs = sweep_jobs(2)
    (tmp_path / "sweep" / "0" / "metrics.json").write_text('{"val/f1": 0.75}')
    (tmp_path / "sweep" / "1" / "metrics.json").write_text(text)
    assert recorded_value(configs[0]) == (0.75,) and damaged_metrics(configs[0]) is None
    assert recorded_value(configs[1]) is None
    assert "sweep/1/metrics.json cannot be read" in damaged_metrics(configs[1])
    said: list[str] = []
    plans, recorded = continuing.continue_sweep([[0, 1]], configs, said.append)
    assert recorded == {0: 0.75} and plans == [[1]]
    assert any(line.strip().startswith("job #1: ") and "trains again" in line for line in said)


@pytest.mark.parametrize("record", ["", "{not: [yaml", "seed: 1\n"])
def test_an_empty_or_unreadable_job_record_is_a_job_that_never_started(
    sweep_jobs, tmp_path, record
):
    """A 0-byte .hydra/overrides.yaml (a job stopped as its record was written) is not "a job
    that ran with no overrides": the continue goes on, and the record is written again in its
    place (not beside it, as a started job's continued record is)."""
    configs = sweep_jobs(2)
    for k, text in ((0, "- seed=0\n"), (1, record)):
        hydra = tmp_path / "sweep" / str(k) / ".hydra"
        hydra.mkdir()
        (hydra / "overrides.yaml").write_text(text)
    assert continuing.recorded_overrides(configs[0]) == ["seed=0"]
    assert continuing.recorded_overrides(configs[1]) is None
    plans, _ = continuing.continue_sweep([[0, 1]], configs)
    assert plans == [[0, 1]]
    assert str(configs[0].hydra.output_subdir).startswith(".hydra/resumed_")
    assert configs[1].hydra.output_subdir == ".hydra"


def test_a_finished_member_of_a_resumed_group_is_logged_as_finished(sweep_jobs, tmp_path):
    configs = sweep_jobs(3)
    checkpoint(tmp_path / "sweep" / "0" / "checkpoints" / "group.ckpt", 20)
    (tmp_path / "sweep" / "1" / "metrics.json").write_text('{"val/f1": 0.5}')
    said: list[str] = []
    plans, _ = continuing.continue_sweep([[0, 1, 2]], configs, said.append)
    assert plans == [[0, 1, 2]]  # trained together again; job 1 keeps its metrics.json
    assert "\tjob #1: finished" in said
    assert "\tjobs #0, #2: resumed from sweep/0/checkpoints/group.ckpt" in said
