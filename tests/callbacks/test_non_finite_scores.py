"""Evaluation refuses non-finite scores: no metric is computed and no file written from them.

Training itself stops at a non-finite loss; these runs reach evaluation with bad weights the
other ways: weights that are not finite (as loaded from a bad checkpoint), and a score that
overflows with finite weights (energy of huge logits).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from oodmix.metrics import NonFiniteScores
from oodmix.runs.build import build_run


def fitted(compose_config, *overrides: str, run: str):
    """A run of one epoch, trained; its trainer then evaluates whatever weights it is given."""
    cfg = compose_config("trainer.max_epochs=1", *overrides, run=run)
    built = build_run(cfg)
    built.trainer.fit(built.module, datamodule=built.datamodule)
    return built, Path(cfg.output_dir)


def poison(module, value: float) -> None:
    """Set the first layer's weights to `value` (nan), or scale every layer's by it."""
    linears = [m for m in module.net.modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        if value != value:  # nan
            linears[0].weight.fill_(value)
        else:
            for linear in linears:
                linear.weight.mul_(value)


def test_validation_refuses_nan_scores(compose_config) -> None:
    built, _ = fitted(compose_config, "plots=false", run="nan_val")
    poison(built.module, float("nan"))
    with pytest.raises(NonFiniteScores) as raised:
        built.trainer.validate(built.module, datamodule=built.datamodule, verbose=False)
    assert str(raised.value).startswith("2000 of 2000 val scores are not finite")
    assert "val/auroc" not in built.trainer.callback_metrics


def test_test_refuses_overflowing_energy_and_writes_no_scores(compose_config) -> None:
    """detector=energy with finite weights whose logits overflow float32 (each of the three
    layers scaled by 1e15): the energy is infinite on many points. The test set is refused
    before any metric, so SavedScores never runs: no scores.npz."""
    built, run = fitted(compose_config, "detector=energy", "plots=false", run="energy_inf")
    poison(built.module, 1e15)
    assert all(torch.isfinite(p).all() for p in built.module.parameters())
    with pytest.raises(NonFiniteScores, match=r"^\d+ of 2000 test scores are not finite"):
        built.trainer.test(built.module, datamodule=built.datamodule, verbose=False)
    assert not (run / "scores.npz").exists()
    assert "test/f1" not in built.trainer.callback_metrics


@pytest.mark.parametrize(
    ("overrides", "refused", "not_written"),
    [
        (
            ["callbacks.detection=null", "callbacks.model_checkpoint=null", "plots=false"],
            "val",
            "scores.npz",
        ),
        (
            [
                "callbacks.detection=null",
                "callbacks.model_checkpoint=null",
                "callbacks.saved_scores=null",
                "plots=true",
            ],
            "confidence map grid",
            "confidence_map.png",
        ),
    ],
    ids=["saved_scores", "confidence_map"],
)
def test_artefact_callbacks_refuse_on_their_own(compose_config, overrides, refused, not_written):
    """Without DetectionEvaluation, SavedScores and ConfidenceMap check their own scores."""
    built, run = fitted(compose_config, *overrides, "test_ckpt=last", run=refused.split()[0])
    poison(built.module, float("nan"))
    with pytest.raises(NonFiniteScores, match=f"^[0-9]+ of [0-9]+ {refused} scores"):
        built.trainer.test(built.module, datamodule=built.datamodule, verbose=False)
    assert not (run / not_written).exists()
