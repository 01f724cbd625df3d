"""Walking plain config containers (OmegaConf.to_container's nests of dicts and lists): their
values by path, their shape, and which values of like containers differ."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

#: A path into a container: its keys and list indices, outermost first.
Path = tuple

_VALUE = object()  # the shape of a value that is not a dict or list


def leaves(container: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    """(path, value) of every value in a nest of dicts and lists, in order; an empty dict or
    list is a value."""
    if isinstance(container, dict) and container:
        for key, value in container.items():
            yield from leaves(value, (*path, key))
    elif isinstance(container, list) and container:
        for i, value in enumerate(container):
            yield from leaves(value, (*path, i))
    else:
        yield path, container


def shape(container: Any) -> Any:
    """The keys and list lengths of a container, all the way down: like containers (which
    differ in values only) have the same shape."""
    if isinstance(container, dict) and container:
        return tuple((key, shape(value)) for key, value in container.items())
    if isinstance(container, list) and container:
        return tuple(shape(value) for value in container)
    return _VALUE


def same_value(a: Any, b: Any) -> bool:
    """Equal and of one type (1, 1.0 and True compare equal, but are other values in a
    config: they are written differently and may mean different things)."""
    return type(a) is type(b) and a == b


def differing_paths(first: list[tuple[Path, Any]], other: list[tuple[Path, Any]]) -> set[Path]:
    """The paths at which two like containers' `leaves` differ."""
    return {path for (path, a), (_, b) in zip(first, other, strict=True) if not same_value(a, b)}
