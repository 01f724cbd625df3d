"""Resuming a run: the checkpoint's settings must be the run's settings."""

from __future__ import annotations

from typing import Any

from oodmix.config.validation import ConfigError, shown

#: Keys a resumed run may change: where it resumes from and how long it trains.
MAY_DIFFER = ("ckpt_path", "trainer.max_epochs", "trainer.max_steps", "progress", "quiet")


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: tree}


def saved_config(ckpt_path: str) -> dict[str, Any]:
    """The resolved run config stored in an oodmix checkpoint (read with weights_only=True)."""
    from oodmix.inference.checkpoint import read_checkpoint

    return read_checkpoint(ckpt_path, key="ckpt_path").config


def check_same_settings(ckpt_path: str, config: dict[str, Any]) -> None:
    """Refuse to resume with settings other than those the checkpoint was trained with."""
    before, now = _flat(saved_config(ckpt_path)), _flat(config)
    for key in sorted(before.keys() | now.keys()):
        if key in MAY_DIFFER or before.get(key) == now.get(key):
            continue
        raise ConfigError(
            f"ckpt_path={ckpt_path} is not allowed with {key}={shown(now.get(key))}: the "
            f"checkpoint was trained with {key}={shown(before.get(key))}; resume with the "
            f"same settings (only {', '.join(MAY_DIFFER[1:])} may change) or start a new run"
        )
