"""Writing run artefacts without ever leaving a half-written file behind."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np


@contextmanager
def atomic_open(path: Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside `path`; on success rename it over `path`, else delete it.

    A rename within one filesystem is atomic, so readers see the old file or the whole new one,
    never a truncated one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates the file private (0600); give it the permissions open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        full = no_space_left(error)
        if full is not None and full.filename != str(path):
            # Named as the file it was to become (torch's writer reports neither), the
            # reason kept as the cause.
            raise OSError(full.errno, os.strerror(full.errno), str(path)) from error
        raise


#: The errors of a device that has no room left (a full disk, an exceeded quota).
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def no_space_left(error: BaseException | None) -> OSError | None:
    """The OSError of a full device behind `error` (itself, its cause or its context, as
    torch's writer raises its own error on top of the operating system's), or None."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in NO_SPACE:
            return error
        error = error.__cause__ or error.__context__
    return None


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_open(path) as handle:
        handle.write(text)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    with atomic_open(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def save_figure_atomic(figure: Any, path: Path, dpi: int = 150) -> None:
    """matplotlib's Figure.savefig, atomically; the format follows the file's suffix."""
    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, format=path.suffix.lstrip("."), dpi=dpi, bbox_inches="tight")
