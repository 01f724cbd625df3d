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


def test_results_in_readme_are_the_reports_the_commands_wrote() -> None:
    """Every table row the README shows under Results and Performance stands in a report or
    benchmark table copied to docs/results/."""
    results = README[README.index("## Results") : README.index("## Add your own objective")]
    results += README[README.index("## Performance") : README.index("## How it fits together")]
    shown = [line for line in results.splitlines() if line.startswith("|")]
    written = set()
    for table in (ROOT / "docs" / "results").glob("*/*.md"):  # table.md, mixup_gain.md
        written |= {line for line in table.read_text().splitlines() if line.startswith("|")}
    assert shown, "no result table in the README"
    assert set(shown) <= written


def test_readme_figures_exist() -> None:
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", README)
    assert figures
    for figure in figures:
        assert (ROOT / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", figure
