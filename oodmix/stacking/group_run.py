"""Train one group of a sweep's jobs (see oodmix.stacking.groups) and write each job's folder.

`train_group` is what the stacked launcher calls for a group: it receives the jobs' composed
configs (each with its Hydra section, its folder already made and recorded in
hydra.runtime.output_dir) and returns, per job, the value a sweeper optimises, or None for a
job that failed (its folder then holds failure.json, as with any launcher).

A group of K > 1 jobs is trained as one model (oodmix.stacking): each member's data, initial
weights, batches and mixing draws are its solo run's, built from its own config; the
members' best weights are kept in memory (MemberSelection). When training ends, each member
gets what its solo run writes: its weights are evaluated by the ordinary evaluation
(validation and test passes with the run's own callbacks and logger: metrics.json,
scores.npz, the confidence map, the logger's files), checkpoints/last.ckpt and
best-epoch=NNN.ckpt (read by load_detector and oodmix-predict), and its per-epoch history in
its logger.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from oodmix.config.job import job_config


def train_group(configs: Sequence[DictConfig]) -> list[float | None]:
    """Train the jobs of one group; each job's folder gets what a solo run writes."""
    from oodmix.runs.job import run_job_task

    if len(configs) == 1:
        HydraConfig.instance().set_config(configs[0])
        return [run_job_task(job_config(configs[0]))]
    return StackedGroup(configs).run()


class StackedGroup:
    """K jobs of one group trained as one model, then each written as its solo run would be."""

    def __init__(self, configs: Sequence[DictConfig]) -> None:
        self.configs = list(configs)
        self._registered: dict[int, Any] = {}  # job -> Hydra's registered config (_as_job)
        self.jobs = []
        for k, cfg in enumerate(self.configs):
            # Resolved while job k is Hydra's current job (`${hydra:...}` values are its own).
            self._as_job(k)
            job = job_config(cfg)
            OmegaConf.resolve(job)
            self.jobs.append(job)
        self.values: list[float | None] = [None] * len(configs)

    def _as_job(self, k: int) -> None:
        """Make job k the current job: what Hydra's config and oodmix's helpers read.

        HydraConfig.set_config copies the job's Hydra section (tens of milliseconds), and a job
        becomes the current one several times: the copy is made once per job and registered
        again afterwards, as the stacked launcher restores a registered config."""
        hydra_config = HydraConfig.instance()
        if k not in self._registered:
            hydra_config.set_config(self.configs[k])
            self._registered[k] = hydra_config.cfg
        hydra_config.cfg = self._registered[k]

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
        """Train the members as one model, then write each job's files (`_finish`).

        The group's checkpoint (oodmix.stacking.checkpoint: <first job>/checkpoints/group.ckpt
        and, on SIGTERM or Ctrl+C, group-interrupted.ckpt) is written while it trains and
        resumed from when the group finds one (a sweep continued with
        hydra.launcher.resume=true); a stop prints the command that continues the sweep and
        exits 130 or 143, as a solo run does. A member whose folder holds metrics.json (written
        before the sweep was stopped) keeps it. The checkpoint goes once every member is done.
        """
        from hydra.utils import instantiate
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        from oodmix.checkpoints import stop_gracefully_on_signals
        from oodmix.models import OODClassifier
        from oodmix.stacking.checkpoint import GroupCheckpoint, recorded_value
        from oodmix.stacking.data import MemberStackDataModule
        from oodmix.stacking.networks import StackedNetwork
        from oodmix.stacking.objectives import StackedObjective
        from oodmix.stacking.selection import MemberSelection

        first = self.jobs[members[0]]
        datamodules = [self.parts[k][0] for k in members]
        data = MemberStackDataModule(datamodules)
        network = StackedNetwork([self.parts[k][2] for k in members])
        objective = StackedObjective([self.parts[k][1] for k in members])
        data.request_parts(objective.requires)
        rates = [float(self.jobs[k].model.lr) for k in members]
        module = OODClassifier(
            network,
            objective,
            instantiate(first.model.optimizer),
            # The first member's settings, which a continued sweep's are compared with.
            config=OmegaConf.to_container(first, resolve=True),
            gradient_clip_val=first.model.get("gradient_clip_val"),
            gradient_clip_algorithm=first.model.get("gradient_clip_algorithm", "norm"),
            member_rates=rates if len(set(rates)) > 1 else None,
        )
        selection = MemberSelection(
            instantiate(first.detector), [float(self.jobs[k].delta) for k in members]
        )
        group = GroupCheckpoint([self.configs[k] for k in members])
        last = (first.get("callbacks") or {}).get("last_checkpoint") or {}
        trainer = instantiate(
            first.trainer,
            callbacks=[selection, *group.callbacks(float(last.get("write_every_s", 10)))],
            logger=False,
            enable_progress_bar=False,
            enable_checkpointing=True,  # the group's own checkpoint callbacks, no default one
        )
        self._as_job(members[0])
        resume_from = group.resume_from()
        with stop_gracefully_on_signals() as stop:
            try:
                try:
                    trainer.fit(module, datamodule=data, ckpt_path=resume_from)
                except Exception as error:  # every member failed (or a bug): each job records it
                    for k in members:
                        self._fail(k, module.failed_members.get(members.index(k), error))
                    group.remove()
                    return
                for i, k in enumerate(members):
                    if stop.signum is not None:  # noted while a member was evaluated
                        raise SIGTERMException()
                    recorded = recorded_value(self.configs[k])
                    if recorded is not None:  # written before the sweep was stopped
                        self.values[k] = recorded[0]
                        continue
                    if i in module.failed_members:
                        self._fail(k, module.failed_members[i])
                        continue
                    try:
                        self._finish(k, i, module, selection, trainer)
                    except Exception as error:
                        self._fail(k, error)
                if stop.signum is not None:  # the group is written; the sweep stops here
                    raise SIGTERMException()
            except SIGTERMException:
                group.exit_interrupted(trainer, stop.name or "SIGTERM")
        group.remove()

    def _finish(
        self, k: int, i: int, group_module: Any, selection: Any, group_trainer: Any
    ) -> None:
        """Job k (member i of the stack): its checkpoints, logs, evaluation and metrics.json,
        as its solo run writes them."""
        from hydra.utils import instantiate

        from oodmix.models import OODClassifier
        from oodmix.runs.build import build_trainer
        from oodmix.runs.evaluation import evaluate
        from oodmix.runs.results import report, write_metrics

        self._as_job(k)
        cfg = self.jobs[k]
        datamodule, loss, net = self.parts[k]
        run_config = OmegaConf.to_container(cfg, resolve=True)
        module = OODClassifier(
            net,
            loss,
            instantiate(cfg.model.optimizer),  # the job's own, as its solo run's module has
            config=run_config,
            gradient_clip_val=cfg.model.get("gradient_clip_val"),
            gradient_clip_algorithm=cfg.model.get("gradient_clip_algorithm", "norm"),
        )
        trainer = build_trainer(cfg)
        last_epoch = group_trainer.current_epoch - 1
        self._log_history(trainer, [*selection.history, *group_module.member_history], i)
        network = group_module.net
        net.load_state_dict(network.member_state_dict(i))
        folder = Path(cfg.output_dir) / "checkpoints"
        _save(module, folder / "last.ckpt", last_epoch, group_trainer.global_step)
        best_epoch = int(selection.best_epoch[i])
        if cfg.callbacks.get("model_checkpoint"):
            net.load_state_dict(selection.member_best_state(i))
            _save(module, folder / f"best-epoch={best_epoch:03d}.ckpt", best_epoch, None)
        if cfg.test_ckpt == "last":
            net.load_state_dict(network.member_state_dict(i))
        metrics = evaluate(trainer, module, datamodule, None)
        self.values[k] = report(cfg, write_metrics(cfg, module.loss, metrics))

    @staticmethod
    def _log_history(trainer: Any, rows: list[tuple[int, int, dict[str, Any]]], i: int) -> None:
        """Member i's per-epoch val/f1 and train/* into its run's loggers, epoch by epoch in
        the order its solo run logs them (an epoch's validation, then its loss terms)."""
        for epoch, step, values in sorted(rows, key=lambda row: (row[0], "val/f1" not in row[2])):
            scalars = {name: float(v[i]) for name, v in values.items()}
            for logger in trainer.loggers:
                logger.log_metrics({**scalars, "epoch": epoch}, step=step)
        for logger in trainer.loggers:
            logger.save()


def _save(module: Any, path: Path, epoch: int, step: int | None) -> None:
    """A checkpoint with the module's weights and run config (what load_detector reads),
    written atomically."""
    import lightning as L

    from oodmix.checkpoints import AtomicCheckpointIO

    checkpoint = {
        "epoch": epoch,
        "global_step": step if step is not None else 0,
        "pytorch-lightning_version": L.__version__,
        "state_dict": module.state_dict(),
        "hyper_parameters": dict(module.hparams),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    AtomicCheckpointIO().save_checkpoint(checkpoint, path)
