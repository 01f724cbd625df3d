"""The schema of the user-facing config: one rule per key, saying what values are allowed.

A key is a dotted path as on the command line; `[]` stands for every element of a list
(`data.disks[].radius` checks the radius of each disk). Values are checked after Hydra has
resolved interpolations, so `beta=${delta}` is checked as a number. Keys not listed here are
either structure (`_target_`, interpolated copies such as `data.seed`) or passed straight to a
library that checks them itself (callbacks, loggers, Hydra); `EXEMPT` names them, and a test
holds every key of every shipped config to one or the other.

A list of allowed values that another module owns (the MLP's activations, Lightning's
precision settings and accelerators, DetectionEvaluation's epoch metrics) is read from that
module when a value of such a key is checked: importing torch or Lightning takes seconds,
which a command line without such a key should not wait for. Those rules are `deferred`:
validation.validate runs them after the others.
"""

from __future__ import annotations

import functools
import math
import os
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from oodmix.detectors.thresholds import DELTA_RANGE, is_probability_threshold


@dataclass(frozen=True)
class Rule:
    """What a key accepts: `check(value)`, and `allowed`, the words for it in a refusal
    ("a finite number >= 0"), or a function that returns them (read from the list's owner)."""

    check: Callable[[Any], bool]
    allowed: str | Callable[[], str]
    #: The check imports the module that owns its list (torch or Lightning: seconds).
    deferred: bool = False

    def describe(self) -> str:
        return self.allowed() if callable(self.allowed) else self.allowed


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool, not a string)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_at_least(low: int) -> Rule:
    return Rule(lambda v: is_int(v) and v >= low, f"an integer >= {low}")


def _number_above(low: float) -> Rule:
    return Rule(lambda v: is_number(v) and v > low, f"a finite number > {low:g}")


def _number_at_least(low: float) -> Rule:
    return Rule(lambda v: is_number(v) and v >= low, f"a finite number >= {low:g}")


def _one_of(*options: Any) -> Rule:
    shown = ", ".join(str(o) for o in options)
    return Rule(lambda v: not isinstance(v, bool) and v in options, f"one of {shown}")


def _one_of_owned(options: Callable[[], Sequence[Any]]) -> Rule:
    """One of a list that another module owns, read from it when a value is checked."""
    return Rule(
        lambda v: not isinstance(v, bool) and v in options(),
        # 64 and "64" are both allowed, and read the same: each is named once.
        lambda: (
            "one of " + ", ".join(dict.fromkeys("null" if o is None else str(o) for o in options()))
        ),
        deferred=True,
    )


def activations() -> list[str]:
    """The names model.activation accepts: the MLP's own table (imports torch)."""
    from oodmix.models.mlp import ACTIVATIONS

    return sorted(ACTIVATIONS)


def _epoch_metrics_rule() -> Rule:
    """callbacks.detection.epoch_metrics: the names DetectionEvaluation itself accepts, checked by
    its own function (imports Lightning), so that a bad name in a sweep is refused before the
    first job rather than failing every job."""

    def check(value: Any) -> bool:
        from oodmix.callbacks.detection_evaluation import epoch_metric_names

        if not _is_list(value):
            return False
        try:
            epoch_metric_names(value)
        except ValueError:
            return False
        return True

    def allowed() -> str:
        from oodmix.callbacks.detection_evaluation import epoch_metrics_allowed

        return epoch_metrics_allowed()

    return Rule(check, allowed, deferred=True)


def _literals(annotation: Any) -> list[Any]:
    """The values of the Literal types in an annotation (None for an Optional one)."""
    if annotation is type(None):
        return [None]
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    return [value for arg in typing.get_args(annotation) for value in _literals(arg)]


@functools.cache  # read once per process: every job's config is checked against it
def precisions() -> list[Any]:
    """The precision settings Lightning's Trainer accepts, read from the annotation of its
    `precision` argument (Lightning keeps the list in private names; the signature is public)."""
    import inspect

    from lightning.pytorch import Trainer

    return _literals(inspect.signature(Trainer).parameters["precision"].annotation)


@functools.cache  # read once per process: every job's config is checked against it
def accelerators() -> list[str]:
    """The accelerator names Lightning's Trainer accepts: its registry of accelerators, and the
    two it resolves itself, "auto" and "gpu" (no public name holds those two)."""
    from lightning.pytorch.accelerators import AcceleratorRegistry

    return ["auto", "gpu", *sorted(AcceleratorRegistry.available_accelerators())]


def _is_list(value: Any, length: int | None = None) -> bool:
    return isinstance(value, (list, tuple)) and (length is None or len(value) == length)


_BOOL = Rule(lambda v: isinstance(v, bool), "true or false")
_POINT = Rule(lambda v: _is_list(v, 2) and all(map(is_number, v)), "two numbers, e.g. [0.0, 1.5]")
_DIGITS = Rule(
    lambda v: _is_list(v) and len(v) > 0 and all(is_int(d) and 0 <= d <= 9 for d in v),
    "a non-empty list of digits 0-9, e.g. [0,1,2]",
)
_ANGLE = Rule(
    lambda v: is_number(v) and 0 <= v <= 2 * math.pi + 1e-9, "an angle in radians in [0, 2 pi]"
)
_FILE = Rule(lambda v: isinstance(v, str) and os.path.isfile(v), "the path of an existing file")

#: The progress bars a run can show (oodmix.console).
PROGRESS_CHOICES = ("auto", "rich", "tqdm", "none")

RULES: dict[str, Rule] = {
    # Root knobs
    "seed": _int_at_least(0),
    "beta": _number_at_least(0),
    # Stated by its owner (a probability score's threshold), shared with oodmix-predict.
    "delta": Rule(is_probability_threshold, DELTA_RANGE),
    "mixup.alpha": _number_above(0),
    "mixup.pairs": Rule(
        lambda v: v in (None, "within", "cross", "both"),
        "null (the objective's own: within for ce_kl_mixup, cross for mixoe), within, cross "
        "or both",
    ),
    "test_ckpt": Rule(lambda v: v in ("best", "last"), "'best' or 'last'"),
    "optimized_metric": Rule(
        lambda v: isinstance(v, str) and v.startswith("val/"),
        "a validation metric, val/<name>, e.g. val/f1",
    ),
    "plots": _BOOL,
    "progress": _one_of(*PROGRESS_CHOICES),
    "quiet": Rule(lambda v: isinstance(v, bool) or v == "auto", "auto, true or false"),
    "ckpt_path": Rule(
        lambda v: v is None or _FILE.check(v), "null or the path of an existing checkpoint file"
    ),
    # Model and optimiser
    "model.hidden": Rule(
        lambda v: _is_list(v) and len(v) > 0 and all(is_int(w) and w >= 1 for w in v),
        "a non-empty list of integer widths >= 1, e.g. [32,32]",
    ),
    "model.activation": _one_of_owned(activations),
    "model.lr": _number_above(0),
    "model.weight_decay": _number_at_least(0),
    "model.gradient_clip_val": Rule(
        lambda v: v is None or (is_number(v) and v > 0), "null (no clipping) or a number > 0"
    ),
    "model.gradient_clip_algorithm": Rule(lambda v: v in ("norm", "value"), "'norm' or 'value'"),
    # Batches (every dataset)
    "data.batch_size": _int_at_least(1),
    "data.ood_batch_size": Rule(
        lambda v: v is None or (is_int(v) and v >= 1), "null (as many as ID) or an integer >= 1"
    ),
    "data.eval_batch_size": _int_at_least(1),
    "data.drop_last": _BOOL,
    "data.steps_per_chunk": _int_at_least(1),
    # Synthetic 2-D datasets
    "data.box": Rule(
        lambda v: _is_list(v, 2) and all(map(is_number, v)) and v[0] < v[1],
        "[low, high] with low < high: the square [low, high]^2",
    ),
    "data.n_ood_train": _int_at_least(1),
    "data.n_val": _int_at_least(2),
    "data.n_test": _int_at_least(2),
    "data.n_shift": _int_at_least(1),
    "data.near_margin": _number_above(0),
    "data.far_margin": _number_above(0),
    "data.disks": Rule(lambda v: _is_list(v) and len(v) >= 2, "a list of at least 2 disks"),
    "data.disks[].center": _POINT,
    "data.disks[].radius": _number_above(0),
    "data.disks[].n_train": _int_at_least(1),
    "data.classes": Rule(lambda v: _is_list(v) and len(v) >= 2, "a list of at least 2 classes"),
    "data.classes[].n_train": _int_at_least(1),
    "data.classes[].region.center": _POINT,
    "data.classes[].region.radius": _number_above(0),
    "data.classes[].region.r_in": _number_at_least(0),
    "data.classes[].region.r_out": _number_above(0),
    "data.classes[].region.theta_start": _ANGLE,
    "data.classes[].region.theta_end": _ANGLE,
    # Digits
    "data.id_classes": Rule(
        lambda v: _DIGITS.check(v) and len(v) >= 2, "a list of at least 2 digits 0-9, e.g. [0,1]"
    ),
    "data.ood_train_classes": _DIGITS,
    "data.ood_test_classes": _DIGITS,
    "data.fractions": Rule(
        lambda v: (
            _is_list(v, 3) and all(is_number(f) and f > 0 for f in v) and abs(sum(v) - 1) < 1e-6
        ),
        "three positive fractions (train, val, test) summing to 1",
    ),
    # Your own data
    "data.train": _FILE,
    "data.val": _FILE,
    "data.test": _FILE,
    # Objectives and detectors
    "loss.beta": _number_at_least(0),
    "loss.pairs": Rule(
        lambda v: v in (None, "within", "cross", "both"), "null, within, cross or both"
    ),
    "loss.lam": _number_at_least(0),
    "loss.weight": _number_at_least(0),
    "loss.margin_in": Rule(is_number, "a finite number"),
    "loss.margin_out": Rule(is_number, "a finite number"),
    "detector.temperature": _number_above(0),
    # Trainer (the keys the shipped trainer configs set, and common additions)
    "trainer.accelerator": _one_of_owned(accelerators),
    "trainer.devices": Rule(
        lambda v: (
            (is_int(v) and (v >= 1 or v == -1))
            or v == "auto"
            or (_is_list(v) and len(v) > 0 and all(is_int(d) and d >= 0 for d in v))
        ),
        "an integer >= 1, -1 (all), 'auto' or a list of device indices",
    ),
    "trainer.num_nodes": _int_at_least(1),
    "trainer.max_epochs": _int_at_least(1),
    "trainer.max_steps": Rule(lambda v: is_int(v) and v >= -1, "an integer >= 1, or -1 (no limit)"),
    "trainer.check_val_every_n_epoch": _int_at_least(1),
    "trainer.num_sanity_val_steps": Rule(
        lambda v: is_int(v) and v >= -1, "an integer >= 0, or -1 (all)"
    ),
    "trainer.log_every_n_steps": _int_at_least(1),
    "trainer.enable_progress_bar": _BOOL,
    "trainer.enable_model_summary": _BOOL,
    "trainer.deterministic": Rule(lambda v: v in (True, False, "warn"), "true, false or 'warn'"),
    "trainer.precision": _one_of_owned(precisions),
    # oodmix steps the optimiser itself (manual optimisation), where Lightning refuses these.
    "trainer.gradient_clip_val": Rule(
        lambda v: v is None, "null: oodmix steps manually, set model.gradient_clip_val instead"
    ),
    "trainer.accumulate_grad_batches": Rule(
        lambda v: v == 1, "1: oodmix takes one optimiser step per batch (raise data.batch_size)"
    ),
    # Callbacks: this one key is checked before a sweep's first job; the other callback
    # arguments are checked by their classes when built (see EXEMPT).
    "callbacks.detection.epoch_metrics": _epoch_metrics_rule(),
}

#: Keys that are not values a user tunes, or that a library checks itself. Patterns: a key
#: equal to an entry, or below an entry ending in ".", or ending with an entry starting with ".".
EXEMPT = (
    "._target_",  # which class: a wrong name fails with Hydra's own error
    "._partial_",
    "output_dir",  # Hydra's run folder
    "data.seed",  # interpolations of root knobs, checked there
    "data.mixup",
    "data.mixup.",
    "mixup",  # null switches mixup off
    "model.net.",  # interpolates model.hidden / model.activation
    "model.optimizer.",  # interpolates model.lr / model.weight_decay
    "callbacks.",  # Lightning callbacks: their own argument checks
    "logger.",  # Lightning loggers: their own argument checks
    "trainer.default_root_dir",
    "trainer.strategy",  # strings or strategy objects: Lightning's registry checks them
    "trainer.strategy.",
    "trainer.plugins",
    "trainer.plugins.",
    "trainer.sync_batchnorm",
)


def is_exempt(key: str) -> bool:
    """Whether a concrete key (list indices as `[]`) is in EXEMPT."""
    for entry in EXEMPT:
        if entry.startswith(".") and key.endswith(entry):
            return True
        if entry.endswith(".") and key.startswith(entry):
            return True
        if key == entry:
            return True
    return False
