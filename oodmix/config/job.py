"""A job's config as oodmix reads it: without Hydra's section, and what its interpolations
refer to."""

from __future__ import annotations

import re

from omegaconf import DictConfig, OmegaConf

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
