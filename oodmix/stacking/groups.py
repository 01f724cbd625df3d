"""Which jobs of a sweep can be trained together: those whose configs differ only in numbers
that a stack gives each member (`MEMBER_KEYS`, and every numeric value of the objective).

Two jobs share a group when their composed configs, with Hydra's section and every value that
belongs to a member left out, are equal. A value belongs to a member when it is one of the
member keys, a number of the objective (`loss.beta`, `loss.margin_in`, ...), or interpolates
one of those or the run's folder (`data.seed: ${seed}`, `callbacks.*.output_dir`, a plot's
title that names the seed). Anything else that differs (the objective, the data, the network's
width, the detector, the trainer, ...) makes another group.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from oodmix.config.job import job_config, references

#: Root knobs each member of a stack may set for itself.
MEMBER_KEYS = ("seed", "beta", "mixup.alpha", "delta", "model.lr")


def job_numbers(numbers: Sequence[int]) -> str:
    """Job numbers as the log and messages show them: `#0-#359` for a run of three or more
    consecutive numbers, each number alone otherwise (`#0, #1, #5-#9, #12`)."""
    runs: list[list[int]] = []
    for number in numbers:
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    shown = []
    for run in runs:
        if len(run) >= 3:
            shown.append(f"#{run[0]}-#{run[-1]}")
        else:
            shown.extend(f"#{n}" for n in run)
    return ", ".join(shown)


def _leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _leaves(value, f"{prefix}[{i}]")
    else:
        yield prefix, node


def _is_members_own(reference: str) -> bool:
    """Whether an interpolation's value is a member's own: one of its knobs, its run folder or
    anything Hydra sets per job."""
    return reference in MEMBER_KEYS or reference == "output_dir" or reference.startswith("hydra:")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _job_leaves(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """The leaves of `cfg` without Hydra's section: (as written, resolved)."""
    job = job_config(cfg)
    raw = dict(_leaves(OmegaConf.to_container(job, resolve=False, enum_to_str=True)))
    return raw, dict(_leaves(OmegaConf.to_container(job, resolve=True, enum_to_str=True)))


def _member_paths(raw: dict[str, Any], resolved: dict[str, Any]) -> set[str]:
    paths = set()
    for path, value in raw.items():
        own = path in MEMBER_KEYS or path == "output_dir"
        number_of_objective = path.startswith("loss.") and _is_number(resolved.get(path))
        refers = isinstance(value, str) and any(map(_is_members_own, references(value)))
        if own or number_of_objective or refers:
            paths.add(path)
        elif isinstance(value, str) and value.startswith("${") and value.endswith("}"):
            # A copy of a whole node that holds member keys (data.mixup: ${mixup}).
            node = value[2:-1]
            paths.update(path + k[len(node) :] for k in MEMBER_KEYS if k.startswith(node + "."))
    return paths


def member_paths(cfg: DictConfig) -> set[str]:
    """The leaves of `cfg` (Hydra's section aside) whose value belongs to a member."""
    return _member_paths(*_job_leaves(cfg))


def shared_config(cfg: DictConfig) -> tuple[tuple[str, str], ...]:
    """What members of one group must have in common: every other leaf, resolved."""
    raw, resolved = _job_leaves(cfg)  # once: resolving a config takes tens of milliseconds
    skip = _member_paths(raw, resolved)
    return tuple(
        sorted((path, repr(value)) for path, value in resolved.items() if path not in skip)
    )


def _is_number_text(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip().lower() not in ("nan", "inf", "-inf", "+inf", "infinity")


def override_signature(cfg: DictConfig) -> tuple[str, ...]:
    """The job's command-line overrides with every member's own value masked: `seed=<member>`,
    `loss.beta=<member>` (a number of the objective), anything else as written.

    Jobs with the same signature were composed from the same choices and values but for their
    members' own numbers, so their shared configs are equal: `group_jobs` compares one of them
    in full (resolving a config takes tens of milliseconds) and gives the others its answer."""
    signature = []
    for override in cfg.hydra.overrides.task:
        key, _, value = str(override).partition("=")
        bare = key.lstrip("+~")
        if bare in MEMBER_KEYS or (bare.startswith("loss.") and _is_number_text(value)):
            signature.append(f"{key}=<member>")
        else:
            signature.append(str(override))
    return tuple(signature)


def group_jobs(configs: Sequence[DictConfig], max_members: int | None = None) -> list[list[int]]:
    """Indices of `configs` in groups that can be stacked, in the order of each group's first
    job; a group holds at most `max_members` jobs (None: no limit). Jobs with one
    `override_signature` share the shared config of the first of them."""
    groups: dict[tuple, list[list[int]]] = {}
    order: list[list[int]] = []
    shared: dict[tuple[str, ...], tuple] = {}
    for index, cfg in enumerate(configs):
        signature = override_signature(cfg)
        if signature not in shared:
            shared[signature] = shared_config(cfg)
        chunks = groups.setdefault(shared[signature], [])
        if not chunks or (max_members is not None and len(chunks[-1]) >= max_members):
            chunks.append([])
            order.append(chunks[-1])
        chunks[-1].append(index)
    return order


def differing_members(configs: Sequence[DictConfig]) -> dict[str, list[Any]]:
    """For one group: each member key whose value differs between its jobs, per job."""
    values = {
        key: [OmegaConf.select(cfg, key, throw_on_missing=False) for cfg in configs]
        for key in MEMBER_KEYS
    }
    return {key: v for key, v in values.items() if any(x != v[0] for x in v[1:])}
