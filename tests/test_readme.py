"""The README stays true: its test command is CI's, its worked example is the shipped code."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def fenced_block_after(marker: str) -> str:
    """The body of the first fenced code block that follows `marker` in the README."""
    start = README.index(marker)
    match = re.search(r"```[a-z]*\n(.*?)```", README[start:], flags=re.DOTALL)
    assert match, f"no code block after {marker!r}"
    return match.group(1)


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run calls the README's test command verbatim, so a missing install step fails CI."""
    command = fenced_block_after("Run the test suite").strip()
    assert "pytest" in command and "pip install" in command
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert command in ci_lines


def test_readme_main_command_installs_and_trains() -> None:
    command = fenced_block_after("Train the paper's proposed objective").strip()
    assert command.startswith("python3 -m venv .venv && ")
    assert "pip install" in command and command.endswith("oodmix-train")


def test_worked_example_is_the_shipped_code() -> None:
    """The "Add your own objective" blocks are exactly the files that implement ce_maxent."""
    python_block = fenced_block_after("`oodmix/losses/max_entropy.py`:")
    yaml_block = fenced_block_after("`conf/loss/ce_maxent.yaml`:")
    assert python_block == (ROOT / "oodmix" / "losses" / "max_entropy.py").read_text()
    assert yaml_block == (ROOT / "conf" / "loss" / "ce_maxent.yaml").read_text()
