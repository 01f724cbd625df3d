"""Same seed and config, same metrics.json: for every objective and every dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from oodmix.config.paths import group_options
from oodmix.runs.build import build_run
from oodmix.runs.job import train
from tests.data.test_digits_and_npz import eval_arrays, train_arrays, write

SHORT = ["trainer.max_epochs=2", "plots=false"]


def _data_overrides(data: str, tmp_path: Path) -> list[str]:
    if data != "npz":
        return [f"data={data}"]
    files = {
        "train": write(tmp_path / "train.npz", **train_arrays()),
        "val": write(tmp_path / "val.npz", **eval_arrays(1, bool_is_id=True)),
        "test": write(tmp_path / "test.npz", **eval_arrays(2, bool_is_id=False)),
    }
    return ["data=npz", *(f"data.{split}={path}" for split, path in files.items())]


CASES = [(loss, "two_disks") for loss in group_options("loss")] + [
    ("ce_kl_mixup", data) for data in group_options("data") if data != "two_disks"
]


@pytest.mark.slow
@pytest.mark.parametrize(("loss", "data"), CASES)
def test_one_seed_gives_byte_identical_metrics_json(compose_config, tmp_path, loss, data):
    overrides = [f"loss={loss}", *_data_overrides(data, tmp_path), *SHORT, "seed=3"]
    train(compose_config(*overrides, run="first"))
    train(compose_config(*overrides, run="second"))
    first = (tmp_path / "first" / "metrics.json").read_bytes()
    assert first == (tmp_path / "second" / "metrics.json").read_bytes()


def _weights(run) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in run.module.net.parameters()])


@pytest.mark.parametrize("data", ["two_disks", "moons"])
def test_another_seed_draws_other_data_and_other_weights(compose_config, data):
    runs = []
    for seed in (3, 4):
        run = build_run(compose_config(f"data={data}", f"seed={seed}"))
        run.datamodule.setup("fit")
        runs.append(run)
    a, b = (run.datamodule.splits for run in runs)
    assert a.id_x.shape == b.id_x.shape and not torch.equal(a.id_x, b.id_x)
    assert not torch.equal(a.test.x, b.test.x)
    assert not torch.equal(_weights(runs[0]), _weights(runs[1]))  # initialisation
