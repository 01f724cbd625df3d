"""How a class states the values it accepts: one line naming the key, the value and what is
allowed, raised as ValueError from its constructor.

    data.batch_size=0 is not allowed: data.batch_size must be an integer >= 1

Each range is stated once, by the class that uses the value (its constructor calls these
functions). The check before a run builds what each job builds, so the same words refuse a
bad value before anything is written (oodmix.config.preflight), and from Python as well.
This module imports nothing heavy: torch-free owners (the detection threshold) use it too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def shown(value: Any) -> str:
    """A value as a user would type it: null, true, 'text', [1, 2], -1 (for -1.0)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, tuple):
        return str(list(value))
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        # The schema makes beta=-1 a float; shown as typed, not as -1.0.
        return str(int(value))
    return str(value)


def refusal(key: str, value: Any, allowed: str) -> ValueError:
    """The error for `key=value`: `<key>=<value> is not allowed: <key> must be <allowed>`."""
    return ValueError(f"{key}={shown(value)} is not allowed: {key} must be {allowed}")


def require(key: str, value: T, holds: bool | Callable[[T], bool], allowed: str) -> T:
    """`value` when it `holds` (a bool, or a predicate of the value); else the refusal."""
    if not (holds(value) if callable(holds) else holds):
        raise refusal(key, value, allowed)
    return value


def is_int(value: Any) -> bool:
    """An int, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool, not a string)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_sequence(value: Any, length: int | None = None) -> bool:
    """A list or tuple (of `length` elements when given); config lists arrive as either, or as
    OmegaConf's ListConfig."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        return False
    return length is None or len(value) == length


def integer_at_least(key: str, value: Any, low: int) -> int:
    return require(key, value, is_int(value) and value >= low, f"an integer >= {low}")


def optional_integer_at_least(key: str, value: Any, low: int, none_means: str) -> int | None:
    """None (meaning `none_means`) or an integer >= low."""
    allowed = f"null ({none_means}) or an integer >= {low}"
    return require(key, value, value is None or (is_int(value) and value >= low), allowed)


def number_at_least(key: str, value: Any, low: float) -> float:
    return require(key, value, is_number(value) and value >= low, f"a finite number >= {low:g}")


def number_above(key: str, value: Any, low: float) -> float:
    return require(key, value, is_number(value) and value > low, f"a finite number > {low:g}")


def finite_number(key: str, value: Any) -> float:
    return require(key, value, is_number(value), "a finite number")


def boolean(key: str, value: Any) -> bool:
    return require(key, value, isinstance(value, bool), "true or false")


def one_of(key: str, value: Any, options: Iterable[Any], described: str | None = None) -> Any:
    """One of `options` (true is not 1, nor 1 true); named in the refusal as listed, or as
    `described`."""
    options = list(options)
    words = described or "one of " + ", ".join(
        dict.fromkeys("null" if o is None else str(o) for o in options)
    )
    holds = any(
        value == option and isinstance(value, bool) == isinstance(option, bool)
        for option in options
    )
    return require(key, value, holds, words)


def point(key: str, value: Any) -> tuple[float, float]:
    """Two finite numbers, e.g. [0.0, 1.5]."""
    holds = is_sequence(value, 2) and all(map(is_number, value))
    return tuple(require(key, value, holds, "two numbers, e.g. [0.0, 1.5]"))
