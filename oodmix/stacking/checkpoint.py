"""The checkpoint of a group of jobs trained together (oodmix.stacking.group_run), and stopping
a group on SIGTERM or Ctrl+C, with the same machinery as a solo run.

Where it lives: in the folder of the group's first job,

    <sweep>/<first job>/checkpoints/group.ckpt              the latest epoch (BufferedCheckpoint:
                                                            at most every write_every_s seconds,
                                                            always at the first and final epoch)
    <sweep>/<first job>/checkpoints/group-interrupted.ckpt  where SIGTERM or Ctrl+C stopped it
                                                            (InterruptCheckpoint)

and every member's folder holds checkpoints/group.json, which names the group's jobs and these
files (relative to the member's folder). All of them are removed once every member's files are
written: a finished job's folder is what the basic launcher writes.

A group checkpoint is Lightning's dump of the group's trainer (stacked weights, optimiser,
loop and loader position, the module's epoch terms and random generators, every callback's
state: MemberCheckpoints' states and the members' checkpoints it holds)
plus, under "oodmix_group" (`GroupState`), which jobs the members are (numbers and overrides)
and the members that failed. Its hyper_parameters carry the first
member's resolved config, so that `oodmix.checkpoints.resume.check_same_settings` compares a
continued sweep's settings with it as it does for a resumed run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig

from oodmix.callbacks.own_hooks import OwnHooksOnly
from oodmix.checkpoints.interrupts import exit_sweep_stopped
from oodmix.config.paths import shown_path
from oodmix.files import write_json_atomic
from oodmix.stacking.groups import job_numbers

GROUP_CHECKPOINT = "group"  # checkpoints/group.ckpt
GROUP_INTERRUPTED = "group-interrupted"  # checkpoints/group-interrupted.ckpt
GROUP_RECORD = "group.json"  # checkpoints/group.json in every member's folder
STATE_KEY = "oodmix_group"


def job_folder(cfg: DictConfig) -> Path:
    """A job's folder, from its composed config (Hydra's section included)."""
    return Path(str(cfg.hydra.runtime.output_dir))


def job_label(configs: Sequence[DictConfig]) -> str:
    """The jobs' numbers as messages show them (`#0, #1`, `#0-#359`)."""
    return job_numbers([cfg.hydra.job.num for cfg in configs])


def group_files(first: Path) -> list[Path]:
    """The group checkpoints kept in the folder of a group's first job."""
    folder = first / "checkpoints"
    return [folder / f"{GROUP_INTERRUPTED}.ckpt", folder / f"{GROUP_CHECKPOINT}.ckpt"]


def latest_checkpoint(
    paths: Sequence[Path], damaged: list[tuple[Path, str]] | None = None
) -> Path | None:
    """Of the checkpoints that exist, the one furthest into training (global step, then epoch;
    the first listed on a tie); None when none exists. A file that cannot be read (truncated,
    not a checkpoint) is skipped and added to `damaged` as (path, why), or raises when no
    `damaged` list is given."""
    from oodmix.checkpoints import AtomicCheckpointIO

    best: tuple[tuple[int, int], Path] | None = None
    for path in paths:
        if not path.is_file():
            continue
        try:
            checkpoint = AtomicCheckpointIO().load_checkpoint(path)
            where = (int(checkpoint.get("global_step", 0)), int(checkpoint.get("epoch", 0)))
        except Exception as error:
            if damaged is None:
                raise
            damaged.append((path, " ".join(f"{type(error).__name__}: {error}".split())[:200]))
            continue
        if best is None or where > best[0]:
            best = (where, path)
    return None if best is None else best[1]


class GroupState(OwnHooksOnly, L.Callback):
    """Saves and restores, with the group's checkpoints, which jobs the members are and the
    module's member bookkeeping (`OODClassifier.failed_members`), which lives
    on the module outside its weights (a solo run's loss terms travel the same way, in
    OODClassifier.on_save_checkpoint)."""

    def __init__(
        self,
        jobs: Sequence[int],
        overrides: Sequence[Sequence[str]],
        on_train_start: Callable[[], None] | None = None,
    ) -> None:
        self.jobs = [int(n) for n in jobs]
        self.overrides = [list(o) for o in overrides]
        self._on_train_start = on_train_start

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # After the checkpoint callbacks' setup, which warns about a folder that holds files.
        if self._on_train_start is not None and trainer.is_global_zero:
            self._on_train_start()

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[STATE_KEY] = group_state(self.jobs, self.overrides, pl_module)

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        state = checkpoint.get(STATE_KEY)
        if state is None:
            raise RuntimeError("not a group checkpoint: it holds no oodmix_group state")
        if list(state["jobs"]) != self.jobs:
            raise RuntimeError(
                f"the group checkpoint holds jobs {state['jobs']}, not this group's {self.jobs}"
            )
        restore_group_state(state, pl_module)


def group_state(
    jobs: Sequence[int], overrides: Sequence[Sequence[str]], module: Any
) -> dict[str, Any]:
    """What a group checkpoint holds besides Lightning's dump (plain values and tensors: read
    with weights_only=True)."""
    return {
        "jobs": list(jobs),
        "overrides": [list(o) for o in overrides],
        "failed_members": {
            int(i): {"epoch": int(e.epoch), "step": int(e.step), "terms": dict(e.terms)}
            for i, e in module.failed_members.items()
        },
    }


def restore_group_state(state: dict[str, Any], module: Any) -> None:
    """The module's member bookkeeping from `group_state`."""
    from oodmix.failures import TrainingDiverged

    module.failed_members = {
        int(i): TrainingDiverged(f["epoch"], f["step"], f["terms"])
        for i, f in state["failed_members"].items()
    }


class GroupCheckpoint:
    """The checkpoint files of one group: the callbacks that write them, the one to resume
    from, the record in every member's folder, and their removal when the group is done.

    `configs` are the members' composed configs (Hydra's section included), in member order.
    """

    def __init__(self, configs: Sequence[DictConfig]) -> None:
        self.configs = list(configs)
        self.first = job_folder(self.configs[0])
        self.interrupted, self.latest = group_files(self.first)
        self.jobs = [int(cfg.hydra.job.num) for cfg in self.configs]

    def callbacks(self, write_every_s: float) -> list[L.Callback]:
        from oodmix.callbacks import BufferedCheckpoint
        from oodmix.checkpoints import InterruptCheckpoint

        folder = str(self.first / "checkpoints")
        overrides = [list(cfg.hydra.overrides.task) for cfg in self.configs]
        return [
            GroupState(self.jobs, overrides, on_train_start=self.record),
            BufferedCheckpoint(
                dirpath=folder,
                filename=GROUP_CHECKPOINT,
                monitor=None,
                save_top_k=1,
                enable_version_counter=False,
                write_every_s=write_every_s,
            ),
            InterruptCheckpoint(folder, GROUP_INTERRUPTED),
        ]

    def resume_from(self) -> str | None:
        """The readable group checkpoint furthest into training, or None (the group starts
        afresh); a continued sweep has already said which it uses and refused a group whose
        only checkpoint is damaged (oodmix.stacking.continuing)."""
        path = latest_checkpoint([self.interrupted, self.latest], damaged=[])
        return None if path is None else str(path)

    def record(self) -> None:
        """checkpoints/group.json in every member's folder: the group's jobs and checkpoints."""
        for cfg in self.configs:
            folder = job_folder(cfg)
            paths = [_relative(path, folder) for path in (self.latest, self.interrupted)]
            (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
            write_json_atomic(
                folder / "checkpoints" / GROUP_RECORD, {"jobs": self.jobs, "checkpoints": paths}
            )

    def remove(self) -> None:
        """The group's checkpoints and records, once every member is written or failed."""
        for path in (self.interrupted, self.latest):
            path.unlink(missing_ok=True)
        for cfg in self.configs:
            (job_folder(cfg) / "checkpoints" / GROUP_RECORD).unlink(missing_ok=True)

    def exit_interrupted(self, trainer: Any, signal_name: str) -> None:
        """One line: where the group stopped, its checkpoint and the command that continues the
        sweep; exit 128 + the signal's number, as a solo run (oodmix.runs.job.exit_interrupted)."""
        saved = latest_checkpoint([self.interrupted, self.latest], damaged=[])
        where = "no group checkpoint was written"
        if saved is not None:
            where = f"saved in {shown_path(saved)}"
        jobs = f"jobs {job_label(self.configs)} trained together"
        exit_sweep_stopped(trainer, signal_name, jobs, where, str(self.configs[0].hydra.sweep.dir))


def _relative(path: Path, folder: Path) -> str:
    import os

    return os.path.relpath(path, folder)


def recorded_value(cfg: DictConfig) -> tuple[float] | None:
    """(the value the job handed to Hydra,) when its folder holds metrics.json (a job that
    finished before its sweep was stopped); None otherwise, also when that file cannot be
    read or lacks the value (`damaged_metrics` says why): the job then trains again."""
    value, _ = _recorded(cfg)
    return None if value is None else (value,)


def damaged_metrics(cfg: DictConfig) -> str | None:
    """Why a job's metrics.json cannot be taken as its result (truncated, not JSON, without
    the value Hydra is handed), or None (no such file, or a good one)."""
    return _recorded(cfg)[1]


def _recorded(cfg: DictConfig) -> tuple[float | None, str | None]:
    """(the job's recorded value, why its metrics.json cannot give it): (None, None) without
    such a file."""
    from oodmix.reporting.jobs import read_metrics

    path = job_folder(cfg) / "metrics.json"
    if not path.is_file():
        return None, None
    try:
        return float(read_metrics(path)[str(cfg.optimized_metric)]), None
    except (OSError, ValueError, TypeError, KeyError) as error:
        kind = "no " + str(error) if isinstance(error, KeyError) else type(error).__name__
        return None, f"{shown_path(path)} cannot be read ({kind})"


def member_checkpoint(
    group: dict[str, Any],
    k: int,
    members: int,
    state_dict: dict[str, Any],
    config: dict[str, Any],
    learning_rate: float | None = None,
) -> dict[str, Any]:
    """Member k's own checkpoint, cut from Lightning's dump of the group's trainer: what its
    solo run's checkpoint callback writes at the same epoch.

    - state_dict: `state_dict`, its solo module's (the stacked weights' row k, under its
      network's names), and hyper_parameters its own resolved config (what load_detector and
      a resumed run read);
    - epoch, global_step, loops, learning-rate schedulers: the group's, which are every
      member's (one trainer);
    - optimizer_states: row k of every stacked state tensor (Adam's moments, ...), the step
      counts as they are, and the member's own learning rate;
    - oodmix (the epoch's loss terms so far, the random generators): row k of the terms;
    - callbacks: none (the group's callbacks hold every member's state, not this one's; the
      member's own callbacks fill theirs in, oodmix.callbacks.member_checkpoints).
    """

    def row(value: Any) -> Any:
        if torch.is_tensor(value) and value.dim() > 0 and value.shape[0] == members:
            return value[k].clone()
        return value

    checkpoint = {
        key: value
        for key, value in group.items()
        if key not in (STATE_KEY, "callbacks", "optimizer_states", "oodmix")
    }
    checkpoint.update(state_dict=state_dict, hyper_parameters={"config": config}, callbacks={})
    optimizers = []
    for optimizer in group.get("optimizer_states", []):
        groups = [dict(g) for g in optimizer["param_groups"]]
        if learning_rate is not None:
            for param_group in groups:
                param_group["lr"] = learning_rate
        states = {
            index: {name: row(value) for name, value in state.items()}
            for index, state in optimizer["state"].items()
        }
        optimizers.append({"state": states, "param_groups": groups})
    checkpoint["optimizer_states"] = optimizers
    if "oodmix" in group:
        terms = dict(group["oodmix"]["epoch_terms"])
        if terms.get("values") is not None:  # (steps, terms, K)
            terms["values"] = terms["values"][..., k].clone()
        checkpoint["oodmix"] = {**group["oodmix"], "epoch_terms": terms}
    return checkpoint
