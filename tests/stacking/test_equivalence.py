"""A member of a stack is its solo run: same data, initial weights, batches and mixing draws,
and the same evaluation. Over a whole run, for every objective and every detector, each
member's metrics.json equals its solo run's (every value within 1e-6), and its last and best
weights and its scores.npz within 1e-5 (vmap's batched matrix products round differently from
a single network's)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from hydra.types import RunMode
from omegaconf import open_dict, read_write

from oodmix.config.paths import group_options
from oodmix.runs.job import train
from oodmix.stacking.group_run import train_group

#: OODMIX_TEST_TRAINER=gpu runs these comparisons on a GPU (both paths on it).
TRAINER = os.environ.get("OODMIX_TEST_TRAINER", "cpu")
SMALL = ["trainer.max_epochs=3", "plots=false", "logger=none", "data.n_val=300",
         "data.n_test=300", "data.n_shift=100", f"trainer={TRAINER}"]  # fmt: skip
#: Three members: their own seed, and numbers of their own where the objective has them.
MEMBERS = {
    "seed": ["seed=0", "seed=1", "seed=2"],
    "beta": ["beta=1.0", "beta=0.3", "beta=3.0"],
    "alpha": ["mixup.alpha=1.0", "mixup.alpha=0.2", "mixup.alpha=2.0"],
}
USES = {"ce": ("seed",), "oe": ("seed",), "energy": ("seed",), "ce_kl": ("seed", "beta")}


def as_job(cfg, num: int):
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.mode = RunMode.MULTIRUN
        cfg.hydra.job.num = num
    return cfg


def weights(run: Path, name: str = "last.ckpt") -> dict[str, torch.Tensor]:
    path = run / "checkpoints" / name
    state = torch.load(path, weights_only=True, map_location="cpu")["state_dict"]
    return {k: v for k, v in state.items() if k.startswith("net.")}


def member_overrides(loss: str, k: int) -> list[str]:
    uses = USES.get(loss, ("seed", "beta", "alpha"))
    return [f"loss={loss}", *(MEMBERS[name][k] for name in uses)]


def best_checkpoint(run: Path) -> str:
    (path,) = (run / "checkpoints").glob("best-*.ckpt")
    return path.name


def assert_member_is_its_solo_run(stacked: Path, alone: Path, solo_metrics: dict) -> None:
    """metrics.json within 1e-6, the last and best weights and scores.npz within 1e-5."""
    import numpy as np

    written = json.loads((stacked / "metrics.json").read_text())
    assert written.keys() == solo_metrics.keys()
    for name, value in solo_metrics.items():
        if isinstance(value, float):
            assert written[name] == pytest.approx(value, abs=1e-6, nan_ok=True), name
        else:
            assert written[name] == value, name
    assert best_checkpoint(stacked) == best_checkpoint(alone)
    for name in ("last.ckpt", best_checkpoint(alone)):
        mine, theirs = weights(stacked, name), weights(alone, name)
        assert mine.keys() == theirs.keys()
        for key, value in theirs.items():
            torch.testing.assert_close(mine[key], value, rtol=0, atol=1e-5)
    for name in ("last.ckpt", best_checkpoint(alone)):
        assert_same_checkpoint(stacked / "checkpoints" / name, alone / "checkpoints" / name)
    with np.load(stacked / "scores.npz") as mine, np.load(alone / "scores.npz") as theirs:
        assert sorted(mine.files) == sorted(theirs.files)
        for key in theirs.files:
            np.testing.assert_allclose(mine[key], theirs[key], rtol=0, atol=1e-5)


def assert_same_checkpoint(mine_path: Path, theirs_path: Path) -> None:
    """A member's checkpoint (last or best) holds what its solo run's does: the same
    state_dict names, epoch, step and loop state, its checkpoint callbacks' states, optimiser
    state within 1e-5, its own config."""
    mine = torch.load(mine_path, weights_only=True, map_location="cpu")
    theirs = torch.load(theirs_path, weights_only=True, map_location="cpu")
    assert mine["state_dict"].keys() == theirs["state_dict"].keys()
    assert (mine["epoch"], mine["global_step"]) == (theirs["epoch"], theirs["global_step"])
    assert mine["loops"] == theirs["loops"]
    config, solo_config = mine["hyper_parameters"]["config"], theirs["hyper_parameters"]["config"]
    assert config.keys() == solo_config.keys()
    assert (config["seed"], config["beta"], config["delta"]) == (
        solo_config["seed"], solo_config["beta"], solo_config["delta"])  # fmt: skip
    # Its checkpoint callbacks' states (best score, the best file's name), as its solo run's.
    own = {k: v for k, v in theirs["callbacks"].items() if k.startswith("BufferedCheckpoint")}
    assert len(own) == 2 and own.keys() == mine["callbacks"].keys()  # best and last
    for key, state in own.items():
        assert mine["callbacks"][key]["best_model_score"] == state["best_model_score"], key
        assert Path(mine["callbacks"][key]["best_model_path"]).name == (
            Path(state["best_model_path"]).name)  # fmt: skip
    (optimizer,), (solo_optimizer,) = mine["optimizer_states"], theirs["optimizer_states"]
    assert optimizer["param_groups"] == solo_optimizer["param_groups"]
    for index, state in solo_optimizer["state"].items():
        for name, value in state.items():
            torch.testing.assert_close(optimizer["state"][index][name], value, rtol=0, atol=1e-5)


def train_both(compose_config, tmp_path: Path, overrides: list[list[str]]) -> None:
    """The members (one override list each) as one group, then each alone; compared."""
    jobs = [
        as_job(compose_config(*SMALL, *member, run=f"stack/{k}"), k)
        for k, member in enumerate(overrides)
    ]
    values = train_group(jobs)
    assert all(v is not None for v in values)
    for k, member in enumerate(overrides):
        solo_metrics = train(compose_config(*SMALL, *member, run=f"solo/{k}"))
        assert values[k] == pytest.approx(solo_metrics["val/f1"], abs=1e-6)
        assert_member_is_its_solo_run(tmp_path / "stack" / str(k), tmp_path / "solo" / str(k),
                                      solo_metrics)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("loss", group_options("loss"))
def test_every_member_of_every_objective_is_its_solo_run(
    compose_config, tmp_path: Path, loss: str
) -> None:
    train_both(compose_config, tmp_path, [member_overrides(loss, k) for k in range(3)])


@pytest.mark.slow
@pytest.mark.parametrize("detector", group_options("detector"))
def test_every_member_of_every_detector_is_its_solo_run(
    compose_config, tmp_path: Path, detector: str
) -> None:
    """Also members with their own delta (a fixed-threshold detector's F1 is counted there)."""
    members = [[f"detector={detector}", f"seed={k}", f"delta={d}", f"beta={b}"]
               for k, (d, b) in enumerate([(0.8, 1.0), (0.6, 0.3), (0.9, 3.0)])]  # fmt: skip
    if detector != "msp":  # delta is used by msp only (a refusal otherwise)
        members = [m[:2] + m[3:] for m in members]
    train_both(compose_config, tmp_path, members)


@pytest.mark.slow
def test_a_diverging_member_fails_alone(compose_config, tmp_path: Path) -> None:
    """model.lr=1e30 for member 0: its job records the divergence in failure.json and writes
    no metrics; member 1 trains on to the weights and metrics of its solo run."""
    overrides = ["trainer.max_epochs=2", *SMALL[1:]]
    jobs = [
        as_job(compose_config(*overrides, "model.lr=1e30", run="stack/0"), 0),
        as_job(compose_config(*overrides, "seed=1", run="stack/1"), 1),
    ]
    values = train_group(jobs)
    assert values[0] is None and values[1] is not None
    record = json.loads((tmp_path / "stack" / "0" / "failure.json").read_text())
    assert record["type"] == "TrainingDiverged"
    assert record["message"].startswith("training diverged at epoch 0, step 1: ")
    assert not (tmp_path / "stack" / "0" / "metrics.json").exists()
    solo = train(compose_config(*overrides, "seed=1", run="solo"))
    written = json.loads((tmp_path / "stack" / "1" / "metrics.json").read_text())
    assert written["val/f1"] == pytest.approx(solo["val/f1"], abs=1e-6)
    for name, value in weights(tmp_path / "solo").items():
        torch.testing.assert_close(
            weights(tmp_path / "stack" / "1")[name], value, atol=1e-5, rtol=0
        )


@pytest.mark.slow
def test_the_same_group_twice_writes_byte_identical_metrics(compose_config, tmp_path: Path):
    for attempt in ("a", "b"):
        jobs = [
            as_job(compose_config(*SMALL, f"seed={k}", f"beta={b}", run=f"{attempt}/{k}"), k)
            for k, b in enumerate((0.3, 1.0, 3.0))
        ]
        train_group(jobs)
    for k in range(3):
        first = (tmp_path / "a" / str(k) / "metrics.json").read_bytes()
        assert first == (tmp_path / "b" / str(k) / "metrics.json").read_bytes()


@pytest.mark.slow
def test_each_members_csv_logger_writes_its_solo_runs_files(compose_config, tmp_path: Path):
    """logger=csv: a member's hparams.yaml is its solo run's byte for byte (made from the
    group's one dump), and its metrics.csv has the solo run's columns, epochs and values."""
    import csv

    logged = [o for o in SMALL if not o.startswith("logger=")] + ["logger=csv"]
    members = [[f"seed={k}", f"beta={b}"] for k, b in enumerate((0.3, 1e-05, 3.0))]
    jobs = [as_job(compose_config(*logged, *m, run=f"stack/{k}"), k) for k, m in enumerate(members)]
    train_group(jobs)
    for k, member in enumerate(members):
        train(compose_config(*logged, *member, run=f"solo/{k}"))
        mine, theirs = tmp_path / "stack" / str(k) / "csv", tmp_path / "solo" / str(k) / "csv"
        solo_hparams = (theirs / "hparams.yaml").read_text().replace(f"solo/{k}", f"stack/{k}")
        assert (mine / "hparams.yaml").read_text() == solo_hparams
        with open(mine / "metrics.csv") as a, open(theirs / "metrics.csv") as b:
            rows, solo_rows = list(csv.DictReader(a)), list(csv.DictReader(b))
        assert rows[0].keys() == solo_rows[0].keys() and len(rows) == len(solo_rows)
        for row, solo_row in zip(rows, solo_rows):
            for name, value in solo_row.items():
                if value == "" or name in ("epoch", "step"):
                    assert row[name] == value, name
                else:
                    assert float(row[name]) == pytest.approx(float(value), abs=1e-6), name
