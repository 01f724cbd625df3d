"""Per-member settings of the callbacks that also serve a stack of runs (oodmix.stacking)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def each_member(value: Any) -> list[Any]:
    """A stack's per-member values (a list or tuple) as a list; one run's value (a number, a
    string, a path) as a list of one."""
    if isinstance(value, (str, Path)) or not isinstance(value, Sequence):
        return [value]
    return list(value)
