"""One line for each way a command line or config can be wrong, Hydra's and OmegaConf's own
errors included (they span several lines and end with a hint about HYDRA_FULL_ERROR).

`OODMIX_DEBUG=1` (or Hydra's HYDRA_FULL_ERROR=1) shows the full traceback instead.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Sequence

from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    OmegaConfBaseException,
    ValidationError,
)

from oodmix.allowed import shown


class ConfigError(ValueError):
    """A config value that is not allowed; the message is one line: key, value, what is allowed."""


#: Longest message a one-line report keeps (failure.json, refusals quoting a library's error).
MESSAGE_LIMIT = 300


def one_line(error: BaseException, limit: int = MESSAGE_LIMIT) -> str:
    """The error's message on one line (whitespace collapsed), cut at `limit` characters with
    an ellipsis."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def debugging() -> bool:
    """Whether the user asked for full tracebacks (OODMIX_DEBUG=1; oodmix-train also takes
    Hydra's HYDRA_FULL_ERROR=1 as the same request)."""
    return os.environ.get("OODMIX_DEBUG", "") not in ("", "0")


def _flat(text: str) -> str:
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("Set the environment variable")]
    return " ".join(lines).rstrip(".")


def _omegaconf_line(error: OmegaConfBaseException) -> str:
    """OmegaConf's 'message / full_key: k / object_type=dict' as 'k: message'."""
    message = str(error).splitlines()[0].strip() if str(error) else type(error).__name__
    key = getattr(error, "full_key", None)
    return f"{key}: {message}" if key else message


def _dotted(key: str) -> str:
    """A key as the command line writes it: OmegaConf's `data.disks[0].radius` is
    `data.disks.0.radius`."""
    return re.sub(r"\[(\d+)\]", r".\1", key)


def _override_of(key: str, argv: Sequence[str]) -> tuple[str, str, bool] | None:
    """(key, value, exact) of the plain `key=value` the user typed that sets `key` (exact) or
    a key below it (`trainer.strategy.x=1` below `trainer.strategy`), or None."""
    for arg in argv:
        name, sep, value = arg.partition("=")
        if not sep or name.startswith(("+", "~")):
            continue
        if _dotted(name) == _dotted(key) or _dotted(name).startswith(_dotted(key) + "."):
            return name, value, _dotted(name) == _dotted(key)
    return None


def _unknown_key(error: BaseException, argv: Sequence[str]) -> str | None:
    """`bta=1`: name the key, suggest a close one, say how to add a new key.

    Hydra reports an override of a key that does not exist as a ConfigCompositionException
    raised from OmegaConf's ConfigAttributeError or ConfigKeyError; which override it was is
    only in Hydra's message text (Hydra 1.3 has no attribute for it), so it is found among the
    user's overrides by the public `full_key` and `parent_node` of OmegaConf's error.
    """
    cause = error.__cause__
    if not isinstance(error, ConfigCompositionException) or not isinstance(
        cause, (ConfigAttributeError, ConfigKeyError)
    ):
        return None
    override = _override_of(cause.full_key or "", argv)
    if override is None:
        return None
    key, value, exact = override
    if not exact:  # e.g. trainer.strategy.x=1 where trainer.strategy holds a value
        return (
            f"{key}={value} is not allowed: {_dotted(cause.full_key)} holds a value, not keys; "
            f"set {_dotted(cause.full_key)}=... instead"
        )
    parent = cause.parent_node
    known = sorted(str(k) for k in parent) if hasattr(parent, "keys") else []
    section, _, name = key.rpartition(".")
    where = section or "the config"
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {section + '.' if section else ''}{close[0]}?)" if close else ""
    return (
        f"{key}={value} is not allowed: there is no key '{name}' in {where}{hint}; "
        f"its keys: {', '.join(known)}. To add a new key, write +{key}={value}"
    )


#: OmegaConf's words for a type, in a refusal: "seed must be an integer".
_TYPE_WORDS = {
    "Integer": "an integer",
    "Float": "a number",
    "Boolean": "true or false",
    "String": "a string",
}


def _wrong_type(error: BaseException) -> str | None:
    """A value the schema refuses (oodmix.config.schema), from OmegaConf's ValidationError
    (its public `full_key`, `value` and `msg`): `seed='abc' is not allowed: seed must be an
    integer`. Hydra raises it while composing, from the command line or a swept value."""
    cause = error if isinstance(error, ValidationError) else error.__cause__
    if not isinstance(cause, ValidationError) or not cause.full_key:
        return None
    message = (cause.msg or "").splitlines()[0] if cause.msg else ""
    converted = re.search(r"could not be converted to (\w+)", message)
    options = re.search(r"expected one of \[(.*)\]", message)
    if converted and converted.group(1) in _TYPE_WORDS:
        allowed = _TYPE_WORDS[converted.group(1)]
    elif options:
        allowed = f"one of {options.group(1)}"
    elif "is not Optional" in message:
        allowed = "a value, not null"
    else:
        return None
    key = _dotted(cause.full_key)
    return f"{key}={shown(cause.value)} is not allowed: {key} must be {allowed}"


def _missing_option(error: MissingConfigException) -> str:
    """Hydra's 'Could not find loss/nope ... Available options' (a user config folder), from
    the exception's public `missing_cfg_file` ("loss/nope") and `options`."""
    group, _, value = (error.missing_cfg_file or "").rpartition("/")
    if not group or error.options is None:  # not a group's option (the primary config)
        return _flat(str(error))
    # "_" files are shared bases the options include, not options (oodmix.config.paths).
    options = ", ".join(sorted(o for o in error.options if not o.startswith("_")))
    return f"{group}={value} is not allowed: {group} must be one of {options}"


def describe(error: BaseException, argv: Sequence[str]) -> str | None:
    """The one-line message for a configuration error, or None when `error` is not one."""
    if isinstance(error, ConfigError):
        return str(error)
    if isinstance(error, MissingConfigException):
        return _missing_option(error)
    wrong_type = _wrong_type(error)
    if wrong_type:
        return wrong_type
    if isinstance(error, HydraException):
        unknown = _unknown_key(error, argv)
        if unknown:
            return unknown
        cause = error.__cause__
        text = _flat(str(error))
        if isinstance(cause, OmegaConfBaseException) and str(cause) not in str(error):
            text += f": {_omegaconf_line(cause)}"
        return f"{text} (OODMIX_DEBUG=1 shows the traceback)"
    if isinstance(error, OmegaConfBaseException):
        return f"{_omegaconf_line(error)} (OODMIX_DEBUG=1 shows the traceback)"
    return None
