"""Stopping a run on SIGTERM or SIGINT (Ctrl+C) with a checkpoint it can resume from exactly,
and the one line that says how to go on (resume the run, or continue the stopped sweep).

Lightning notes a SIGTERM and stops at the next clean point (after the current training
batch, i.e. chunk of steps), raising SIGTERMException; a Ctrl+C raises KeyboardInterrupt
wherever the program happens to be, possibly between two optimiser steps of a chunk, where
the weights and the loop's counters disagree. `stop_gracefully_on_signals` makes SIGINT take
Lightning's SIGTERM route; `InterruptCheckpoint` then saves checkpoints/interrupted.ckpt.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

from oodmix.callbacks.own_hooks import OwnHooksOnly

#: The stacked launcher's switch that continues a stopped sweep in its folder (docs/sweeps.md).
RESUME_KEY = "hydra.launcher.resume"


class InterruptCheckpoint(OwnHooksOnly, L.Callback):
    """Writes `<dirpath>/<filename>.ckpt` when training stops on SIGTERM or SIGINT (both end
    in Lightning's SIGTERMException, see `stop_gracefully_on_signals`), not when it fails with
    an error (a failed state is not worth resuming). The checkpoint holds the
    loop's place within the epoch, the data loader's position and the random generators.

    (Lightning's OnExceptionCheckpoint saves on every error, deletes its file at teardown and
    makes every later `fit` resume from the newest checkpoint by itself; resuming here is
    asked for explicitly, with ckpt_path.)
    """

    def __init__(self, dirpath: str, filename: str = "interrupted") -> None:
        self.path = os.path.join(dirpath, f"{filename}.ckpt")

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        # Training finished: a checkpoint of an earlier stop (which this run may have resumed
        # from) is no place to resume from any more.
        if trainer.is_global_zero and os.path.isfile(self.path):
            os.remove(self.path)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        # Only Lightning's stop at a clean point: a KeyboardInterrupt (a second Ctrl+C) can
        # fall between two optimiser steps of a chunk, a state no resume reproduces exactly.
        if isinstance(exception, SIGTERMException) and trainer.state.fn == "fit":
            trainer.save_checkpoint(self.path)


@dataclass
class Stop:
    """The signal that stopped the run (None while it runs)."""

    signum: int | None = None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""


@contextmanager
def stop_gracefully_on_signals() -> Iterator[Stop]:
    """While inside: the first SIGINT, like SIGTERM, asks Lightning to stop at the next clean
    point (a second SIGINT interrupts at once); both are recorded in the yielded Stop."""
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signal handlers can only be set from the main thread
        return
    previous_int = signal.getsignal(signal.SIGINT)
    previous_term = signal.getsignal(signal.SIGTERM)

    def on_signal(signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and stop.signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl+C: stop now
        stop.signum = stop.signum or signum
        current = signal.getsignal(signal.SIGTERM)
        if current is on_signal or not callable(current):
            raise SIGTERMException()  # between two Trainer runs: nothing to finish
        if signum == signal.SIGINT:
            # Inside a Trainer run, Lightning's SIGTERM handler is installed: it notes the stop
            # (and calls this one back with SIGTERM, already recorded).
            current(signal.SIGTERM, frame)

    signal.signal(signal.SIGINT, on_signal)
    # Lightning composes its SIGTERM handler with the one already set (this one), so a
    # SIGTERM is both noted by Lightning and recorded here.
    signal.signal(signal.SIGTERM, on_signal)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)


def exit_stopped(trainer: Any, signal_name: str, how_to_go_on: str) -> None:
    """One line on stderr (from the first process only): where training stopped, then
    `how_to_go_on` (where it was saved and the command that goes on); exit 128 + the signal's
    number, as a shell reports a process ended by that signal."""
    if trainer.is_global_zero:
        print(
            f"oodmix-train: stopped by {signal_name} at epoch {trainer.current_epoch}, step "
            f"{trainer.global_step}{how_to_go_on}",
            file=sys.stderr,
        )
    sys.exit(128 + int(getattr(signal, signal_name, signal.SIGTERM)))


def exit_sweep_stopped(
    trainer: Any, signal_name: str, jobs: str, where: str, sweep_dir: str
) -> None:
    """A stacked sweep stopped while `jobs` trained (a group, or a job trained alone): the
    line saying so, where they were saved and the command that continues the sweep
    (hydra.launcher.resume=true resumes them and runs the jobs after them); then exit."""
    how = f" ({jobs}, {where}); continue the sweep with: {continue_command(sweep_dir)}"
    exit_stopped(trainer, signal_name, how)


def invoked_command(argv0: str | None = None) -> str:
    """How this process was started, as a shell would start it again: `oodmix-train` when
    that name finds this very script on PATH; else the script's path as invoked (an
    environment not on PATH); `python -m oodmix` (this interpreter) when run as a module."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    oodmix_main = Path(__file__).resolve().parents[1] / "__main__.py"
    if Path(argv0).name == "__main__.py" and Path(argv0).resolve() == oodmix_main:
        return f"{shlex.quote(sys.executable)} -m oodmix"
    if Path(argv0).name != "oodmix-train":  # started some other way: the name users know
        return "oodmix-train"
    found = shutil.which("oodmix-train")
    if os.sep not in argv0 or (found and Path(found).resolve() == Path(argv0).resolve()):
        return "oodmix-train"
    return shlex.quote(str(Path(argv0).absolute()))


def continue_command(sweep_dir: str, argv: Sequence[str] | None = None) -> str:
    """The command line that continues a stopped sweep: this process's own arguments, with the
    sweep's folder and the launcher's resume switch (each argument quoted for a POSIX shell)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    kept = [a for a in argv if not a.startswith(("hydra.sweep.dir=", f"{RESUME_KEY}="))]
    words = [*kept, f"hydra.sweep.dir={sweep_dir}", f"{RESUME_KEY}=true"]
    return " ".join([invoked_command(), *(shlex.quote(w) for w in words)])
