"""Reading points from CSV and .npz files in chunks, and what is refused (no model needed)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from oodmix.inference import InferenceError
from oodmix.inference.tables import Chunk, PredictionWriter, open_points


def read_all(path: Path, rows: int = 4, num_features: int = 2) -> list[Chunk]:
    points = open_points(path, num_features)
    try:
        return list(points.chunks(rows))
    finally:
        points.close()


def test_a_csv_is_read_in_chunks_of_at_most_the_asked_rows(tmp_path) -> None:
    x = np.arange(22, dtype=np.float64).reshape(11, 2) / 4
    lines = ["a,b", *(f"{u},{v}" for u, v in x)]
    lines.insert(5, "")  # a blank line is skipped
    (tmp_path / "p.csv").write_text("\n".join(lines) + "\n\n")
    chunks = read_all(tmp_path / "p.csv", rows=4)
    assert all(len(chunk) <= 4 for chunk in chunks) and len(chunks) >= 3
    np.testing.assert_array_equal(np.concatenate([c.x for c in chunks]), x)
    cells = [row for chunk in chunks for row in chunk.cells]
    assert cells[0] == ["0.0", "0.25"] and len(cells) == 11  # the text as read


def test_a_csv_header_may_carry_a_byte_order_mark_and_quotes(tmp_path) -> None:
    (tmp_path / "p.csv").write_bytes(b'\xef\xbb\xbf"first x","second x"\n"1.5",2\n')
    points = open_points(tmp_path / "p.csv", 2)
    assert points.columns == ["first x", "second x"]
    (chunk,) = points.chunks(10)
    points.close()
    np.testing.assert_array_equal(chunk.x, [[1.5, 2.0]])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file; a header row naming the columns is expected first"),
        ("a,b\n", "no data rows below the header"),
        ("1,2\n3,4\n", "line 1 is the first and holds only numbers (1, 2); the first row must"),
        ("a,b,c\n1,2,3\n", "3 columns ('a', 'b', 'c'); the model takes 2 features"),
        ("a,score\n1,2\n", "column 'score' clashes with an output column"),
        ("a,b\n1,2\n\n3\n", "line 4 has 1 value, the header has 2 columns"),
        ("a,b\n1,2\n3,abc\n", "line 3, column 'b': 'abc' is not a number"),
        ("a,b\n1,2\n,4\n", "line 3, column 'a': '' is not a number"),
        ("a,b\n1,2\n3,nan\n", "line 3, column 'b': 'nan' is not a finite number (NaN or inf)"),
        ("a,b\n-inf,2\n", "line 2, column 'a': '-inf' is not a finite number"),
        ("a,b\n1,1e39\n", "line 2, column 'b': '1e39' is beyond float32's range"),
    ],
)
def test_a_bad_csv_is_refused_in_one_line_naming_where(tmp_path, text, message) -> None:
    path = tmp_path / "p.csv"
    path.write_text(text)
    with pytest.raises(InferenceError) as caught:
        read_all(path)
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"input={path}: ") and "\n" not in str(caught.value)


def test_the_line_of_a_bad_value_counts_blank_lines_and_earlier_chunks(tmp_path) -> None:
    lines = ["a,b", *(f"{i},{i}" for i in range(10)), "", "x,1"]
    (tmp_path / "p.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(InferenceError, match="line 13, column 'a': 'x' is not a number"):
        read_all(tmp_path / "p.csv", rows=3)


def test_binary_input_is_refused(tmp_path) -> None:
    (tmp_path / "p.csv").write_bytes(b"a,b\n\xff\xfe\x00\x01")
    with pytest.raises(InferenceError, match="not UTF-8 text"):
        read_all(tmp_path / "p.csv")


def test_npz_points_are_the_array_x(tmp_path) -> None:
    x = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    np.savez(tmp_path / "x.npz", x=x, other=np.zeros(3))
    points = open_points(tmp_path / "x.npz", 2)
    assert points.columns == ["x0", "x1"]
    np.testing.assert_array_equal(np.concatenate([c.x for c in points.chunks(1)]), x)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (
            {"a": np.zeros((2, 2)), "b": np.zeros((2, 2))},
            "holds no array 'x' (it holds 'a', 'b'); name the points 'x'",
        ),
        # A lone array is not taken for the points: it may be labels (scored silently before).
        ({"points": np.zeros((2, 2))}, "holds no array 'x' (it holds 'points')"),
        ({"x": np.zeros((2, 3))}, "array 'x' has 3 features, the model takes 2"),
        ({"x": np.zeros(2)}, "array 'x' must be a non-empty 2-D array"),
        ({"x": np.zeros((0, 2))}, "array 'x' must be a non-empty 2-D array"),
        ({"x": np.array([[1.0, np.nan]])}, "array 'x' has NaN or inf in 1 rows (first: row 0)"),
        ({"x": np.array([["a", "b"]])}, "array 'x' must hold real numbers, got dtype <U1"),
        ({}, "empty archive"),
    ],
)
def test_a_bad_npz_is_refused_in_one_line(tmp_path, arrays, message) -> None:
    np.savez(tmp_path / "p.npz", **arrays)
    with pytest.raises(InferenceError, match=r"input=.*p\.npz: ") as caught:
        read_all(tmp_path / "p.npz")
    assert message in str(caught.value)


def test_a_file_named_npz_that_is_not_an_archive_is_refused(tmp_path) -> None:
    (tmp_path / "p.npz").write_text("a,b\n1,2\n")
    with pytest.raises(InferenceError, match=r"not an .npz archive \(write it with numpy.savez\)"):
        read_all(tmp_path / "p.npz")


def test_the_writer_keeps_the_input_text_and_writes_scores_that_read_back_exactly() -> None:
    out = io.StringIO()
    writer = PredictionWriter(out, ["a", "b"])
    score = np.array([0.8, 1 / 3], dtype=np.float32)
    writer.write(
        Chunk(np.array([[1.5, 2.0], [0.1, 7.0]]), [["1.50", " 2"], ["0.1", "7e0"]]),
        score,
        np.array([False, True]),
        np.array([1, 0]),
    )
    lines = out.getvalue().splitlines()
    assert lines[:2] == ["a,b,score,is_ood,predicted_class", "1.50, 2,0.8,0,1"]
    assert lines[2].startswith("0.1,7e0,") and lines[2].endswith(",1,0")
    assert np.float32(lines[2].split(",")[2]) == score[1]
