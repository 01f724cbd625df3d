"""Folders claimed while Hydra composes configs that no run uses are removed, never others."""

from __future__ import annotations

from pathlib import Path

import pytest
from console_scripts import run_script

from oodmix.config import run_dirs
from oodmix.config.run_dirs import claim_fresh_dir, release_unused_claims


def test_unused_empty_claims_and_their_new_parents_go(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(run_dirs, "_CREATED", [])
    used = Path(claim_fresh_dir(str(tmp_path / "runs" / "day" / "12-00-00")))
    orphan = Path(claim_fresh_dir(str(tmp_path / "sweeps" / "day" / "12-00-00")))
    assert orphan.is_dir()
    written = Path(claim_fresh_dir(str(tmp_path / "runs" / "day" / "12-00-00")))
    assert written.name == "12-00-00_2"  # the name was taken: the next free one
    (written / "metrics.json").write_text("{}")
    release_unused_claims(used)
    assert used.is_dir() and (written / "metrics.json").is_file()  # kept; holds a file
    assert not (tmp_path / "sweeps").exists()  # the orphan and the parents it created
    release_unused_claims(None)  # a refused command: every empty claim goes
    assert not used.exists() and written.is_dir()


def test_folders_that_existed_before_are_never_removed(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(run_dirs, "_CREATED", [])
    (tmp_path / "outputs" / "empty_before").mkdir(parents=True)
    claim_fresh_dir(str(tmp_path / "outputs" / "new"))
    release_unused_claims(None)
    assert (tmp_path / "outputs" / "empty_before").is_dir()
    assert not (tmp_path / "outputs" / "new").exists()


@pytest.mark.slow  # trains three runs
def test_an_experiment_writes_only_its_own_sweep_folder(tmp_path: Path) -> None:
    """experiment=paper sets hydra.sweep.dir over the default's; composing the sweep and each
    job used to leave empty outputs/multiruns/<time>_N folders behind."""
    result = run_script(
        "oodmix-train",
        ["experiment=paper", "seed=0", "trainer.max_epochs=1", "plots=false", "logger=none",
         "hydra.callbacks.report.enabled=false"],
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [p.name for p in (tmp_path / "outputs").iterdir()] == ["paper"]
    (day,) = (tmp_path / "outputs" / "paper").iterdir()
    (sweep,) = day.iterdir()
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1", "2"]
