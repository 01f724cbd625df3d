"""The README and docs/ stay true: the README's test command is CI's, its worked example is the
shipped code, the results shown are the reports the commands wrote, figures and links exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
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


def table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|")]


def test_results_shown_are_the_reports_the_commands_wrote() -> None:
    """Every table row that the README's paper section, docs/results.md and docs/performance.md
    show stands in a report or benchmark table copied to docs/results/."""
    start, end = README.index("## The paper's Table 1"), README.index("## Add your own objective")
    pages = {
        "README.md (the paper's Table 1)": README[start:end],
        "docs/results.md": (DOCS / "results.md").read_text(),
        "docs/performance.md": (DOCS / "performance.md").read_text(),
    }
    written = set()
    for table in (DOCS / "results").glob("*/*.md"):  # table.md, mixup_gain.md
        written |= set(table_rows(table.read_text()))
    for page, text in pages.items():
        shown = table_rows(text)
        assert shown, f"no result table in {page}"
        assert set(shown) <= written, f"{page}: {sorted(set(shown) - written)}"


def test_figures_exist() -> None:
    """The README's figures (paths from the repository root) and the docs' (paths from docs/)."""
    pages = {ROOT: [ROOT / "README.md"], DOCS: sorted(DOCS.glob("*.md"))}
    for base, files in pages.items():
        figures = [
            base / figure
            for page in files
            for figure in re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", page.read_text())
        ]
        assert figures, f"no figure in {[page.name for page in files]}"
        for figure in figures:
            assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", figure


def test_relative_links_point_to_files_that_exist() -> None:
    """Every relative link of README.md and docs/*.md (outside code) names a file or folder."""
    pages = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
    checked = 0
    for page in pages:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
        text = re.sub(r"`[^`\n]*`", "", text)
        for target in re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://", "#")):
                continue
            path = target.split("#", 1)[0]
            assert (page.parent / path).exists(), f"{page.relative_to(ROOT)}: {target}"
            checked += 1
    assert checked


def test_readme_stays_short() -> None:
    """The README is the front door; reference and results live in docs/."""
    assert len(README.splitlines()) <= 360
