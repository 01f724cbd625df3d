"""Continuing a stopped sweep in its folder: `hydra.launcher.resume=true` (the stacked launcher).

    oodmix-train -m <the sweep's overrides> hydra.sweep.dir=<its folder> hydra.launcher.resume=true

Every job of the command must be the job of the same number in the folder (its recorded
`.hydra/overrides.yaml`), trained with the same settings as its checkpoints (compared as a
resumed run's are, `oodmix.checkpoints.resume.check_same_settings`); anything else is refused in
one line before a job runs. Then, per job:

- its folder holds metrics.json: not trained again; its recorded value goes to Hydra;
- a group of jobs trained together with a group checkpoint (oodmix.stacking.checkpoint): the
  whole group resumes from it (its members that hold metrics.json keep it);
- a job trained alone with checkpoints/interrupted.ckpt or last.ckpt: resumes from the one
  furthest into training, as `oodmix-train ckpt_path=...` resumes a run;
- any other: trained from the start.

Each continued job records its config in `.hydra/resumed_<time>/`, beside the original record.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict, read_write

from oodmix.checkpoints.interrupts import RESUME_KEY
from oodmix.config.errors import ConfigError
from oodmix.config.job import job_config
from oodmix.config.paths import shown_path
from oodmix.stacking.checkpoint import (
    GROUP_RECORD,
    damaged_metrics,
    group_files,
    job_folder,
    job_label,
    latest_checkpoint,
    recorded_value,
)
from oodmix.stacking.groups import job_numbers


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def recorded_overrides(cfg: DictConfig) -> list[str] | None:
    """The overrides the job of this number in the sweep folder was launched with (its
    `.hydra/overrides.yaml`), or None when it has no usable record: none, or one that is empty
    or unreadable (a job stopped while its record was written, e.g. on a full disk), which is
    taken as a job that never started, and its record written again."""
    record = job_folder(cfg) / ".hydra" / "overrides.yaml"
    if not record.is_file():
        return None
    try:
        overrides = OmegaConf.load(record)
    except Exception:
        return None
    if not isinstance(overrides, ListConfig) or not record.read_text().strip():
        return None
    return [str(o) for o in overrides]


def check_same_job(cfg: DictConfig) -> None:
    """The job of this number in the sweep folder must have been launched with the same
    overrides (those a resumed run may change aside, see MAY_DIFFER)."""
    from oodmix.checkpoints.resume import MAY_DIFFER

    recorded = recorded_overrides(cfg)
    if recorded is None:
        return
    before = [o for o in recorded if _key(o) not in MAY_DIFFER]
    now = [str(o) for o in cfg.hydra.overrides.task if _key(str(o)) not in MAY_DIFFER]
    if before != now:
        raise ConfigError(
            f"{RESUME_KEY}=true is not allowed here: job #{cfg.hydra.job.num} of "
            f"{shown_path(job_folder(cfg).parent)} ran with {' '.join(before) or 'no overrides'}, "
            f"and this command gives it {' '.join(now) or 'no overrides'}; continue a sweep with "
            "the command that started it"
        )


def check_same_settings(ckpt: Path, cfg: DictConfig, jobs: str) -> None:
    """A checkpoint's settings must be the job's (oodmix.checkpoints.resume), refused in the
    words of a continued sweep."""
    from oodmix.checkpoints.resume import RefusalWords
    from oodmix.checkpoints.resume import check_same_settings as check

    words = RefusalWords(
        refused=f"{RESUME_KEY}=true",
        checkpoint=f"{shown_path(ckpt)} ({jobs})",
        resume="continue",
        start="sweep",
    )
    check(str(ckpt), cfg, words)


def _check_group_record(configs: Sequence[DictConfig]) -> None:
    """A member's checkpoints/group.json names the jobs it was trained with: this command must
    train the same jobs together (the same hydra.launcher.max_members)."""
    import json

    jobs = [int(cfg.hydra.job.num) for cfg in configs]
    for cfg in configs:
        record = job_folder(cfg) / "checkpoints" / GROUP_RECORD
        if record.is_file() and json.loads(record.read_text())["jobs"] != jobs:
            before = job_numbers(json.loads(record.read_text())["jobs"])
            raise ConfigError(
                f"{RESUME_KEY}=true is not allowed here: jobs {before} were trained together "
                f"({shown_path(record)}), and this command trains jobs {job_label(configs)} "
                "together; continue a sweep with the command that started it"
            )


def _record_beside(cfg: DictConfig, stamp: str) -> None:
    """Hydra writes the continued job's config to .hydra/resumed_<stamp>/, not over the
    original record (a usable one: `recorded_overrides`)."""
    if recorded_overrides(cfg) is not None:  # else its record is written again, in place
        with read_write(cfg.hydra), open_dict(cfg.hydra):
            cfg.hydra.output_subdir = f".hydra/resumed_{stamp}"


def _jobs(configs: Sequence[DictConfig]) -> str:
    """`job #3` or `jobs #0-#2, #5`, as the continue's log names them."""
    return f"{'job' if len(configs) == 1 else 'jobs'} {job_label(configs)}"


def _readable_checkpoint(
    paths: Sequence[Path], jobs: str, log: Callable[[str], Any]
) -> Path | None:
    """The checkpoint to resume from (`latest_checkpoint`), passing over a damaged one: said
    in the log when another is used, refused in one line when none is left."""
    damaged: list[tuple[Path, str]] = []
    saved = latest_checkpoint(paths, damaged)
    for path, why in damaged:
        if saved is None:
            raise ConfigError(
                f"{RESUME_KEY}=true cannot continue {jobs}: {shown_path(path)} is damaged "
                f"({why}); delete it to train {'them' if jobs.startswith('jobs') else 'it'} "
                "from the start"
            )
        log(f"\t{jobs}: {shown_path(path)} is damaged ({why}); using {shown_path(saved)}")
    return saved


def continue_sweep(
    groups: Sequence[Sequence[int]],
    configs: Sequence[DictConfig],
    log: Callable[[str], Any] = lambda message: None,
) -> tuple[list[list[int]], dict[int, float]]:
    """Plan the continuation of a sweep: (the groups still to train, in order; the recorded
    value of each job that is not trained again). Checks every job first (ConfigError, one
    line) and changes the configs of the jobs that go on (their record's folder; ckpt_path of
    a job trained alone that resumes)."""
    stamp = time.strftime("%H-%M-%S")
    recorded: dict[int, float] = {}
    plans: list[list[int]] = []
    for group in groups:
        members = [configs[i] for i in group]
        jobs = job_label(members)
        for i in group:  # a damaged result is no result: that job trains again
            if (why := damaged_metrics(configs[i])) is not None:
                log(f"\tjob #{configs[i].hydra.job.num}: {why}; it trains again")
        done = {i: value[0] for i in group if (value := recorded_value(configs[i])) is not None}
        for i in done:  # its settings, as its own last checkpoint holds them
            last = job_folder(configs[i]) / "checkpoints" / "last.ckpt"
            if last.is_file():
                check_same_settings(last, configs[i], f"job #{configs[i].hydra.job.num}")
        if len(group) > 1:
            _check_group_record(members)
            saved = _readable_checkpoint(group_files(job_folder(members[0])), f"jobs {jobs}", log)
            if saved is not None:
                check_same_settings(saved, members[0], f"jobs {jobs}")
                for cfg in members:
                    check_same_job(cfg)
                if done:  # finished before the stop: kept, not trained again
                    log(f"\t{_jobs([configs[i] for i in done])}: finished")
                going_on = [configs[i] for i in group if i not in done]
                if going_on:
                    log(f"\t{_jobs(going_on)}: resumed from {shown_path(saved)}")
                plans.append(list(group))
                continue
        for i in group:
            check_same_job(configs[i])
        recorded.update(done)
        rest = [i for i in group if i not in done]
        if done:
            log(f"\t{_jobs([configs[i] for i in done])}: finished")
        if len(rest) == 1 and len(group) == 1:
            cfg = configs[rest[0]]
            folder = job_folder(cfg) / "checkpoints"
            alone = [folder / "interrupted.ckpt", folder / "last.ckpt"]
            saved = _readable_checkpoint(alone, f"job #{cfg.hydra.job.num}", log)
            if saved is not None:
                check_same_settings(saved, cfg, f"job #{cfg.hydra.job.num}")
                with open_dict(cfg):
                    cfg.ckpt_path = str(saved)
                log(f"\tjob #{cfg.hydra.job.num}: resumed from {shown_path(saved)}")
        if rest:
            plans.append(rest)
    for plan in plans:
        for i in plan:
            _record_beside(configs[i], stamp)
    return plans, recorded


def recorded_return(cfg: DictConfig, value: float) -> Any:
    """Hydra's JobReturn of a job that finished before its sweep was stopped."""
    from hydra.core.utils import JobReturn, JobStatus

    return JobReturn(
        overrides=list(cfg.hydra.overrides.task),
        cfg=job_config(cfg),
        hydra_cfg=cfg,
        working_dir=os.getcwd(),
        task_name=str(cfg.hydra.job.name),
        status=JobStatus.COMPLETED,
        _return_value=value,
    )
