"""OmegaConf's YAML of many like configs, dumped once.

A group of jobs writes one config record per member (`.hydra/config.yaml`, `hydra.yaml`, the
logger's `hparams.yaml`), and the members' configs differ only in a few values (seed, beta,
the job's number and folder). YAML's emitter is pure Python and takes milliseconds per config,
so the texts are made from one dump:

    template = the first container with each differing value replaced by a unique marker
    text_k   = yaml(template), each marker replaced by member k's value as YAML writes it

which is `OmegaConf.to_yaml` of member k's container, byte for byte
(tests/stacking/test_yaml_texts.py). A member whose container has another shape (other keys,
another list length, a container where the first has a value), or whose value YAML would write
over more than one line or fold at the line width, is dumped on its own instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml
from omegaconf._utils import get_omega_conf_dumper

from oodmix.stacking.containers import differing_paths, leaves, shape

#: yaml.dump's line width (its default), past which a plain value with spaces is folded.
_WIDTH = 80


def to_yaml(container: Any) -> str:
    """`OmegaConf.to_yaml` of a plain container (OmegaConf.to_container's result)."""
    return yaml.dump(
        container,
        default_flow_style=False,
        allow_unicode=True,
        sort_keys=False,
        Dumper=get_omega_conf_dumper(),
    )


def _replaced(container: Any, values: dict[tuple, Any], path: tuple = ()) -> Any:
    if path in values:
        return values[path]
    if isinstance(container, dict):
        return {key: _replaced(value, values, (*path, key)) for key, value in container.items()}
    if isinstance(container, list):
        return [_replaced(value, values, (*path, i)) for i, value in enumerate(container)]
    return container


def _scalar(value: Any) -> str | None:
    """How YAML writes `value` as an item of a block sequence, or None if over several
    lines."""
    text = to_yaml([value])
    if not text.startswith("- ") or text.count("\n") != 1:
        return None
    return text[2:-1]


def yaml_texts(containers: Sequence[Any]) -> list[str]:
    """`to_yaml` of each container (see the module's docstring)."""
    if len(containers) < 2:
        return [to_yaml(c) for c in containers]
    first = containers[0]
    first_shape = shape(first)
    first_leaves = list(leaves(first))
    differing: set[tuple] = set()
    member_leaves = {}
    for i, container in enumerate(containers[1:], start=1):
        if shape(container) == first_shape:
            member_leaves[i] = list(leaves(container))
            differing |= differing_paths(first_leaves, member_leaves[i])
    markers = {path: f"oodmix-marker-{n:06d}" for n, path in enumerate(sorted(differing, key=str))}
    template = to_yaml(_replaced(first, markers))
    # The template cut at its markers, each found once as a plain word (else no template),
    # with the line around it (to tell whether a value would be folded).
    found = []
    for path, marker in markers.items():
        at = template.find(marker)
        if at < 0 or template.find(marker, at + 1) >= 0:
            return [to_yaml(c) for c in containers]
        found.append((at, path))
    found.sort()
    pieces, slots, cursor = [], [], 0
    for at, path in found:
        start = template.rfind("\n", 0, at) + 1
        end = template.find("\n", at)
        line = (end - start) - len(markers[path])  # the line without its value
        pieces.append(template[cursor:at])
        slots.append((path, line))
        cursor = at + len(markers[path])
    pieces.append(template[cursor:])

    texts = []
    for i, container in enumerate(containers):
        if i != 0 and i not in member_leaves:
            texts.append(to_yaml(container))
            continue
        values = dict(first_leaves if i == 0 else member_leaves[i])
        parts = [pieces[0]]
        for (path, line), piece in zip(slots, pieces[1:]):
            written = _scalar(values[path])
            if written is None or (" " in written and line + len(written) > _WIDTH):
                parts = None
                break
            parts += [written, piece]
        texts.append("".join(parts) if parts is not None else to_yaml(container))
    return texts
