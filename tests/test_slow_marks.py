"""The inner loop stays fast: conftest.py fails a test not marked slow that starts a Python
process or trains more than one run, and lets the same test pass when it is marked slow."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from console_scripts import python_program

CONFTEST = (Path(__file__).parent / "conftest.py").read_text()


@pytest.mark.parametrize(
    ("args", "program"),
    [
        (["/venv/bin/oodmix-train", "seed=1"], "oodmix-train"),
        ([Path("/venv/bin/oodmix-predict"), "ckpt=x"], "oodmix-predict"),
        ([sys.executable, "-m", "oodmix", "seed=1"], "python -m oodmix"),
        (["python3", "-c", "import oodmix"], "python -c import oodmix"),
        ("oodmix-report outputs/sweep", "oodmix-report"),
        (["git", "rev-parse", "HEAD"], None),
        ("printf 'x,y\\n' > points.csv", None),
    ],
)
def test_python_programs_are_told_from_others(args, program) -> None:
    assert python_program(args) == program


# The inner session: this conftest, and tests that start a (quick) Python process or call
# Lightning's Trainer.fit twice (without a model, which Lightning refuses at once: the check
# fires before the second call reaches Lightning).
INNER_TESTS = f"""
import subprocess
import sys

import lightning as L
import pytest

PYTHON = {sys.executable!r}


def start_python():
    subprocess.run([PYTHON, "-c", "pass"], check=True)


def fit_twice():
    for _ in range(2):
        try:
            L.Trainer.fit(None, None)
        except TypeError:  # no model: Lightning refuses the call itself
            pass


def test_python_unmarked():
    start_python()


def test_fit_twice_unmarked():
    fit_twice()


def test_other_program_unmarked():
    subprocess.run(["true"], check=True)


@pytest.mark.slow
def test_python_marked():
    start_python()


@pytest.mark.slow
def test_fit_twice_marked():
    fit_twice()
"""


@pytest.mark.slow  # its inner tests start a Python process
def test_unmarked_slow_work_fails_and_marked_passes(pytester: pytest.Pytester) -> None:
    import lightning  # noqa: F401  (imported, as a whole run's test modules import it)

    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nmarkers = slow: slow\n")
    pytester.makepyfile(test_inner=INNER_TESTS)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:xdist")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_python_unmarked starts a Python process (python -c pass) but is not marked "
            "slow*",
            "*test_fit_twice_unmarked trains more than one run (a second Trainer.fit) but is not "
            "marked slow*",
        ]
    )
    passed = {
        report.nodeid.split("::")[1]
        for report in result.reprec.getreports("pytest_runtest_logreport")
        if report.passed and report.when == "call"
    }
    assert passed == {"test_other_program_unmarked", "test_python_marked", "test_fit_twice_marked"}
