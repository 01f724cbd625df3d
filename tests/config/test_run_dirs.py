"""Run and sweep folders: a fresh one claimed beside a taken one, a resumed run in its own."""

from __future__ import annotations

import pytest

from oodmix.config.errors import ConfigError


def test_a_fresh_folder_is_claimed_beside_a_taken_one(tmp_path) -> None:
    """Two runs started in the same second: the second gets name_2, then name_3."""
    from oodmix.config.run_dirs import claim_fresh_dir

    name = str(tmp_path / "runs" / "12-00-00")
    assert claim_fresh_dir(name) == name
    assert claim_fresh_dir(name) == name + "_2"
    assert claim_fresh_dir(name) == name + "_3"
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "12-00-00",
        "12-00-00_2",
        "12-00-00_3",
    ]


def test_resuming_goes_on_in_the_checkpoints_run_folder(tmp_path) -> None:
    from oodmix.config.run_dirs import check_run_dir, checkpoint_run_dir, hydra_subdir

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    ckpt = run / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(b"")
    assert checkpoint_run_dir(str(ckpt)) == run.resolve()
    assert hydra_subdir(str(ckpt), "12-00-00") == ".hydra/resumed_12-00-00"
    assert hydra_subdir(None, "12-00-00") == ".hydra"
    check_run_dir(run, str(ckpt))  # its own folder: allowed
    with pytest.raises(ConfigError, match="already holds files"):
        check_run_dir(run, None)
    for other in (tmp_path / "other", tmp_path):  # new or holding files: not the run's own
        with pytest.raises(ConfigError) as error:
            check_run_dir(other, str(ckpt))
        assert str(error.value) == (
            f"hydra.run.dir={other} is not allowed with ckpt_path={ckpt}: a resumed run goes on "
            f"in its own folder, {run.resolve()}, and hydra.run.dir cannot move it; leave "
            "hydra.run.dir out to resume there"
        )
    assert not (tmp_path / "other").exists()
    elsewhere = tmp_path / "copy.ckpt"
    elsewhere.write_bytes(b"")
    assert checkpoint_run_dir(str(elsewhere)) is None  # not in a run folder: a new run folder
