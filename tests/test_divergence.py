"""A run whose loss becomes non-finite fails: one line, no metrics, the sweep goes on.

The diverging config is real: model.lr=1e30 makes Adam's first step move every weight by about
1e30, after which the logits overflow and every loss term of the second step is nan.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from console_scripts import run_script

from oodmix.failures import TrainingDiverged
from oodmix.models import OODClassifier
from oodmix.runs.build import build_run
from oodmix.runs.job import train

DIVERGING = ["model.lr=1e30", "trainer.max_epochs=3", "plots=false", "logger=none"]


def test_message_names_the_non_finite_terms_and_where() -> None:
    """The parts that went non-finite are named; the total only when it alone is (overflow)."""
    error = TrainingDiverged.from_values(2, 37, ["loss", "ce", "kl"], [math.nan, 0.5, math.inf])
    assert (error.epoch, error.step, error.terms) == (2, 37, {"kl": math.inf})
    message = str(error)
    assert message.startswith("training diverged at epoch 2, step 37: train/kl=inf;")
    assert "train/ce" not in message and "\n" not in message
    assert "lower model.lr or beta" in message
    overflow = TrainingDiverged.from_values(0, 3, ["loss", "ce"], [math.inf, 1e38])
    assert overflow.terms == {"loss": math.inf}


def test_no_optimiser_step_is_taken_once_the_loss_is_non_finite(compose_config) -> None:
    """The first step is finite (the weights jump by ~1e30 but stay finite); the second step's
    loss is nan, so training stops before it: one optimiser step taken, the weights as that
    step left them (still finite, no nan from a step on a nan loss)."""
    run = build_run(compose_config(*DIVERGING))
    steps = []
    optimizer_step = torch.optim.Adam.step

    def counted_step(self, *args, **kwargs):
        steps.append(1)
        return optimizer_step(self, *args, **kwargs)

    torch.optim.Adam.step = counted_step
    try:
        with pytest.raises(TrainingDiverged) as error:
            run.trainer.fit(run.module, datamodule=run.datamodule)
    finally:
        torch.optim.Adam.step = optimizer_step
    assert (error.value.epoch, error.value.step) == (0, 1)
    assert set(error.value.terms) == {"ce", "kl", "ce_mix", "kl_mix"}
    assert len(steps) == 1 and run.trainer.global_step == 1
    weights = torch.cat([p.detach().flatten() for p in run.module.parameters()])
    assert torch.isfinite(weights).all() and weights.abs().max() > 1e28


def test_divergence_in_a_later_epoch_keeps_earlier_checkpoints(
    compose_config, tmp_path: Path, monkeypatch
) -> None:
    """A term that turns nan in epoch 1: the checkpoints of epoch 0 stay, no metrics.json."""
    step_terms = OODClassifier.step_terms

    def nan_in_epoch_1(self, batch):
        terms = step_terms(self, batch)
        if self.current_epoch == 1:
            terms["kl"] = terms["kl"] * math.nan
        return terms

    monkeypatch.setattr(OODClassifier, "step_terms", nan_in_epoch_1)
    with pytest.raises(TrainingDiverged) as error:
        train(compose_config("loss=ce_kl", "trainer.max_epochs=3", "plots=false"))
    assert (error.value.epoch, error.value.step) == (1, 16)  # the first step of epoch 1
    assert list(error.value.terms) == ["kl"]
    run_dir = tmp_path / "run"
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "best-epoch=000.ckpt",
        "last.ckpt",
    ]
    assert not (run_dir / "metrics.json").exists()


def test_diverging_run_exits_1_with_one_line_and_no_metrics(tmp_path: Path) -> None:
    """The console script: exit 1, one line on stderr naming epoch, step and terms, nothing
    on stdout (no results table), no metrics.json and no scores."""
    run_dir = tmp_path / "run"
    result = run_script("oodmix-train", [*DIVERGING, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("oodmix-train: error: training diverged at epoch 0, step 1: ")
    assert "train/ce=nan" in lines[0]
    assert not (run_dir / "metrics.json").exists()
    assert not (run_dir / "scores.npz").exists()


@pytest.mark.slow  # trains two runs
def test_diverging_job_of_a_multirun_fails_alone(tmp_path: Path) -> None:
    """Two jobs: the diverging one writes failure.json with the reason, the other finishes;
    the report counts one failure and the sweep exits 1 with its summary line."""
    sweep = tmp_path / "sweep"
    result = run_script(
        "oodmix-train",
        ["-m", "model.lr=1e30,0.01", "trainer.max_epochs=2", "plots=false", "logger=none",
         f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    record = json.loads((sweep / "0" / "failure.json").read_text())
    assert record["type"] == "TrainingDiverged"
    assert record["message"].startswith("training diverged at epoch 0, step 1: ")
    assert not (sweep / "0" / "metrics.json").exists()
    assert json.loads((sweep / "1" / "metrics.json").read_text())["test/f1"] > 0.5
    assert "3 jobs" not in (table := (sweep / "table.md").read_text())
    assert "2 jobs, 1 finished, 1 failed." in table
    assert f"oodmix-train: 1 of 2 jobs failed: see {sweep / 'table.md'}" in result.stderr
