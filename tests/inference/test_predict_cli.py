"""oodmix-predict: end to end (CSV and .npz in, CSV out), and every refusal: one line on stderr,
exit code 2, no output file. The commands run in this process (tests/console_scripts.py); one
slow test starts the real console script."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from console_scripts import run_module, run_script

from oodmix.inference import load_detector
from oodmix.inference.cli import main

BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=300, env=env or ENV
    )


def write_points(path: Path, x: np.ndarray, header: str = "x,y") -> list[list[str]]:
    """A CSV of the points, in varied number formats; returns the cells as written."""
    formats = ["{:.2f}", "{:g}", "{:.3e}", "{!r}"]
    cells = [
        [formats[i % 4].format(float(u)), formats[(i + 1) % 4].format(float(v))]
        for i, (u, v) in enumerate(x)
    ]
    path.write_text("\n".join([header, *(",".join(row) for row in cells)]) + "\n")
    return cells


def read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def some_points(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-10, 10, (n, 2))


def test_csv_in_csv_out(msp_run, tmp_path) -> None:
    """Columns, the input's text, scores, decisions and classes, row order, the summary."""
    x = some_points(300)
    cells = write_points(tmp_path / "points.csv", x)
    result = run_script(
        "oodmix-predict",
        [f"ckpt={msp_run.tested_ckpt}", "input=points.csv", "output=predictions.csv"],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""

    header, rows = read_rows(tmp_path / "predictions.csv")
    assert header == ["x", "y", "score", "is_ood", "predicted_class"]
    assert [row[:2] for row in rows] == cells  # the input's text, in the input's order
    # The API on the values as read gives the same, to the last bit of each float32 score.
    expected = load_detector(msp_run.tested_ckpt).detect(np.array(cells, dtype=np.float64))
    np.testing.assert_array_equal(np.array([r[2] for r in rows], np.float32), expected.score)
    assert [r[3] for r in rows] == [str(int(v)) for v in expected.is_ood]
    assert [r[4] for r in rows] == [str(v) for v in expected.predicted_class]
    ood = int(expected.is_ood.sum())
    assert 0 < ood < 300
    assert result.stdout.splitlines() == [
        f"oodmix-predict: 300 rows, {ood} OOD ({100 * ood / 300:.1f}%) at threshold 0.8 "
        "(the run's delta; max softmax probability); wrote predictions.csv"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["points.csv", "predictions.csv"]


def test_npz_in_with_python_m_and_a_given_delta(max_logit_run, tmp_path) -> None:
    x = some_points(50, seed=1).astype(np.float32)
    np.savez(tmp_path / "points.npz", x=x)
    result = run_module(
        "oodmix.predict",
        [f"ckpt={max_logit_run.tested_ckpt}", "input=points.npz", "output=out/predictions.csv",
         "delta=2.5", "device=auto"],
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    header, rows = read_rows(tmp_path / "out" / "predictions.csv")
    assert header == ["x0", "x1", "score", "is_ood", "predicted_class"]
    np.testing.assert_array_equal(np.array([r[:2] for r in rows], np.float32), x)
    expected = load_detector(max_logit_run.tested_ckpt).detect(x, delta=2.5)
    np.testing.assert_array_equal(np.array([r[2] for r in rows], np.float32), expected.score)
    assert [r[3] == "1" for r in rows] == expected.is_ood.tolist()
    assert "at threshold 2.5 (given)" in result.stdout


def predict(argv: list[str], capsys) -> tuple[int, str, str]:
    """main(argv) in this process: (exit code, stdout, stderr)."""
    try:
        main(argv)
        code = 0
    except SystemExit as stop:
        code = int(stop.code)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_batch_size_and_overwrite(msp_run, tmp_path, capsys) -> None:
    """batch_size=7 writes the very bytes batch_size=4096 writes; overwrite=true replaces."""
    write_points(tmp_path / "p.csv", some_points(1000, seed=2))
    base = [f"ckpt={msp_run.tested_ckpt}", f"input={tmp_path / 'p.csv'}"]
    outputs = {}
    for size in (7, 4096):
        out = tmp_path / f"b{size}.csv"
        code, stdout, stderr = predict([*base, f"output={out}", f"batch_size={size}"], capsys)
        assert (code, stderr) == (0, "") and stdout.startswith("oodmix-predict: 1000 rows, ")
        outputs[size] = out.read_bytes()
    assert outputs[7] == outputs[4096]
    code, _, _ = predict([*base, f"output={tmp_path / 'b7.csv'}", "overwrite=true"], capsys)
    assert code == 0 and (tmp_path / "b7.csv").read_bytes() == outputs[4096]


def late_nan(path: Path) -> None:
    """70,000 good rows, then a NaN: the first chunk (65,536 rows) is written to the
    temporary file before the NaN is read; that file must go too."""
    path.write_text("a,b\n" + "0,0\n" * 70_000 + "1,nan\n")


BAD_INPUTS = {
    # name: (file content, extra arguments, what the line must say)
    "features": ("a,b,c\n1,2,3\n", [], "3 columns ('a', 'b', 'c'); the model takes 2 features"),
    "nan": ("a,b\n1,2\nnan,3\n", [], "line 3, column 'a': 'nan' is not a finite number"),
    "abc": ("a,b\n1,2\n3,abc\n", [], "line 3, column 'b': 'abc' is not a number"),
    "empty": ("", [], "empty file"),
    "header only": ("a,b\n", [], "no data rows below the header"),
    "no header": ("1,2\n", [], "the first row must name the columns (a header)"),
    "late nan": (late_nan, [], "line 70002, column 'b': 'nan' is not a finite number"),
    "unknown key": (
        "a,b\n1,2\n",
        ["bacth_size=3"],
        "bacth_size=3 is not allowed: there is no key 'bacth_size' (did you mean batch_size?)",
    ),
    "bad delta": ("a,b\n1,2\n", ["delta=abc"], "delta=abc is not allowed: delta must be a finite"),
    "bad batch": ("a,b\n1,2\n", ["batch_size=0"], "batch_size=0 is not allowed: batch_size must"),
    "bad device": ("a,b\n1,2\n", ["device=tpu"], "device=tpu is not allowed: device must be cpu"),
    "twice": ("a,b\n1,2\n", ["delta=0.5", "delta=0.6"], "delta=0.6 is not allowed: delta is given"),
    "not key=value": ("a,b\n1,2\n", ["--delta"], "'--delta' is not allowed: arguments are key=v"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_a_bad_input_gives_one_line_exit_2_and_no_output(msp_run, tmp_path, capsys, name) -> None:
    content, extra, expected = BAD_INPUTS[name]
    path = tmp_path / "points.csv"
    content(path) if callable(content) else path.write_text(content)
    argv = [f"ckpt={msp_run.tested_ckpt}", f"input={path}", f"output={tmp_path / 'out.csv'}"]
    code, stdout, stderr = predict([*argv, *extra], capsys)
    assert code == 2 and stdout == ""
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("oodmix-predict: error: "), stderr
    assert expected in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["points.csv"]  # no output, no temp


def test_refusals_about_files(msp_run, tmp_path, capsys) -> None:
    points = tmp_path / "points.csv"
    points.write_text("a,b\n1,2\n")
    out = tmp_path / "out.csv"
    ckpt = f"ckpt={msp_run.tested_ckpt}"
    cases = [
        ([f"ckpt={tmp_path / 'nope.ckpt'}", f"input={points}", f"output={out}"],
         f"ckpt={tmp_path / 'nope.ckpt'}: no such file"),
        ([ckpt, f"input={tmp_path / 'nope.csv'}", f"output={out}"],
         f"input={tmp_path / 'nope.csv'}: no such file"),
        ([ckpt, f"input={points}", f"output={points}"],
         f"output={points} is not allowed: it is the input file"),
        ([ckpt, f"input={points}", f"output={tmp_path / 'out.npz'}"],
         "predictions are written as CSV; give a file name ending in .csv"),
        ([f"ckpt={tmp_path}", f"input={points}", f"output={out}"],
         f"ckpt={tmp_path} is not allowed: it is a folder; give a checkpoint such as "),
        ([f"ckpt={points}", f"input={points}", f"output={out}"],
         f"ckpt={points}: cannot be read as an oodmix checkpoint"),
        ([ckpt, f"input={points}"], "output= is missing; usage: oodmix-predict ckpt="),
    ]  # fmt: skip
    for argv, expected in cases:
        code, stdout, stderr = predict(argv, capsys)
        assert (code, stdout, len(stderr.splitlines())) == (2, "", 1), stderr
        assert expected in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["points.csv"]

    out.write_text("earlier results\n")
    code, _, stderr = predict([ckpt, f"input={points}", f"output={out}"], capsys)
    assert code == 2 and stderr == (
        f"oodmix-predict: error: output={out} is not allowed: the file exists, and oodmix never "
        "writes over results silently; choose a new name or add overwrite=true\n"
    )
    assert out.read_text() == "earlier results\n"


def test_a_run_without_a_known_threshold_asks_for_delta(max_logit_run, tmp_path, capsys) -> None:
    """A max-logit checkpoint away from its run folder: no tuned threshold to use."""
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(max_logit_run.tested_ckpt.read_bytes())
    (tmp_path / "points.csv").write_text("a,b\n1,2\n")
    argv = [f"ckpt={ckpt}", f"input={tmp_path / 'points.csv'}", f"output={tmp_path / 'o.csv'}"]
    code, _, stderr = predict(argv, capsys)
    assert code == 2 and len(stderr.splitlines()) == 1
    assert "no threshold to decide with" in stderr and stderr.endswith("give delta=<threshold>\n")
    assert not (tmp_path / "o.csv").exists()
    assert predict([*argv, "delta=3"], capsys)[0] == 0


@pytest.mark.slow  # starts the real console script: its wiring
def test_a_refusal_in_a_real_process_and_with_oodmix_debug(msp_run, tmp_path) -> None:
    (tmp_path / "points.csv").write_text("a,b\n1,2\n3,nan\n")
    argv = [str(BIN / "oodmix-predict"), f"ckpt={msp_run.tested_ckpt}", "input=points.csv",
            "output=out.csv"]  # fmt: skip
    result = run(argv, cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "oodmix-predict: error: input=points.csv: line 3, column 'b': 'nan' is not a finite "
        "number (NaN or inf)"
    ]
    debug = run_script("oodmix-predict", argv[1:], cwd=tmp_path, env={**ENV, "OODMIX_DEBUG": "1"})
    assert debug.returncode == 2 and "Traceback" in debug.stderr
    assert debug.stderr.splitlines()[-1] == result.stderr.strip()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["points.csv"]


@pytest.mark.slow
def test_200k_rows_stream_through_in_chunks(msp_run, tmp_path, capsys, monkeypatch) -> None:
    """200,000 rows read 20,000 at a time: every row comes out, in order, and the Python
    memory the command allocates peaks near one chunk's worth, not the file's (one chunk of
    all 200,000 rows peaks at about 85 MB; tracemalloc counts Python objects and numpy)."""
    import oodmix.inference.cli as cli

    x = some_points(200_000, seed=3)
    np.savetxt(tmp_path / "p.csv", x, delimiter=",", header="a,b", comments="", fmt="%.5f")
    monkeypatch.setattr(cli, "CHUNK_ROWS", 20_000)
    argv = [f"ckpt={msp_run.tested_ckpt}", f"input={tmp_path / 'p.csv'}",
            f"output={tmp_path / 'o.csv'}", "batch_size=4096"]  # fmt: skip
    tracemalloc.start()
    try:
        code, stdout, stderr = predict(argv, capsys)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (code, stderr) == (0, "") and stdout.startswith("oodmix-predict: 200000 rows, ")
    assert peak < 25e6, f"peak {peak / 1e6:.1f} MB"
    header, rows = read_rows(tmp_path / "o.csv")
    assert header == ["a", "b", "score", "is_ood", "predicted_class"] and len(rows) == 200_000
    expected = np.loadtxt(tmp_path / "p.csv", delimiter=",", skiprows=1, dtype=str)
    assert [row[:2] for row in rows] == expected.tolist()
