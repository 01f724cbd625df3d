"""Like configs resolved at once: the jobs of a group whose configs have the same shape (the
same keys and list lengths; they differ in a few values, such as seed, beta and the job's
number and folder) are resolved from the first job's resolved config, re-reading only the paths
at which they differ and the interpolations that may read one (`resolved_job_configs`)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict, read_write

from oodmix.config.job import job_config, references
from oodmix.stacking.containers import differing_paths, leaves, shape


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
    unresolved configs differ, and at each interpolation that may read such a path
    (`_may_differ`):

        job_k = copy(resolved job_0), with job_k[path] = configs[k] at path (resolved)

    A job whose config has another shape (other keys, another list length) is resolved on its
    own. tests/stacking/test_like_configs.py compares the result with OmegaConf.resolve.
    """
    if not configs:
        return []
    as_job(0)
    first = job_config(configs[0])
    OmegaConf.resolve(first)
    if len(configs) == 1:
        return [first]
    containers = [task_container(cfg) for cfg in configs]
    first_shape = shape(containers[0])
    first_leaves = list(leaves(containers[0]))
    alike = {k for k, c in enumerate(containers) if k > 0 and shape(c) == first_shape}
    differing = {k: differing_paths(first_leaves, list(leaves(containers[k]))) for k in alike}
    interpolations = {p: v for p, v in first_leaves if isinstance(v, str) and "${" in v}
    reread = _may_differ(interpolations, set().union(*differing.values()))
    resolved = [first]
    for k, cfg in enumerate(configs[1:], start=1):
        as_job(k)
        if k not in alike:
            job = job_config(cfg)
            OmegaConf.resolve(job)
        else:
            job = copy.deepcopy(first)
            with read_write(job), open_dict(job):
                for path in differing[k] | reread:
                    _set(job, path, _resolved_at(cfg, path))
        resolved.append(job)
    return resolved


def _dotted(path: tuple) -> str:
    return ".".join(str(part) for part in path)


def _may_differ(interpolations: dict[tuple, str], differing: set[tuple]) -> set[tuple]:
    """The interpolations (path -> unresolved text) whose value may differ between jobs that
    differ at the paths `differing`: those that read such a path, a key above or below one, or
    another interpolation that may differ; and, to be safe, every one that calls a resolver
    (`${hydra:...}`, `${now:...}`, oodmix's) or reads a relative or indexed key. oc.select
    reads the key it names."""
    changed = {_dotted(path) for path in differing}
    reads: dict[tuple, list[str | None]] = {}
    for path, text in interpolations.items():
        names: list[str | None] = []
        for reference in references(text):
            name = reference.removeprefix("oc.select:").split(",", 1)[0]
            plain = ":" not in name and not name.startswith(".") and "[" not in name
            names.append(name if plain else None)  # None: may read anything
        reads[path] = names
    may_differ: set[tuple] = set()
    while True:
        grown = {
            path
            for path, names in reads.items()
            if path not in may_differ
            and any(
                name is None
                or any(
                    name == key or key.startswith(name + ".") or name.startswith(key + ".")
                    for key in changed
                )
                for name in names
            )
        }
        if not grown:
            return may_differ
        may_differ |= grown
        changed |= {_dotted(path) for path in grown}


def _resolved_at(cfg: DictConfig, path: tuple) -> Any:
    node: Any = cfg
    for part in path:
        node = node[part]  # a value is resolved as it is read
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True, enum_to_str=True)
    return node


def _set(cfg: DictConfig, path: tuple, value: Any) -> None:
    node: Any = cfg
    for part in path[:-1]:
        node = node[part]
    target = node._get_node(path[-1]) if isinstance(node, DictConfig) else None
    if isinstance(target, DictConfig) and not target._is_none() and isinstance(value, dict):
        # A section typed by the schema (data.mixup, copied from mixup) takes a plain dict
        # only key by key: its type stays, and each value is checked against it.
        for key, item in value.items():
            _set(cfg, (*path, key), item)
        return
    node[path[-1]] = value
