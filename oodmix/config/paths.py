"""Paths: where the Hydra configs live (inside an installed wheel, or at the top of a source
checkout), and a path as messages show it."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent


def config_dir() -> Path:
    """The folder holding train.yaml and the config groups."""
    bundled = _PACKAGE / "conf"  # a wheel carries conf/ inside the package
    return bundled if bundled.is_dir() else _PACKAGE.parent / "conf"


def group_options(group: str) -> list[str]:
    """The option names of a config group: conf/<group>/<name>.yaml.

    Files whose name starts with "_" are shared bases that the options include, not options.
    """
    folder = config_dir() / group
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.yaml") if not p.stem.startswith("_"))


def shown_path(path: Path | str) -> str:
    """A path as a user would type it: relative to the working directory when inside it, as
    given otherwise."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
