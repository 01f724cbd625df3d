"""Names a package exports but imports only when first used (PEP 562 module __getattr__).

Importing Lightning takes seconds; a package whose names pull it in exports them lazily, so
that tools that do not need it (oodmix-predict, the command-line checks) start fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level __getattr__ for `package`: name -> the module that defines it."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(homes[name]), name)
        namespace[name] = value  # found once, then an ordinary attribute
        return value

    return __getattr__
