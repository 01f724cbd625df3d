"""A job's config as oodmix reads it: without Hydra's section, and what its interpolations
refer to."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict, read_write

from oodmix.config.containers import differing_paths, leaves, shape

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


def task_container(cfg: DictConfig) -> dict[str, Any]:
    """A job's task config (without Hydra's section) as a plain, unresolved container."""
    container = OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)
    assert isinstance(container, dict)
    container.pop("hydra", None)
    return container


def resolved_job_configs(
    configs: Sequence[DictConfig], as_job: Callable[[int], None]
) -> list[DictConfig]:
    """Each job's task config (`job_config`), resolved while it is the current job
    (`as_job(k)`: `${hydra:...}` values are its own), for jobs that differ in a few values.

    Resolving a config takes about 10 ms (every interpolation is parsed), so only the first is
    resolved; job k's is a copy of it with its own value at each path where the jobs'
    unresolved configs differ or the first holds an interpolation (the only values that can
    differ once resolved):

        job_k = copy(resolved job_0), with job_k[path] = configs[k] at path (resolved)

    A job whose config has another shape (other keys, another list length) is resolved on its
    own. tests/config/test_job.py compares the result with OmegaConf.resolve.
    """
    if not configs:
        return []
    as_job(0)
    first = job_config(configs[0])
    OmegaConf.resolve(first)
    resolved = [first]
    if len(configs) == 1:
        return resolved
    first_container = task_container(configs[0])
    first_shape = shape(first_container)
    first_leaves = list(leaves(first_container))
    interpolated = {p for p, v in first_leaves if isinstance(v, str) and "${" in v}
    for k, cfg in enumerate(configs[1:], start=1):
        as_job(k)
        container = task_container(cfg)
        if shape(container) != first_shape:
            job = job_config(cfg)
            OmegaConf.resolve(job)
        else:
            job = copy.deepcopy(first)
            paths = interpolated | differing_paths(first_leaves, list(leaves(container)))
            with read_write(job), open_dict(job):
                for path in paths:
                    _set(job, path, _resolved_at(cfg, path))
        resolved.append(job)
    return resolved


def _resolved_at(cfg: DictConfig, path: tuple) -> Any:
    node: Any = cfg
    for part in path:
        node = node[part]  # a value is resolved as it is read
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node


def _set(cfg: DictConfig, path: tuple, value: Any) -> None:
    node: Any = cfg
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
