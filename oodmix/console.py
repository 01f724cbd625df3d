"""What a run shows on the terminal: a progress bar (root knob `progress`) and the results
table (root knob `quiet`).

    progress: auto | rich | tqdm | none
        auto: rich's bar when stderr is a terminal and the run is not quiet; none in logs,
        pipes, CI and sweeps. rich, tqdm: that bar whatever the terminal; none: no bar.
    quiet: auto | true | false
        true: no results table (metrics.json and the loggers still get everything), and no
        bar unless `progress` names one. auto: quiet in a job of a multirun, whose report
        prints one table for the whole sweep at the end; not in a single run.

The decisions are plain functions of the facts (terminal, multirun), so they
are tested without a terminal; Lightning is imported only to build a bar.
"""

from __future__ import annotations

import sys
from enum import Enum
from typing import Any

from oodmix.allowed import one_of
from oodmix.config.errors import ConfigError


class Progress(str, Enum):
    """The progress bars a run can show (the root knob `progress`; see the module docstring)."""

    auto = "auto"
    rich = "rich"
    tqdm = "tqdm"
    none = "none"

    def __str__(self) -> str:  # as typed on the command line
        return self.value


def is_quiet(quiet: Any, *, multirun: bool) -> bool:
    """Whether a run prints no results table: `quiet` true, or auto in a job of a multirun."""
    try:
        one_of("quiet", quiet, ("auto", True, False), "auto, true or false")
    except ValueError as refused:
        raise ConfigError(str(refused)) from None
    return multirun if quiet == "auto" else quiet


def stderr_is_terminal() -> bool:
    """Whether stderr, where the bars draw, is a terminal (not a file, a pipe or a job log)."""
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced by an object without isatty, or closed
        return False


def choose_progress(progress: Any, *, quiet: bool, terminal: bool) -> str:
    """The bar a run shows: "rich", "tqdm" or "none" (see the module docstring)."""
    try:
        one_of("progress", progress, list(Progress))
    except ValueError as refused:
        raise ConfigError(str(refused)) from None
    if progress == "auto":
        return "none" if quiet or not terminal else "rich"
    return str(progress)


def progress_bar(progress: Any, *, quiet: bool) -> Any | None:
    """The Lightning progress-bar callback for this process, or None for no bar."""
    choice = choose_progress(progress, quiet=quiet, terminal=stderr_is_terminal())
    if choice == "none":
        return None
    from oodmix.callbacks.progress import RichProgress, TQDMProgress

    return RichProgress() if choice == "rich" else TQDMProgress()
