"""Run and sweep folders: a new one for every run, never an existing run's, except to resume it.

Hydra's default folder names carry the time to the second, so two runs started in the same
second would share (and overwrite) one folder. `${oodmix_fresh_dir:<path>}` claims `<path>`
with an exclusive mkdir, or `<path>_2`, `<path>_3`, ... when another process holds it.
`${oodmix_run_dir:<ckpt_path>,<path>}` is the folder of the run a checkpoint belongs to (a
resumed run goes on in its own folder), else a fresh `<path>`. Both are cached per config, so
every later look-up in the process (and in Hydra's sweep jobs, which copy the cache) sees the
same folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from oodmix.config.errors import ConfigError
from oodmix.config.paths import shown_path

#: Folders this process created through claim_fresh_dir, parents included, in creation order.
#: OmegaConf evaluates an interpolation that it merges another value over, so while Hydra
#: composes a config (an experiment's hydra.sweep.dir over the default's; again for every job
#: of a sweep) the resolver claims folders that no run uses: `release_unused_claims` removes them.
_CREATED: list[Path] = []


def claim_fresh_dir(path: str) -> str:
    """Create and return `path`, or the first free `path_2`, `path_3`, ... (exclusive mkdir)."""
    folder = Path(path)
    missing = [p for p in (folder.parent, *folder.parent.parents) if not p.exists()]
    folder.parent.mkdir(parents=True, exist_ok=True)
    _CREATED.extend(reversed(missing))
    for n in range(1, 1000):
        candidate = folder if n == 1 else folder.with_name(f"{folder.name}_{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        _CREATED.append(candidate)
        return str(candidate)
    raise ConfigError(f"{path}: 999 run folders of that name exist already; choose hydra.run.dir")


def checkpoint_run_dir(ckpt_path: str | None) -> Path | None:
    """The run folder holding a checkpoint at <run>/checkpoints/<file>, else None."""
    if not ckpt_path:
        return None
    path = Path(ckpt_path).resolve()
    if path.parent.name == "checkpoints" and (path.parent.parent / ".hydra").is_dir():
        return path.parent.parent
    return None


def run_dir(ckpt_path: str | None, default: str) -> str:
    resumed = checkpoint_run_dir(ckpt_path)
    return str(resumed) if resumed is not None else claim_fresh_dir(default)


def hydra_subdir(ckpt_path: str | None, stamp: str) -> str:
    """Where Hydra records a run's config: `.hydra`, or `.hydra/resumed_<stamp>` for a resumed
    run, so that the original record stays as it was written."""
    return ".hydra" if checkpoint_run_dir(ckpt_path) is None else f".hydra/resumed_{stamp}"


def _is_empty(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


def check_run_dir(folder: Path, ckpt_path: Any, key: str = "hydra.run.dir") -> None:
    """Refuse to write into a folder that already holds files, unless resuming the run in it;
    and refuse to resume a run (a checkpoint in its run folder) anywhere but in that folder."""
    resumed = checkpoint_run_dir(ckpt_path)
    if resumed is not None and resumed != folder.resolve():
        raise ConfigError(
            f"{key}={folder} is not allowed with ckpt_path={ckpt_path}: a resumed run goes on "
            f"in its own folder, {shown_path(resumed)}, and {key} cannot move it; leave {key} "
            "out to resume there"
        )
    if _is_empty(folder) or resumed is not None:
        return
    raise ConfigError(
        f"{key}={folder} is not allowed: the folder already holds files and oodmix never "
        "writes over an earlier run; choose a new folder (or resume that run with "
        "ckpt_path=<its checkpoints/last.ckpt>)"
    )


def check_sweep_dir(folder: Path, resume: bool = False) -> None:
    """hydra.sweep.dir must be new or empty, as a run folder must; with the stacked launcher's
    hydra.launcher.resume=true it may also be the folder of a sweep that an earlier command
    started (it holds Hydra's multirun.yaml), which the launcher continues
    (oodmix.stacking.continuing). An empty or new folder then starts the sweep there."""
    if _is_empty(folder):
        return
    if not resume:
        raise ConfigError(
            f"hydra.sweep.dir={folder} is not allowed: the folder already holds files and oodmix "
            "never writes over an earlier run; choose a new folder (or continue the sweep that "
            "stopped there with hydra.launcher.resume=true)"
        )
    if (folder / "multirun.yaml").is_file():
        return
    raise ConfigError(
        f"hydra.sweep.dir={folder} is not allowed with hydra.launcher.resume=true: the folder "
        "holds files but no sweep (no multirun.yaml); give the folder of the sweep to continue"
    )


def check_no_resume_in_sweep(ckpt_paths: list[Any]) -> None:
    """Refuse a multirun that resumes a run: a resumed run goes on in its own folder, and a
    sweep writes each job into a folder of its own."""
    for ckpt_path in ckpt_paths:
        resumed = checkpoint_run_dir(ckpt_path)
        if resumed is not None:
            raise ConfigError(
                f"ckpt_path={ckpt_path} is not allowed in a multirun: a resumed run goes on in "
                f"its own folder, {shown_path(resumed)}, and a sweep writes each job into a "
                "folder of its own; resume it with a single run (without -m)"
            )


def release_unused_claims(keep: Path | None) -> None:
    """Remove the folders this process claimed (or created as their parents) that are still
    empty, except `keep` and its parents (None: keep none, the command was refused): claims
    made while Hydra composed configs whose folder no run uses. Only empty folders go, so
    nothing written is ever lost."""
    kept = [] if keep is None else [keep.resolve(), *keep.resolve().parents]
    for folder in reversed(_CREATED):
        if folder.resolve() in kept:
            continue
        try:
            folder.rmdir()  # only when empty
        except OSError:
            continue
        _CREATED.remove(folder)


#: Folders this process writes into, each with the open descriptor that holds its lock (an
#: OS lock dies with its process: a lock is never stale).
_LOCKED: dict[Path, int] = {}


def lock_folder(folder: Path, key: str) -> None:
    """Hold an exclusive lock on `folder` (made if new) until this process ends: one writer per
    run or sweep folder. Another process holding it (a second command into the same folder,
    started before the first wrote anything) is refused in one line. The lock is the
    operating system's on the folder itself (flock), so no file is left behind and a process
    that dies releases it."""
    import os

    try:
        import fcntl
    except ImportError:  # no flock on this platform: one writer is then the user's care
        return
    folder = folder.resolve()
    if folder in _LOCKED:
        return
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise ConfigError(
            f"{key}={shown_path(folder)} is not allowed: another oodmix-train process is "
            "writing into that folder now; wait for it to end, or choose another folder"
        ) from None
    except OSError:  # a filesystem without locks (some network ones): go on without one
        os.close(descriptor)
        return
    _LOCKED[folder] = descriptor


def unlock_folder(folder: Path) -> None:
    """Release this process's lock on `folder` (tests; a process's locks end with it)."""
    import os

    descriptor = _LOCKED.pop(folder.resolve(), None)
    if descriptor is not None:
        os.close(descriptor)


def register_resolvers() -> None:
    OmegaConf.register_new_resolver(
        "oodmix_fresh_dir", claim_fresh_dir, replace=True, use_cache=True
    )
    OmegaConf.register_new_resolver("oodmix_run_dir", run_dir, replace=True, use_cache=True)
    OmegaConf.register_new_resolver(
        "oodmix_hydra_subdir", hydra_subdir, replace=True, use_cache=True
    )


register_resolvers()
