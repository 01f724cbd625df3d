"""docs/inference.md ("Using a trained detector") runs as written: its oodmix-predict command and
its Python snippet, in a folder where outputs/demo is a finished run."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from oodmix.inference.cli import main

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "inference.md"
HEADING = "# Using a trained detector"


def section(page: str) -> str:
    """The text under HEADING, up to the next heading."""
    start = page.index(HEADING) + len(HEADING)
    end = re.search(r"^#{1,3} ", page[start:], flags=re.MULTILINE)
    return page[start : start + end.start()] if end else page[start:]


def code_block(text: str, language: str) -> str:
    match = re.search(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)
    assert match, f"no {language} block under {HEADING!r}"
    return match.group(1)


@pytest.fixture
def documented() -> str:
    page = PAGE.read_text()
    assert HEADING in page, f"{PAGE.relative_to(ROOT)} has no {HEADING!r} section"
    return section(page)


@pytest.fixture
def demo_folder(msp_run, tmp_path, monkeypatch) -> Path:
    """A working folder where outputs/demo holds a trained run (the page's oodmix-train)."""
    shutil.copytree(msp_run.dir, tmp_path / "outputs" / "demo")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_documented_python_snippet_runs_as_written(documented, demo_folder, capsys) -> None:
    snippet = code_block(documented, "python")
    exec(compile(snippet, str(PAGE), "exec"), {"__name__": "__main__"})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "0.8 - the run's delta; max softmax probability"
    assert len(printed) == 4


def test_the_documented_command_runs_as_written(documented, demo_folder, capsys) -> None:
    commands = code_block(documented, "bash").strip().splitlines()
    assert commands[0] == "oodmix-train hydra.run.dir=outputs/demo"  # the fixture's stand-in
    (predict,) = [line for line in commands if line.startswith("oodmix-predict ")]
    (make_points,) = [line for line in commands if line.startswith("printf ")]
    subprocess.run(make_points, shell=True, cwd=demo_folder, check=True)
    assert (demo_folder / "points.csv").read_text() == "x,y\n-2,-2\n2,2.5\n0,0\n8,-7\n"
    main(shlex.split(predict)[1:])
    out = capsys.readouterr().out
    assert out.startswith("oodmix-predict: 4 rows, ") and out.endswith("wrote predictions.csv\n")
    example = re.search(r"^oodmix-predict: .*$", documented, flags=re.MULTILINE)
    assert example and re.fullmatch(
        r"oodmix-predict: 4 rows, \d OOD \(\d+\.\d%\) at threshold 0\.8 \(the run's delta; max "
        r"softmax probability\); wrote predictions\.csv",
        example.group(0),
    )
    written = (demo_folder / "predictions.csv").read_text()
    assert written.startswith("x,y,score,is_ood,predicted_class\n-2,-2,")
