"""Train one group of a sweep's jobs (see oodmix.stacking.groups) and write each job's folder.

`train_group` is what the stacked launcher calls for a group: it receives the jobs' composed
configs (each with its Hydra section, its folder already made and recorded in
hydra.runtime.output_dir) and returns, per job, the value a sweeper optimises, or None for a
job that failed (its folder then holds failure.json, as with any launcher).

A group of K > 1 jobs is one run of one model (oodmix.stacking): each member's data, initial
weights, batches and mixing draws are its solo run's, built from its own config. The group has
one Trainer, one fit, one validation and one test, with the solo run's own callbacks made
member-aware (each value they compute is (K,), member k's its solo run's):

    DetectionEvaluation   every metric of every member, per epoch and after training
    MemberSelection       each member's best weights by its val/f1 (kept in memory)
    SavedScores           each member's scores.npz
    ConfidenceMap         each member's confidence map (2-D data, plots=true)
    MemberLogger          each member's own logger, fed its values as epochs happen

When training ends each member's checkpoints/last.ckpt and best-epoch=NNN.ckpt (read by
load_detector and oodmix-predict) are written, its tested weights (best or last) are put in
the stack, the stack is validated and tested once, and each member's metrics.json is written
by the solo run's writer (oodmix.runs.results).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn
from omegaconf import DictConfig, OmegaConf

from oodmix.config.job import job_config, resolved_job_configs
from oodmix.runs.context import make_current_job


def train_group(
    configs: Sequence[DictConfig], returns: Sequence[JobReturn] | None = None
) -> list[float | None]:
    """Train the jobs of one group; each job's folder gets what a solo run writes.

    `returns`: the jobs' JobReturns as the launcher started them; each gets its job's task
    config as it ran (JobReturn.cfg, resolved), as run_job gives it."""
    from oodmix.runs.job import run_job_task

    if len(configs) == 1:
        HydraConfig.instance().set_config(configs[0])
        return [run_job_task(job_config(configs[0]))]
    group = StackedGroup(configs)
    if returns is not None:
        for ret, job in zip(returns, group.jobs, strict=True):
            ret.cfg = job
    return group.run()


class StackedGroup:
    """K jobs of one group trained as one model, then each written as its solo run would be."""

    def __init__(self, configs: Sequence[DictConfig]) -> None:
        self.configs = list(configs)
        # Each job's config resolved while it is the current job (`${hydra:...}` its own).
        self.jobs = resolved_job_configs(self.configs, self._as_job)
        self.values: list[float | None] = [None] * len(configs)
        self._run_configs: dict[int, dict[str, Any]] = {}  # job -> `_run_config`

    def _as_job(self, k: int) -> None:
        """Make job k the current job: what Hydra's config and oodmix's helpers read."""
        make_current_job(self.configs[k])

    def run(self) -> list[float | None]:
        from oodmix.reporting.jobs import FAILURE_FILE

        for cfg in self.jobs:  # a failure.json left by an earlier run into the same sweep folder
            (Path(cfg.output_dir) / FAILURE_FILE).unlink(missing_ok=True)
        members = self._build_members()
        if members:
            self._train(members)
        return self.values

    def _fail(self, k: int, error: BaseException) -> None:
        from oodmix.runs.job import record_job_failure

        self._as_job(k)
        record_job_failure(error)
        self.values[k] = None

    def _build_members(self) -> list[int]:
        """Validate and build each job's parts as its solo run would (its seed first: the
        network's initial weights are drawn from it); a job refused here fails alone."""
        import lightning as L

        from oodmix.config.validation import validate
        from oodmix.runs.parts import build_parts, quiet_lightning

        quiet_lightning()

        self.parts: dict[int, tuple[Any, Any, Any]] = {}
        for k, cfg in enumerate(self.jobs):
            self._as_job(k)
            try:
                validate(cfg)
                L.seed_everything(cfg.seed, workers=True, verbose=False)
                self.parts[k] = build_parts(cfg)
            except Exception as error:
                self._fail(k, error)
        return sorted(self.parts)

    def _train(self, members: list[int]) -> None:
        """Train the members as one model, evaluate them once, write each job's files.

        The group's checkpoint (oodmix.stacking.checkpoint: <first job>/checkpoints/group.ckpt
        and, on SIGTERM or Ctrl+C, group-interrupted.ckpt) is written while it trains and
        resumed from when the group finds one (a sweep continued with
        hydra.launcher.resume=true); a stop prints the command that continues the sweep and
        exits 130 or 143, as a solo run does. A member whose folder holds metrics.json (written
        before the sweep was stopped) keeps it. The checkpoint goes once every member is done.
        """
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        from oodmix.checkpoints import stop_gracefully_on_signals
        from oodmix.stacking.checkpoint import GroupCheckpoint, recorded_value

        self.recorded = {k: recorded_value(self.configs[k]) for k in members}
        module, data = self._stack(members)
        group = GroupCheckpoint([self.configs[k] for k in members])
        trainer = self._trainer(members, group)
        self._as_job(members[0])
        resume_from = self._resumed_from = group.resume_from()
        with stop_gracefully_on_signals() as stop:
            try:
                try:
                    trainer.fit(module, datamodule=data, ckpt_path=resume_from)
                except Exception as error:  # every member failed (or a bug): each job records it
                    for k in members:
                        self._fail(k, module.failed_members.get(members.index(k), error))
                    group.remove()
                    return
                if stop.signum is not None:
                    raise SIGTERMException()
                self._write_checkpoints(members, module, trainer)
                metrics = self._evaluate(members, module, data, trainer)
                if stop.signum is not None:  # noted while the members were evaluated
                    raise SIGTERMException()
                self._write_results(members, module, trainer, metrics)
            except SIGTERMException:
                group.exit_interrupted(trainer, stop.name or "SIGTERM")
        group.remove()

    def _stack(self, members: list[int]) -> tuple[Any, Any]:
        """The members' module (a StackedNetwork trained with a StackedObjective) and data."""
        from oodmix.runs.build import build_module
        from oodmix.stacking.data import MemberStackDataModule
        from oodmix.stacking.networks import StackedNetwork
        from oodmix.stacking.objectives import StackedObjective

        data = MemberStackDataModule([self.parts[k][0] for k in members])
        network = StackedNetwork([self.parts[k][2] for k in members])
        objective = StackedObjective([self.parts[k][1] for k in members])
        data.request_parts(objective.requires)
        rates = [float(self.jobs[k].model.lr) for k in members]
        # The first member's settings, which a continued sweep's are compared with.
        module = build_module(
            self.jobs[members[0]],
            objective,
            network,
            member_rates=rates if len(set(rates)) > 1 else None,
        )
        return module, data

    def _run_config(self, k: int) -> dict[str, Any]:
        """Job k's resolved config as a plain dict (its logger's hyperparameters, its
        checkpoints' config), made once: converting a config takes milliseconds."""
        if k not in self._run_configs:
            self._run_configs[k] = OmegaConf.to_container(self.jobs[k], resolve=True)
        return self._run_configs[k]

    def _member_values(self, members: list[int], key: str) -> list[Any]:
        return [OmegaConf.select(self.jobs[k], key) for k in members]

    def _trainer(self, members: list[int], group: Any) -> Any:
        """One Trainer for the group: the solo run's evaluation and writers, each given every
        member's values (delta, folder, title), each member's own logger, and the group's
        checkpoints."""
        from hydra.utils import instantiate
        from lightning.pytorch.loggers import CSVLogger

        from oodmix.callbacks import DetectionEvaluation
        from oodmix.config.yaml_texts import yaml_texts
        from oodmix.loggers.member import MemberLogger
        from oodmix.stacking.selection import MemberSelection

        first = self.jobs[members[0]]
        configured = first.get("callbacks") or {}
        deltas = [float(d) for d in self._member_values(members, "delta")]
        folders = [str(self.jobs[k].output_dir) for k in members]
        if configured.get("detection"):
            evaluation = instantiate(configured.detection, delta=deltas)
        else:
            evaluation = DetectionEvaluation(deltas, instantiate(first.detector))
        callbacks = [evaluation, MemberSelection(len(members))]
        if configured.get("saved_scores"):
            callbacks.append(instantiate(configured.saved_scores, output_dir=folders))
        if configured.get("confidence_map"):
            titles = [
                str(t) for t in self._member_values(members, "callbacks.confidence_map.title")
            ]
            callbacks.append(
                instantiate(
                    configured.confidence_map, output_dir=folders, delta=deltas, title=titles
                )
            )
        last = configured.get("last_checkpoint") or {}
        callbacks.extend(group.callbacks(float(last.get("write_every_s", 10))))
        logged = [
            (i, k, instantiate(self.jobs[k].logger))
            for i, k in enumerate(members)
            if self.jobs[k].get("logger") and self.recorded[k] is None
        ]
        # The CSV loggers' hparams.yaml texts, made from one dump for the group.
        csv = [k for _, k, logger in logged if isinstance(logger, CSVLogger)]
        texts = dict(zip(csv, yaml_texts([{"config": self._run_config(k)} for k in csv])))
        loggers = [
            MemberLogger(logger, i, self._run_config(k), texts.get(k)) for i, k, logger in logged
        ]
        return instantiate(
            first.trainer,
            callbacks=callbacks,
            logger=loggers or False,
            enable_progress_bar=False,
            enable_checkpointing=True,  # the group's own checkpoint callbacks, no default one
        )

    def _selection(self, trainer: Any) -> Any:
        from oodmix.stacking.selection import MemberSelection

        return next(cb for cb in trainer.callbacks if isinstance(cb, MemberSelection))

    def _write_checkpoints(self, members: list[int], module: Any, trainer: Any) -> None:
        """Each member's checkpoints/last.ckpt and (model_checkpoint on) its best epoch's,
        cut from the group's latest Lightning checkpoint (oodmix.stacking.checkpoint:
        member_checkpoint, best_checkpoint), as its solo run's checkpoint callbacks write them.
        """
        from oodmix.checkpoints import AtomicCheckpointIO
        from oodmix.stacking.checkpoint import GroupState, best_checkpoint, member_checkpoint

        selection = self._selection(trainer)
        state = next(cb for cb in trainer.callbacks if isinstance(cb, GroupState))
        group = state.latest_dump
        if group is None:  # nothing trained in this process: the checkpoint it resumed from
            group = AtomicCheckpointIO().load_checkpoint(self._resumed_from)
        stacked = {
            name.removeprefix("net.layout."): value
            for name, value in group["state_dict"].items()
            if name.startswith("net.layout.")
        }
        writer = AtomicCheckpointIO()
        for i, k in enumerate(members):
            if self.recorded[k] is not None or i in module.failed_members:
                continue
            cfg = self.jobs[k]
            loss = self.parts[k][1]
            own = {f"loss.{name}": value for name, value in loss.state_dict().items()}
            weights = {f"net.{name}": value[i].clone() for name, value in stacked.items()}
            last = member_checkpoint(
                group, i, len(members), {**weights, **own}, self._run_config(k), float(cfg.model.lr)
            )
            folder = Path(cfg.output_dir) / "checkpoints"
            folder.mkdir(parents=True, exist_ok=True)
            writer.save_checkpoint(last, folder / "last.ckpt")
            if cfg.callbacks.get("model_checkpoint"):
                epoch, step = int(selection.best_epoch[i]), int(selection.best_step[i])
                best = {
                    f"net.{name}": value for name, value in selection.member_best_state(i).items()
                }
                best = best_checkpoint(last, {**best, **own}, epoch, step)
                writer.save_checkpoint(best, folder / f"best-epoch={epoch:03d}.ckpt")

    def _evaluate(self, members: list[int], module: Any, data: Any, trainer: Any) -> dict[str, Any]:
        """Every member's val/* and test*/* ((K,) each) of its tested weights: its best
        epoch's (test_ckpt=best) or its last; one validation and one test for the group."""
        import torch

        from oodmix.runs.evaluation import evaluate

        if self.jobs[members[0]].test_ckpt == "best":
            best = self._selection(trainer).best_state
            with torch.no_grad():
                for name, value in module.net.stacked_state().items():
                    value.copy_(best[name].to(value.device))
        return evaluate(trainer, module, data, None)

    def _write_results(
        self, members: list[int], module: Any, trainer: Any, metrics: dict[str, Any]
    ) -> None:
        """Each member's metrics.json and table, by the solo run's writer; a member that
        failed (in training, or with non-finite scores) records its failure instead."""
        from oodmix.callbacks import DetectionEvaluation
        from oodmix.runs.results import report, write_metrics

        evaluation = next(cb for cb in trainer.callbacks if isinstance(cb, DetectionEvaluation))
        for i, k in enumerate(members):
            if self.recorded[k] is not None:  # written before the sweep was stopped
                self.values[k] = self.recorded[k][0]
                continue
            error = module.failed_members.get(i) or evaluation.member_failures.get(i)
            if error is not None:
                self._fail(k, error)
                continue
            self._as_job(k)
            try:
                mine = {name: float(value[i]) for name, value in metrics.items()}
                cfg = self.jobs[k]
                self.values[k] = report(cfg, write_metrics(cfg, self.parts[k][1], mine))
            except Exception as error:
                self._fail(k, error)
