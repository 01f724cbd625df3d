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
    MemberCheckpoints     each member's own checkpoint callbacks (best-epoch=NNN.ckpt by its
                          val/f1, last.ckpt), each given its own values and checkpoint cut
                          from the group's, held in memory until training ends
    SavedScores           each member's scores.npz
    ConfidenceMap         each member's confidence map (2-D data, plots=true)
    MemberLogger          each member's own logger, fed its values as epochs happen

When training ends each member's checkpoints are written; its tested weights (best or last)
are put in the stack, the stack is validated and tested once, and each member's metrics.json
is written by the solo run's writer (oodmix.runs.results).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn
from omegaconf import DictConfig, OmegaConf

from oodmix.config.job import job_config
from oodmix.runs.context import make_current_job
from oodmix.stacking.like_configs import resolved_job_configs


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
        """Train the group; each job's value (None for a failed one). A full disk stops the
        sweep in one line with the command that continues it (no job failed: the ones after
        it could write nothing either)."""
        from oodmix.files import no_space_left
        from oodmix.reporting.jobs import FAILURE_FILE
        from oodmix.runs.job import exit_no_space

        try:
            for cfg in self.jobs:  # a failure.json left by an earlier run into the same folder
                (Path(cfg.output_dir) / FAILURE_FILE).unlink(missing_ok=True)
            members = self._build_members()
            if members:
                self._train(members)
        except Exception as error:
            full = no_space_left(error)
            if full is None:
                raise
            exit_no_space(full, Path(self.jobs[0].output_dir))
        return self.values

    def _fail(self, k: int, error: BaseException) -> None:
        from oodmix.files import no_space_left
        from oodmix.runs.job import record_job_failure

        if no_space_left(error) is not None:
            raise error  # not the job's failure: the group stops (`run`)
        self._as_job(k)
        record_job_failure(error)
        self.values[k] = None

    def _build_members(self) -> list[int]:
        """Build each job's parts as its solo run would (its seed first: the
        network's initial weights are drawn from it); a job refused here fails alone."""
        from oodmix.runs.build import seed_run
        from oodmix.runs.parts import build_parts, quiet_lightning

        quiet_lightning()

        self.parts: dict[int, tuple[Any, Any, Any]] = {}
        for k, cfg in enumerate(self.jobs):
            self._as_job(k)
            try:
                seed_run(cfg.seed)
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
        from oodmix.files import no_space_left
        from oodmix.stacking.checkpoint import GroupCheckpoint, recorded_value

        self.recorded = {k: recorded_value(self.configs[k]) for k in members}
        module, data = self._stack(members)
        group = GroupCheckpoint([self.configs[k] for k in members])
        trainer = self._trainer(members, group)
        self._as_job(members[0])
        resume_from = group.resume_from()
        with stop_gracefully_on_signals() as stop:
            try:
                try:
                    trainer.fit(module, datamodule=data, ckpt_path=resume_from)
                except Exception as error:  # every member failed (or a bug): each job records it
                    if no_space_left(error) is not None:
                        raise  # not the members' failure (`run`)
                    for k in members:
                        self._fail(k, module.failed_members.get(members.index(k), error))
                    group.remove()
                    return
                # Lightning calls on_train_end only when the fit trained: a fit resumed from a
                # checkpoint with no epoch left writes the members' checkpoints here.
                self._checkpoints(trainer).on_train_end(trainer, module)
                if stop.signum is not None:
                    raise SIGTERMException()
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
            self._run_configs[k] = OmegaConf.to_container(
                self.jobs[k], resolve=True, enum_to_str=True
            )
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
        from oodmix.callbacks.member_checkpoints import MemberCheckpoints
        from oodmix.loggers.member import MemberLogger
        from oodmix.stacking.yaml_texts import yaml_texts

        first = self.jobs[members[0]]
        configured = first.get("callbacks") or {}
        deltas = [float(d) for d in self._member_values(members, "delta")]
        folders = [str(self.jobs[k].output_dir) for k in members]
        if configured.get("detection"):
            evaluation = instantiate(configured.detection, delta=deltas)
        else:
            evaluation = DetectionEvaluation(deltas, instantiate(first.detector))
        self.members = members
        own = [None if self.recorded[k] is not None else self._checkpoint_callbacks(k)
               for k in members]  # fmt: skip
        callbacks = [evaluation, MemberCheckpoints(own, self._member_checkpoint)]
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

    def _checkpoint_callbacks(self, k: int) -> list[Any]:
        """Job k's checkpoint callbacks, as its solo run builds them from its config (every
        configured ModelCheckpoint); a BufferedCheckpoint holds its checkpoints until training
        ends (write_every_s=None: the group's checkpoint carries them until then)."""
        from hydra.utils import get_class, instantiate
        from lightning.pytorch.callbacks import ModelCheckpoint

        from oodmix.callbacks import BufferedCheckpoint

        own = []
        for configured in (self.jobs[k].get("callbacks") or {}).values():
            if not configured or "_target_" not in configured:
                continue
            kind = get_class(configured._target_)
            if issubclass(kind, BufferedCheckpoint):
                own.append(instantiate(configured, write_every_s=None))
            elif issubclass(kind, ModelCheckpoint):
                own.append(instantiate(configured))
        return own

    def _member_checkpoint(self, group: dict[str, Any], i: int) -> dict[str, Any]:
        """Member i's own checkpoint, cut from Lightning's dump of the group's trainer
        (oodmix.stacking.checkpoint.member_checkpoint): its row of the stacked weights under
        its network's names, its objective's state, its config and learning rate."""
        from oodmix.stacking.checkpoint import member_checkpoint

        k = self.members[i]
        weights = {
            "net." + name.removeprefix("net.layout."): value[i].clone()
            for name, value in group["state_dict"].items()
            if name.startswith("net.layout.")
        }
        loss = self.parts[k][1]
        own = {f"loss.{name}": value for name, value in loss.state_dict().items()}
        return member_checkpoint(
            group,
            i,
            len(self.members),
            {**weights, **own},
            self._run_config(k),
            float(self.jobs[k].model.lr),
        )

    def _checkpoints(self, trainer: Any) -> Any:
        from oodmix.callbacks.member_checkpoints import MemberCheckpoints

        return next(cb for cb in trainer.callbacks if isinstance(cb, MemberCheckpoints))

    def _evaluate(self, members: list[int], module: Any, data: Any, trainer: Any) -> dict[str, Any]:
        """Every member's val/* and test*/* ((K,) each) of its tested weights: its best
        epoch's (test_ckpt=best) or its last; one validation and one test for the group."""
        import torch

        from oodmix.runs.evaluation import evaluate

        if self.jobs[members[0]].test_ckpt == "best":
            checkpoints = self._checkpoints(trainer)
            # None: failed, or finished before the group was stopped (its weights stay).
            bests = [checkpoints.best_state(i) for i in range(len(members))]
            with torch.no_grad():
                for name, value in module.net.stacked_state().items():
                    rows = [
                        value[i] if best is None else best["net." + name].to(value.device)
                        for i, best in enumerate(bests)
                    ]
                    value.copy_(torch.stack(rows))  # one copy per tensor, not one per member
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
