"""oodmix's console scripts and `python -m` modules run inside the test process, as a user's
shell would run them.

A new process pays about 5.5 s of `import torch, lightning` before oodmix does anything, so a
test about what a command prints and exits with (a refusal, a summary line) runs it here
instead: the function the console script calls (or the module as `__main__`), with the same
argv, working directory and environment, its exit code read from SystemExit and its output
captured. The real scripts are still started by a few `slow` tests (their wiring, real signals).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import runpy
import shlex
import signal
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

from oodmix.config import run_dirs
from oodmix.reporting.hydra_callback import take_sweep_outcome

#: The console scripts this package installs (pyproject.toml [project.scripts]).
SCRIPTS = ("oodmix-train", "oodmix-report", "oodmix-predict")


@dataclass(frozen=True)
class Completed:
    """What subprocess.run(..., capture_output=True, text=True) would have returned."""

    returncode: int
    stdout: str
    stderr: str


def entry_point(script: str) -> Callable[[], None]:
    """The function behind a console script, read from the installed package's metadata."""
    (found,) = entry_points(group="console_scripts", name=script)
    return found.load()


@contextlib.contextmanager
def _process_state(argv: list[str], cwd: Path | None, env: Mapping[str, str] | None) -> Iterator:
    """argv, working directory, environment, logging, signal handlers, Hydra's singletons, the
    run folders claimed and locked so far and the last sweep's outcome as a new process would
    have them (none), restored afterwards (the command's folder locks released, as its
    process's would be when it ends)."""
    saved_argv, saved_cwd, saved_env = sys.argv, Path.cwd(), dict(os.environ)
    saved_claims, run_dirs._CREATED = run_dirs._CREATED, []
    locked_before = set(run_dirs._LOCKED)
    take_sweep_outcome()  # one left by a test that ran a sweep's callback directly
    saved_handlers, saved_level = logging.root.handlers[:], logging.root.level
    saved_signals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    GlobalHydra.instance().clear()
    sys.argv = argv
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    if cwd is not None:
        os.chdir(cwd)
    try:
        yield
    finally:
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None
        for handler in logging.root.handlers:  # Hydra's job log file and console handlers
            if handler not in saved_handlers:
                handler.close()
        logging.root.handlers[:] = saved_handlers
        logging.root.setLevel(saved_level)
        for signum, handler in saved_signals.items():
            signal.signal(signum, handler)
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv = saved_argv
        run_dirs._CREATED = saved_claims
        for folder in set(run_dirs._LOCKED) - locked_before:
            run_dirs.unlock_folder(folder)


def run_script(
    script: str,
    args: list[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Completed:
    """`<script> <args>` (oodmix-train, oodmix-report, oodmix-predict) in this process."""
    return _run(entry_point(script), [script, *args], cwd, env)


def run_module(
    module: str,
    args: list[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Completed:
    """`python -m <module> <args>` in this process: the module runs as `__main__`."""

    def as_main() -> None:
        with warnings.catch_warnings():
            # A new process has not imported the module yet; this one may have (a test module
            # that imports it), which runpy warns about.
            warnings.filterwarnings("ignore", "'.*' found in sys.modules", RuntimeWarning)
            runpy.run_module(module, run_name="__main__", alter_sys=True)

    return _run(as_main, [f"python -m {module}", *args], cwd, env)


def _run(
    main: Callable[[], None],
    argv: list[str],
    cwd: Path | None,
    env: Mapping[str, str] | None,
) -> Completed:
    """main() with this argv, cwd and environment: its exit code, stdout and stderr.

    An uncaught exception is printed and counted as exit code 1, as the interpreter does.
    """
    out, err = io.StringIO(), io.StringIO()
    with (
        _process_state(argv, cwd, env),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            main()
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
            if isinstance(stop.code, str):
                print(stop.code, file=sys.stderr)
        except Exception:
            traceback.print_exc()
            code = 1
    return Completed(code, out.getvalue(), err.getvalue())


def python_program(args: object) -> str | None:
    """The Python program a subprocess call starts (`oodmix-train`, `python -m oodmix`,
    `python -c`), or None for another program (git, printf), which starts in milliseconds."""
    words = shlex.split(args) if isinstance(args, str) else [os.fspath(a) for a in args]
    if not words:
        return None
    name = Path(words[0]).name
    if name.startswith("oodmix-"):
        return name
    if name.startswith("python") or words[0] == sys.executable:
        return f"python {' '.join(words[1:3])}"
    return None
