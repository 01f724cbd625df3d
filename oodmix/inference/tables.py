"""Points in, predictions out: CSV and .npz inputs read in chunks, a CSV written row by row.

Input
  CSV   a header row naming the columns, then one point per row, one feature per column
        (UTF-8, comma-separated; blank lines are skipped). Read `rows` lines at a time, so a
        file of millions of points never sits in memory as Python objects.
  .npz  an array named `x`, shape (points, features); columns x0, x1, ...

Every value must be a finite number within float32's range (the network's precision); the
first that is not stops the run with one line naming its line and column.

Output: the input columns (a CSV's cells exactly as read), then `score`, `is_ood` (1 when
score < threshold, else 0) and `predicted_class`, in the input's row order.
"""

from __future__ import annotations

import csv
import itertools
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from oodmix.inference.errors import InferenceError

OUTPUT_COLUMNS = ("score", "is_ood", "predicted_class")
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class Chunk:
    """Consecutive input points: values (n, F) float64, and for a CSV the cells as read."""

    x: np.ndarray
    cells: list[list[str]] | None = None

    def __len__(self) -> int:
        return len(self.x)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class CsvPoints:
    """The points of a CSV file with a header row, in chunks (see the module docstring)."""

    def __init__(self, path: Path, num_features: int) -> None:
        self.path = path
        self.num_features = num_features
        self._handle: IO[str] = path.open(newline="", encoding="utf-8-sig")
        self._reader = csv.reader(self._handle)
        self._data_rows = 0  # data rows handed out so far
        try:
            self.columns = self._header()
        except BaseException:
            self._handle.close()
            raise

    def _header(self) -> list[str]:
        num_features = self.num_features
        header = self._next_nonblank()
        if header is None:
            raise self._error("empty file; a header row naming the columns is expected first")
        if all(_is_number(cell) for cell in header):
            raise self._error(
                f"line {self._reader.line_num} is the first and holds only numbers "
                f"({', '.join(header[:4])}{', ...' if len(header) > 4 else ''}); the first row "
                "must name the columns (a header)"
            )
        if len(header) != num_features:
            shown = ", ".join(repr(c) for c in header[:6]) + (", ..." if len(header) > 6 else "")
            raise self._error(
                f"{len(header)} columns ({shown}); the model takes {num_features} features"
            )
        clashes = sorted(set(header) & set(OUTPUT_COLUMNS))
        if clashes:
            raise self._error(
                f"column {clashes[0]!r} clashes with an output column "
                f"({', '.join(OUTPUT_COLUMNS)}); rename it"
            )
        return header

    def _error(self, message: str) -> InferenceError:
        return InferenceError(f"input={self.path}: {message}")

    def _next_nonblank(self) -> list[str] | None:
        for row in self._reader:
            if row:
                return row
        return None

    def _line_of(self, data_row: int) -> int:
        """The file line of the data row with this index (0 = the first below the header),
        found by reading the file again: only an error needs it."""
        with self.path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            rows = (row for row in reader if row)
            next(rows, None)  # the header
            for _ in itertools.islice(rows, data_row + 1):
                pass
            return reader.line_num

    def _locate(self, first_row: int, rows: list[list[str]], bad: Callable[[str], bool]) -> str:
        """'line L, column 'c': 'text'' for the first cell where `bad(text)` holds."""
        for i, row in enumerate(rows):
            for column, text in zip(self.columns, row):
                if bad(text):
                    return f"line {self._line_of(first_row + i)}, column {column!r}: {text!r}"
        return f"lines {self._line_of(first_row)}-{self._line_of(first_row + len(rows) - 1)}"

    def _parse_slowly(self, first_row: int, cells: list[list[str]]) -> np.ndarray:
        """numpy refused a cell: Python's float() decides, and names the first it refuses."""
        if not all(_is_number(text) for row in cells for text in row):
            where = self._locate(first_row, cells, lambda text: not _is_number(text))
            raise self._error(f"{where} is not a number")
        return np.array([[float(text) for text in row] for row in cells], dtype=np.float64)

    def chunks(self, rows: int) -> Iterator[Chunk]:
        """Chunks of at most `rows` points, in file order."""
        width = self.num_features
        try:
            while True:
                cells = list(itertools.islice(self._reader, rows))
                if not cells:
                    break
                if not all(cells):  # blank lines
                    cells = [row for row in cells if row]
                    if not cells:
                        continue
                first = self._data_rows
                if set(map(len, cells)) != {width}:
                    i = next(i for i, row in enumerate(cells) if len(row) != width)
                    n = len(cells[i])
                    raise self._error(
                        f"line {self._line_of(first + i)} has {n} value{'s' * (n != 1)}, the "
                        f"header has {width} columns"
                    )
                try:
                    x = np.array(cells, dtype=np.float64)
                except ValueError:
                    x = self._parse_slowly(first, cells)
                finite = np.isfinite(x)
                if not finite.all():
                    where = self._locate(first, cells, lambda t: not np.isfinite(float(t)))
                    raise self._error(f"{where} is not a finite number (NaN or inf)")
                if np.abs(x).max() > FLOAT32_MAX:
                    where = self._locate(first, cells, lambda t: abs(float(t)) > FLOAT32_MAX)
                    raise self._error(f"{where} is beyond float32's range (the network's)")
                self._data_rows += len(cells)
                yield Chunk(x, cells)
        except UnicodeDecodeError as error:
            raise self._error(f"not UTF-8 text ({error.reason} at byte {error.start})") from None
        except csv.Error as error:
            raise self._error(f"line {self._reader.line_num}: not CSV text ({error})") from None
        if self._data_rows == 0:
            raise self._error("no data rows below the header")

    def close(self) -> None:
        self._handle.close()


class NpzPoints:
    """The points of an .npz file: its array `x` (see the module docstring); an archive
    without one is refused, whatever else it holds (a lone array may be labels, not points)."""

    def __init__(self, path: Path, num_features: int) -> None:
        self.path = path
        if not zipfile.is_zipfile(path):
            raise self._error("not an .npz archive (write it with numpy.savez)")
        try:
            with np.load(path, allow_pickle=False) as stored:
                names = list(stored.files)
                if not names:
                    raise self._error("empty archive; give the points as an array named 'x'")
                if "x" not in names:
                    held = ", ".join(repr(name) for name in sorted(names))
                    raise self._error(f"holds no array 'x' (it holds {held}); name the points 'x'")
                self.name = "x"
                x = stored[self.name]
        except InferenceError:
            raise
        except ValueError as error:  # pickled object arrays are refused
            raise self._error(f"cannot be read without pickle ({error})") from None
        except Exception as error:
            raise self._error(f"not a readable .npz file ({error})") from None
        where = f"array {self.name!r}"
        if x.ndim != 2 or x.shape[0] == 0:
            raise self._error(
                f"{where} must be a non-empty 2-D array (points x features), got shape {x.shape}"
            )
        if x.dtype.kind not in "biuf":
            raise self._error(f"{where} must hold real numbers, got dtype {x.dtype}")
        if x.shape[1] != num_features:
            raise self._error(f"{where} has {x.shape[1]} features, the model takes {num_features}")
        if x.dtype.kind == "b":
            x = x.astype(np.int8)
        bad = ~np.isfinite(x).all(axis=1)
        if bad.any():
            raise self._error(
                f"{where} has NaN or inf in {int(bad.sum())} rows (first: row {int(bad.argmax())})"
            )
        if x.size and np.abs(x).max() > FLOAT32_MAX:
            row = int((np.abs(x) > FLOAT32_MAX).any(axis=1).argmax())
            raise self._error(f"{where} row {row} is beyond float32's range (the network's)")
        self.x = x
        self.columns = [f"x{i}" for i in range(num_features)]

    def _error(self, message: str) -> InferenceError:
        return InferenceError(f"input={self.path}: {message}")

    def chunks(self, rows: int) -> Iterator[Chunk]:
        for start in range(0, len(self.x), rows):
            yield Chunk(self.x[start : start + rows])

    def close(self) -> None:
        pass


def open_points(path: Path, num_features: int) -> CsvPoints | NpzPoints:
    """The reader for `path`: .npz by its suffix, a CSV otherwise."""
    if not path.is_file():
        raise InferenceError(f"input={path}: no such file")
    try:
        if path.suffix.lower() == ".npz":
            return NpzPoints(path, num_features)
        return CsvPoints(path, num_features)
    except UnicodeDecodeError as error:
        raise InferenceError(
            f"input={path}: not UTF-8 text ({error.reason} at byte {error.start}); give a CSV "
            "file or an .npz archive"
        ) from None
    except csv.Error as error:
        raise InferenceError(f"input={path}: not CSV text ({error})") from None
    except OSError as error:
        raise InferenceError(f"input={path}: cannot be read ({error.strerror})") from None


class PredictionWriter:
    """Writes the header, then per chunk the input columns and the three output columns."""

    def __init__(self, handle: IO[str], columns: list[str]) -> None:
        self._writer = csv.writer(handle, lineterminator="\n")
        self._writer.writerow([*columns, *OUTPUT_COLUMNS])

    def write(self, chunk: Chunk, score: np.ndarray, is_ood: np.ndarray, cls: np.ndarray) -> None:
        # Scores as the shortest text that reads back as the same float32.
        score_text = score.astype(str).tolist()
        ood = is_ood.astype(np.int8).tolist()
        classes = cls.tolist()
        cells = chunk.cells if chunk.cells is not None else chunk.x.astype(str).tolist()
        self._writer.writerows(
            [*row, s, o, c] for row, s, o, c in zip(cells, score_text, ood, classes)
        )
