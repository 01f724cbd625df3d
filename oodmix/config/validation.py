"""Range and type checks for the user-facing knobs, applied before anything trains or writes.

One rule per dotted key. The same rules check the composed config of a run (`validate`) and,
before Hydra starts, each value given on the command line, sweep values included
(`oodmix.config.overrides`), so a bad value in a sweep stops it before its first job.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf


class ConfigError(ValueError):
    """A config value that is not allowed; the message is one line: key, value, what is allowed."""


@dataclass(frozen=True)
class Rule:
    check: Callable[[Any], bool]
    allowed: str


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _widths(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple, ListConfig))
        and len(value) > 0
        and all(_is_int(w) and w >= 1 for w in value)
    )


RULES: dict[str, Rule] = {
    "seed": Rule(lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "beta": Rule(lambda v: _is_number(v) and v >= 0, "a finite number >= 0"),
    "delta": Rule(lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "mixup.alpha": Rule(lambda v: _is_number(v) and v > 0, "a finite number > 0"),
    "mixup.pairs": Rule(lambda v: v in ("within", "cross", "both"), "one of within, cross, both"),
    "model.hidden": Rule(_widths, "a non-empty list of integer widths >= 1, e.g. [32,32]"),
    "model.lr": Rule(lambda v: _is_number(v) and v > 0, "a finite number > 0"),
    "model.weight_decay": Rule(lambda v: _is_number(v) and v >= 0, "a finite number >= 0"),
    "model.gradient_clip_val": Rule(
        lambda v: v is None or (_is_number(v) and v > 0), "null (no clipping) or a number > 0"
    ),
    "model.gradient_clip_algorithm": Rule(lambda v: v in ("norm", "value"), "'norm' or 'value'"),
    # oodmix steps the optimiser itself (manual optimisation), where Lightning refuses these.
    "trainer.gradient_clip_val": Rule(
        lambda v: v is None, "null: oodmix steps manually, set model.gradient_clip_val instead"
    ),
    "trainer.accumulate_grad_batches": Rule(
        lambda v: v == 1, "1: oodmix takes one optimiser step per batch (raise data.batch_size)"
    ),
    "data.batch_size": Rule(lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "data.n_ood_train": Rule(lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "data.n_val": Rule(lambda v: _is_int(v) and v >= 2, "an integer >= 2"),
    "data.n_test": Rule(lambda v: _is_int(v) and v >= 2, "an integer >= 2"),
    "data.eval_batch_size": Rule(lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "data.steps_per_chunk": Rule(lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "trainer.max_epochs": Rule(lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "test_ckpt": Rule(lambda v: v in ("best", "last"), "'best' or 'last'"),
}


def check_value(key: str, value: Any) -> None:
    """Raise ConfigError when `value` breaks the rule for `key` (keys without a rule pass)."""
    rule = RULES.get(key)
    if rule is None:
        return
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=True)
    if not rule.check(value):
        shown = value if not isinstance(value, str) else repr(value)
        raise ConfigError(f"{key}={shown} is not allowed: {key} must be {rule.allowed}")


def validate(cfg: DictConfig) -> None:
    """Check every ruled key present in a composed config, and that none is left missing (???)."""
    missing = sorted(k for k in OmegaConf.missing_keys(cfg) if not k.startswith("hydra."))
    if missing:
        raise ConfigError(
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing: this config "
            f"needs a value, e.g. {missing[0]}=..."
        )
    for key in RULES:
        value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        if value is not None:
            check_value(key, value)


def check_accelerator(cfg: DictConfig) -> None:
    """trainer=gpu on a machine without one: say so in one line rather than deep in Lightning."""
    if OmegaConf.select(cfg, "trainer.accelerator") not in ("gpu", "cuda"):
        return
    import torch  # here, not at the top: the command-line checks must stay fast

    if not (torch.cuda.is_available() or torch.backends.mps.is_available()):
        raise ConfigError(
            f"trainer.accelerator={cfg.trainer.accelerator} is not allowed here: no GPU is visible "
            "to torch (torch.cuda.is_available() is False); use trainer=cpu or trainer=auto"
        )
