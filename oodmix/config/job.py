"""A job's config as oodmix reads it: without Hydra's section, and what its interpolations
refer to."""

from __future__ import annotations

import re
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from oodmix.config.errors import ConfigError

_INNERMOST = re.compile(r"\$\{([^${}]+)\}")


def job_config(cfg: DictConfig) -> DictConfig:
    """The task's config of a job: its composed config without Hydra's section (a copy that
    keeps the flags and the parent links interpolations need)."""
    return OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])


def references(text: str) -> list[str]:
    """What the innermost interpolations of an unresolved value refer to, in order, as written
    between `${` and `}`: `beta`, `mixup.pairs`, `oc.select:mixup.pairs,null`,
    `hydra:runtime.output_dir`."""
    return _INNERMOST.findall(text)


def refers_to(text: str, key: str) -> bool:
    """Whether an unresolved value refers to the key `key` or a key below it, directly or
    through oc.select (`${beta}`, `${mixup.pairs}`, `${oc.select:mixup.pairs,null}`)."""
    for reference in references(text):
        name = reference.removeprefix("oc.select:").split(",", 1)[0]
        if name == key or name.startswith(key + "."):
            return True
    return False


def missing_values(node: Any, prefix: str = "") -> list[str]:
    """The keys left at `???` (a value the config must be given), in the config's order."""
    if isinstance(node, DictConfig):
        items = [(f"{prefix}{name}", node._get_node(name)) for name in node]
    elif isinstance(node, ListConfig):
        items = [(f"{prefix[:-1]}[{i}]", node._get_node(i)) for i in range(len(node))]
    else:
        return []
    missing = []
    for key, child in items:
        if child._is_missing():
            missing.append(key)
        elif not child._is_interpolation():
            missing += missing_values(child, f"{key}.")
    return missing


def check_no_missing_values(config: DictConfig) -> None:
    """Raise ConfigError naming every key of a job's config left at `???` (Hydra's own
    section aside): a value the user must give, such as data=npz's files."""
    missing = [key for key in missing_values(config) if not key.startswith("hydra.")]
    if missing:
        raise ConfigError(
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing: this config "
            f"needs a value, e.g. {missing[0]}=..."
        )
