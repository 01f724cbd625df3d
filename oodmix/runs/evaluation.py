"""The tested weights of a run, evaluated on its validation and test sets."""

from __future__ import annotations

from typing import Any

from oodmix.runs.build import monitoring_checkpoints


def logged(trainer: Any, prefix: str) -> dict[str, Any]:
    """The trainer's published metrics whose names start with `prefix` (floats for a run;
    one value per member, (K,) tensors, for a stack of runs)."""
    return {
        name: value if value.dim() else float(value)
        for name, value in trainer.callback_metrics.items()
        if name.startswith(prefix)
    }


def tested_checkpoint(trainer: Any, which: str) -> str | None:
    """The weights the test set sees. "last": those in memory after fitting (the final epoch).
    "best": the file of the checkpoint callback that monitors val/f1 (validation data only)."""
    if which == "last":
        return None
    return monitoring_checkpoints(trainer)[0].best_model_path


def evaluate(trainer: Any, module: Any, datamodule: Any, ckpt_path: str | None) -> dict[str, Any]:
    """val/* and test*/* of the tested weights (those of `ckpt_path`, or the module's own).

    Validate the very weights that are tested: their val/* is what sweepers optimise, and
    their validation pass sets the tuned threshold (val/delta_best) the test then uses.
    """
    trainer.validate(module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
    metrics: dict[str, Any] = logged(trainer, "val/")
    trainer.test(module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
    metrics.update(logged(trainer, "test"))  # test/*, and test_near/*, test_far/* if present
    return metrics
