"""The one kind of error inference raises: one line naming the input and what is wrong."""

from __future__ import annotations

from oodmix.config.errors import ConfigError


class InferenceError(ConfigError):
    """A checkpoint, an input or an argument that cannot be used. The message is one line: the
    key and value (`ckpt=...`, `input=...`, `delta=...`), the problem and what would work."""
