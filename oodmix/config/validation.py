"""Type, range and consistency checks of the user-facing config, before anything trains or writes.

The rules (oodmix.config.rules) check the composed config of a run (`validate`) and, before
Hydra starts, each value given on the command line, sweep values included
(`oodmix.config.overrides`), so a bad value in a sweep stops it before its first job.
Cross-key checks (oodmix.config.consistency) run on the composed config.

What needs nothing imported runs first, so that most refusals come at once; the rules and
checks that read their owner's list or call a class's own check (torch, Lightning) run last.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from oodmix.config.consistency import CHECKS, CLASS_CHECKS, Check
from oodmix.config.rules import RULES


class ConfigError(ValueError):
    """A config value that is not allowed; the message is one line: key, value, what is allowed."""


_ORDER = {key: i for i, key in enumerate(RULES)}
_INDEX = re.compile(r"\[\d+\]|\.\d+(?=\.|$)")


def rule_key(key: str) -> str:
    """The RULES entry for a concrete key: list indices become `[]` (`data.disks.0.radius` and
    `data.disks[0].radius` -> `data.disks[].radius`)."""
    return _INDEX.sub("[]", key.lstrip("+~"))


def shown(value: Any) -> str:
    """A value as a user would type it: null, true, 'text', [1, 2]."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return repr(value)
    return str(value)


def check_value(key: str, value: Any) -> None:
    """Raise ConfigError when `value` breaks the rule for `key` (keys without a rule pass)."""
    rule = RULES.get(rule_key(key))
    if rule is None:
        return
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=True)
    if not rule.check(value):
        raise ConfigError(f"{key}={shown(value)} is not allowed: {key} must be {rule.describe()}")


def _concrete_keys(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every (key path, node) of a config, list elements as `key[i]`, nothing resolved."""
    if isinstance(node, DictConfig):
        for name in node:
            key = f"{prefix}.{name}" if prefix else str(name)
            child = node._get_node(name)
            yield key, child
            yield from _concrete_keys(child, key)
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            key = f"{prefix}[{i}]"
            child = node._get_node(i)
            yield key, child
            yield from _concrete_keys(child, key)


def validate(cfg: DictConfig) -> None:
    """Check a composed config: nothing left missing (???), every ruled key's value, and the
    cross-key checks. Raises ConfigError with one line naming the key, value and what is
    allowed. Only ruled keys are resolved (Hydra's own `${hydra:...}` values need not be set)."""
    # Hydra's section is left out by name, not by a masked copy: copying a whole config took
    # most of the time of a check that runs once per job of a sweep.
    job = {name: cfg._get_node(name) for name in cfg if name != "hydra"}
    keys = [
        item
        for name, node in job.items()
        for item in [(str(name), node), *_concrete_keys(node, str(name))]
    ]
    missing = [key for key, node in keys if node._is_missing()]
    if missing:
        raise ConfigError(
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing: this config "
            f"needs a value, e.g. {missing[0]}=..."
        )
    # In the order of RULES, so a root knob is named before the keys that interpolate it.
    ruled = sorted(
        (key for key, _ in keys if rule_key(key) in RULES), key=lambda k: _ORDER[rule_key(k)]
    )
    deferred = [key for key in ruled if RULES[rule_key(key)].deferred]
    for key in [key for key in ruled if key not in deferred]:
        check_value(key, OmegaConf.select(cfg, key))
    plain = {
        name: OmegaConf.to_container(cfg[name], resolve=True)
        for name in ("data", "loss")
        if isinstance(cfg.get(name), DictConfig)
    }
    _run_checks(CHECKS, plain)
    # Last, what imports torch or Lightning (seconds): lists read from their owners, and the
    # rules that a class states itself.
    for key in deferred:
        check_value(key, OmegaConf.select(cfg, key))
    _run_checks(CLASS_CHECKS, plain)


def _run_checks(checks: list[Check], plain: dict[str, Any]) -> None:
    for check in checks:
        reason = check(plain)
        if reason:
            raise ConfigError(reason)


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
