"""trainer=ddp_cpu end to end: 2 processes (gloo) train in step, and the distributed evaluation
counts every point of an odd-sized evaluation set exactly once, so its metrics equal a
single-process evaluation of the same weights done here by hand."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from oodmix.callbacks import DetectionEvaluation
from oodmix.config.paths import group_options
from oodmix.runs.job import train

# Odd sizes: a DistributedSampler would pad 1001 points to 1002 on 2 processes.
N_VAL, N_TEST = 999, 1001
OVERRIDES = [
    "trainer=ddp_cpu",
    "trainer.max_epochs=2",
    "plots=false",
    f"data.n_val={N_VAL}",
    f"data.n_test={N_TEST}",
]


class RankProbe(L.Callback):
    """Test-only callback, run in every process: checks that the processes hold the same
    weights after fitting, and writes (rank 0) what each process evaluated on the test set:
    its point count and its ThresholdDetection counts (the metric's unsynced local states)."""

    def __init__(self, output: str) -> None:
        self.output = Path(output)
        self.local: dict[str, int] = {}

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        flat = torch.cat([p.detach().reshape(-1) for p in pl_module.parameters()])
        every = trainer.strategy.all_gather(flat)  # (world_size, n_parameters)
        in_step = all(torch.equal(every[0], row) for row in every)
        assert in_step, "the DDP processes hold different weights after fitting"

    def on_test_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if dataloader_idx != 0:  # the "test" set; test_near/test_far are not probed
            return
        (evaluation,) = [cb for cb in trainer.callbacks if isinstance(cb, DetectionEvaluation)]
        counts = evaluation.metrics["test"]["id"]  # updated before this hook (callback order)
        self.local["points"] = self.local.get("points", 0) + batch["x"].shape[0]
        self.local.update({k: int(getattr(counts, k)) for k in ("tp", "fp", "fn", "tn")})

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        keys = ("points", "tp", "fp", "fn", "tn")
        local = torch.tensor([self.local[k] for k in keys])
        every = trainer.strategy.all_gather(local).reshape(-1, len(keys))
        if trainer.is_global_zero:
            record = {
                "world_size": trainer.world_size,
                "per_rank": [dict(zip(keys, row.tolist())) for row in every],
            }
            self.output.write_text(json.dumps(record))


_RUN: dict[str, object] = {}


@pytest.fixture
def ddp_run(compose_config, tmp_path_factory):
    """(metrics, cfg, run folder, probe record) of one short trainer=ddp_cpu run, trained once."""
    if not _RUN:
        probe = tmp_path_factory.mktemp("probe") / "probe.json"
        cfg = compose_config(
            *OVERRIDES,
            # The probe goes in as one more callback, by the name pytest imported this file as.
            f"+callbacks.rank_probe._target_={RankProbe.__module__}.RankProbe",
            f"+callbacks.rank_probe.output={probe}",
            run="ddp_cpu",
        )
        metrics = train(cfg)
        _RUN.update(
            metrics=metrics,
            cfg=cfg,
            run=Path(cfg.output_dir),
            probe=json.loads(probe.read_text()),
        )
    return _RUN["metrics"], _RUN["cfg"], _RUN["run"], _RUN["probe"]


# ---------------------------------------------------------------------------------------------
# The single-process evaluation: the saved weights, the datamodule's own split, counts by hand.


def single_process_scores(cfg, run: Path, split: str) -> tuple[list[float], list[bool], list]:
    """Max softmax probability of each point of `split`, by the best checkpoint's network in
    this process, with the points' ID truth and (ID points') classes."""
    datamodule = instantiate(cfg.data)
    datamodule.setup("test")  # no trainer: the whole split, no sharding
    eval_set = getattr(datamodule.splits, split)
    net = instantiate(
        cfg.model.net, in_features=datamodule.num_features, num_classes=datamodule.num_classes
    )
    (checkpoint,) = (run / "checkpoints").glob("best-*.ckpt")
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    net.load_state_dict(
        {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
    )
    with torch.no_grad():
        logits = net.eval()(eval_set.x)
    scores = logits.softmax(-1).max(-1).values.tolist()
    correct = (logits.argmax(-1) == eval_set.y).tolist()
    return scores, eval_set.is_id.tolist(), [c for c, i in zip(correct, eval_set.is_id) if i]


def counts_at(scores: list[float], is_id: list[bool], delta: float) -> dict[str, int]:
    """tp, fp, fn, tn of "predicted ID when score >= delta", ID positive, one point at a time."""
    counts = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    for score, truth in zip(scores, is_id, strict=True):
        predicted = score >= delta
        key = ("tp" if truth else "fp") if predicted else ("fn" if truth else "tn")
        counts[key] += 1
    return counts


def f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


@pytest.mark.slow
def test_ddp_cpu_test_metrics_equal_single_process_evaluation(ddp_run):
    metrics, cfg, run, _ = ddp_run
    scores, is_id, correct = single_process_scores(cfg, run, "test")
    assert len(scores) == N_TEST
    c = counts_at(scores, is_id, cfg.delta)
    assert metrics["test/f1"] == pytest.approx(f1(c["tp"], c["fp"], c["fn"]), rel=1e-6)
    assert metrics["test/precision"] == pytest.approx(
        c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 0.0, rel=1e-6
    )
    assert metrics["test/recall"] == pytest.approx(c["tp"] / (c["tp"] + c["fn"]), rel=1e-6)
    # OOD positive: its tp is the tn above, so a padded (repeated) OOD point would show here.
    assert metrics["test/f1_ood"] == pytest.approx(f1(c["tn"], c["fn"], c["fp"]), rel=1e-6)
    assert metrics["test/acc"] == pytest.approx(sum(correct) / len(correct), rel=1e-6)
    # The threshold tuned by the validation pass (another set of processes) reaches the test.
    tuned = counts_at(scores, is_id, metrics["val/delta_best"])
    assert metrics["test/f1_tuned"] == pytest.approx(
        f1(tuned["tp"], tuned["fp"], tuned["fn"]), rel=1e-6
    )


@pytest.mark.slow
def test_ddp_cpu_validation_of_the_best_weights_equals_single_process(ddp_run):
    metrics, cfg, run, _ = ddp_run
    scores, is_id, _ = single_process_scores(cfg, run, "val")
    assert len(scores) == N_VAL
    c = counts_at(scores, is_id, cfg.delta)
    assert metrics["val/f1"] == pytest.approx(f1(c["tp"], c["fp"], c["fn"]), rel=1e-6)


@pytest.mark.slow
def test_ddp_cpu_counts_every_test_point_exactly_once(ddp_run):
    """Two processes, shards of 501 and 500 points (no padding), whose ThresholdDetection
    counts add up to the single-process counts."""
    _, cfg, run, probe = ddp_run
    assert probe["world_size"] == 2
    per_rank = probe["per_rank"]
    assert [r["points"] for r in per_rank] == [501, 500]
    for r in per_rank:
        assert r["tp"] + r["fp"] + r["fn"] + r["tn"] == r["points"]
    scores, is_id, _ = single_process_scores(cfg, run, "test")
    summed = {k: sum(r[k] for r in per_rank) for k in ("tp", "fp", "fn", "tn")}
    assert summed == counts_at(scores, is_id, cfg.delta)


@pytest.mark.slow
def test_ddp_cpu_run_writes_its_files_once(ddp_run):
    """metrics.json (rank 0) holds what train() returned; scores.npz, written by rank 0 over the
    whole test set, holds the scores of the single-process evaluation."""
    metrics, cfg, run, _ = ddp_run
    written = json.loads((run / "metrics.json").read_text())
    assert written == pytest.approx(metrics)
    scores, _, _ = single_process_scores(cfg, run, "test")
    saved = np.load(run / "scores.npz")["test_score"]
    np.testing.assert_allclose(saved, scores, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Fast checks of the pieces.


def test_trainer_group_lists_the_distributed_options():
    assert {"ddp", "ddp_cpu"} <= set(group_options("trainer"))


def test_ddp_configs_compose(compose_config):
    cpu = compose_config("trainer=ddp_cpu").trainer
    assert (cpu.accelerator, cpu.devices) == ("cpu", 2)
    assert cpu.strategy.process_group_backend == "gloo"
    assert cpu.strategy.start_method == "fork"
    gpu = compose_config("trainer=ddp").trainer
    assert (gpu.accelerator, gpu.devices, gpu.num_nodes, gpu.strategy) == ("gpu", -1, 1, "ddp")


def _fake_trainer(callback_metrics: dict) -> SimpleNamespace:
    return SimpleNamespace(
        datamodule=SimpleNamespace(num_classes=2, test_set_names=["test"]),
        callback_metrics=callback_metrics,
        progress_bar_metrics={},
        loggers=[],
        current_epoch=0,
        global_step=0,
    )


def test_validation_leaves_the_exact_tuned_threshold_in_callback_metrics():
    """val/delta_best goes to callback_metrics in float64, not publish's float32."""
    trainer = _fake_trainer({})
    module = SimpleNamespace(device=torch.device("cpu"))
    evaluation = DetectionEvaluation(delta=0.8)
    evaluation.setup(trainer, module, "fit")
    # Scores (max softmax) that float32 cannot hold exactly as float64 values.
    logits = torch.tensor([[0.0, 1.1], [0.3, 0.0], [2.7, 0.0], [0.0, 0.05]], dtype=torch.float64)
    batch = {"is_id": torch.tensor([True, False, True, False]), "y": torch.tensor([1, -1, 0, -1])}
    evaluation._update("val", {"logits": logits}, batch)
    evaluation._log("val", trainer)
    logged = trainer.callback_metrics["val/delta_best"]
    assert logged.dtype == torch.float64
    assert float(logged) == evaluation.delta_best


def test_a_fresh_callback_takes_the_tuned_threshold_from_callback_metrics():
    """What a test stage in new processes sees: the callback object never ran the validation,
    but the value came back to the main process."""
    delta_best = 0.7310585786300049  # not a float32 value
    trainer = _fake_trainer({"val/delta_best": torch.tensor(delta_best, dtype=torch.float64)})
    evaluation = DetectionEvaluation(delta=0.8, detector=SimpleNamespace(fixed_threshold=False))
    evaluation.setup(trainer, SimpleNamespace(device=torch.device("cpu")), "test")
    assert evaluation.delta_best == delta_best
    assert evaluation.threshold == delta_best
    # Its own value, when it has one, wins.
    evaluation.delta_best = 0.5
    evaluation.setup(trainer, SimpleNamespace(device=torch.device("cpu")), "test")
    assert evaluation.delta_best == 0.5
