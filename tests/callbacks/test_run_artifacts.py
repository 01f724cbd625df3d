"""What one training run leaves beside metrics.json: the confidence map and the saved scores,
checked against an independent recomputation from the tested checkpoint."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from oodmix.data import TwoDisksDataModule
from oodmix.models import MLP
from oodmix.runs.job import train

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# One 2-epoch run serves every test here: (run folder, resolved config). Whichever test asks
# first trains it, through the shared `compose_config` fixture. With seed 2 the best validation
# F1 comes at epoch 0 (0.538 against 0.460), so the best and last weights differ and the tests
# tell which were used.
_TRAINED: dict[str, tuple[Path, dict]] = {}


@pytest.fixture
def trained_run(compose_config) -> tuple[Path, dict]:
    """The run folder and resolved config of `loss=ce_kl trainer.max_epochs=2 seed=2
    plots=true`, trained once."""
    if "run" not in _TRAINED:
        cfg = compose_config("loss=ce_kl", "trainer.max_epochs=2", "seed=2", "plots=true")
        train(cfg)
        resolved = OmegaConf.to_container(
            OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True
        )
        _TRAINED["run"] = (Path(cfg.output_dir), resolved)
    return _TRAINED["run"]


def weights_under_test(run: Path, cfg: dict, which: str | None = None) -> torch.nn.Module:
    """The MLP with the weights train() tests (cfg.test_ckpt: 'best' or 'last'), or `which`."""
    if (which or cfg["test_ckpt"]) == "best":
        (checkpoint,) = (run / "checkpoints").glob("best-epoch=*.ckpt")
    else:
        checkpoint = run / "checkpoints" / "last.ckpt"
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    net = MLP(2, 2, hidden=cfg["model"]["hidden"], activation=cfg["model"]["activation"])
    net.load_state_dict(
        {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
    )
    return net.eval()


def max_softmax(net: torch.nn.Module, points: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return net(points).softmax(dim=-1).max(dim=-1).values.numpy()


def regenerated_splits(cfg: dict):
    data = cfg["data"]
    return TwoDisksDataModule(
        disks=data["disks"],
        box=data["box"],
        n_ood_train=data["n_ood_train"],
        n_val=data["n_val"],
        n_test=data["n_test"],
        seed=cfg["seed"],
    ).generate()


def test_run_writes_a_confidence_map_png(trained_run) -> None:
    """confidence_map.png is a non-empty PNG."""
    run, _ = trained_run
    data = (run / "confidence_map.png").read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 1000


def test_confidence_map_scores_match_the_tested_weights(trained_run) -> None:
    """scores[i, j] is the max softmax of the tested checkpoint at (axis[j], axis[i]), and the
    axis spans the data box."""
    run, cfg = trained_run
    with np.load(run / "confidence_map.npz") as stored:
        axis, scores = stored["axis"], stored["scores"]
    low, high = cfg["data"]["box"]
    assert axis[0] == low and axis[-1] == high
    assert np.allclose(np.diff(axis), (high - low) / (len(axis) - 1), atol=1e-5)
    n = len(axis)
    assert scores.shape == (n, n)
    points = torch.tensor([[axis[j], axis[i]] for i in range(n) for j in range(n)])
    expected = max_softmax(weights_under_test(run, cfg), points).reshape(n, n)
    assert np.allclose(scores, expected, atol=1e-6, rtol=0)
    # Not a degenerate map: the trained network is not uniform over the plane.
    assert scores.max() - scores.min() > 0.1


def test_the_tested_weights_are_the_best_not_the_final_ones(trained_run) -> None:
    """test_ckpt defaults to best; here the best checkpoint is epoch 0 of 2, so the maps and
    scores matching it (tests above) were made with the best, not the final, weights."""
    run, cfg = trained_run
    assert cfg["test_ckpt"] == "best"
    (best,) = (run / "checkpoints").glob("best-*.ckpt")
    assert best.name == "best-epoch=000.ckpt"
    assert torch.load(best, map_location="cpu", weights_only=False)["epoch"] == 0
    assert cfg["trainer"]["max_epochs"] == 2


def test_last_checkpoint_holds_the_final_epoch(trained_run) -> None:
    """last.ckpt holds the weights of the final epoch (README: 'checkpoints/last.ckpt the last
    epoch'), which test_ckpt=last tests."""
    run, cfg = trained_run
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["epoch"] == cfg["trainer"]["max_epochs"] - 1


def test_confidence_map_support_is_the_disk_membership(trained_run) -> None:
    """support[i, j] says whether (axis[j], axis[i]) lies in one of the disks (||p - c|| <= r);
    the training points are the regenerated ones."""
    run, cfg = trained_run
    with np.load(run / "confidence_map.npz") as stored:
        axis, support = stored["axis"].astype(np.float64), stored["support"]
        id_x, id_y, ood_x, delta = stored["id_x"], stored["id_y"], stored["ood_x"], stored["delta"]
    x, y = axis[None, :], axis[:, None]
    expected = np.zeros((len(axis), len(axis)), dtype=bool)
    for disk in cfg["data"]["disks"]:
        (cx, cy), r = disk["center"], disk["radius"]
        expected |= (x - cx) ** 2 + (y - cy) ** 2 <= r**2
    assert np.array_equal(support, expected)
    assert 0 < support.sum() < support.size
    splits = regenerated_splits(cfg)
    assert np.array_equal(id_x, splits.id_x.numpy())
    assert np.array_equal(id_y, splits.id_y.numpy())
    assert np.array_equal(ood_x, splits.ood_x.numpy())
    assert float(delta) == cfg["delta"]


@pytest.mark.parametrize("stage", ["test", "val"])
def test_saved_scores_match_the_regenerated_sets(trained_run, stage: str) -> None:
    """scores.npz holds the tested weights' max softmax on the regenerated evaluation set of the
    same seed, and its ID truth by disk membership."""
    run, cfg = trained_run
    with np.load(run / "scores.npz") as stored:
        score, is_id = stored[f"{stage}_score"], stored[f"{stage}_is_id"]
    points = getattr(regenerated_splits(cfg), stage).x
    assert score.shape == (cfg["data"][f"n_{stage}"],)
    assert np.allclose(score, max_softmax(weights_under_test(run, cfg), points), atol=1e-6, rtol=0)
    expected_id = np.zeros(len(points), dtype=bool)
    p = points.double().numpy()
    for disk in cfg["data"]["disks"]:
        (cx, cy), r = disk["center"], disk["radius"]
        expected_id |= (p[:, 0] - cx) ** 2 + (p[:, 1] - cy) ** 2 <= r**2
    assert np.array_equal(is_id, expected_id)


def test_metrics_val_f1_is_the_best_epoch(trained_run) -> None:
    """metrics.json's val/f1 is the highest val/f1 logged during training (the best checkpoint's),
    read from csv/metrics.csv."""
    run, cfg = trained_run
    metrics = json.loads((run / "metrics.json").read_text())
    with open(run / "csv" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    max_epochs = cfg["trainer"]["max_epochs"]
    during_training = [
        float(row["val/f1"]) for row in rows if row["val/f1"] and int(row["epoch"]) < max_epochs
    ]
    assert len(during_training) == max_epochs == 2
    assert metrics["val/f1"] == pytest.approx(max(during_training), abs=1e-7)


def test_plots_false_writes_no_confidence_map(compose_config) -> None:
    """plots=false: no confidence_map.{png,npz}, while the run's other files are written."""
    cfg = compose_config("loss=ce_kl", "trainer.max_epochs=1", "plots=false", run="no_plots")
    train(cfg)
    run = Path(cfg.output_dir)
    assert (run / "metrics.json").is_file()
    assert (run / "scores.npz").is_file()
    assert not (run / "confidence_map.png").exists()
    assert not (run / "confidence_map.npz").exists()
    assert list(run.glob("confidence_map*")) == []


# ---------------------------------------------------------------------------------------------
# Everything reported can be recomputed from the run folder: metrics.json's detection numbers
# from scores.npz alone, with numpy and scikit-learn (no oodmix code).

SCORE_SETS = ("val", "test", "test_near", "test_far")


def test_scores_npz_holds_every_evaluation_set(trained_run) -> None:
    """val and test as before, plus each further test set (test_near, test_far): a float32
    score and a boolean ID truth per point."""
    run, cfg = trained_run
    with np.load(run / "scores.npz") as stored:
        saved = {name: stored[name] for name in stored.files}
    assert set(saved) == {f"{s}_{part}" for s in SCORE_SETS for part in ("score", "is_id")}
    for name in SCORE_SETS:
        assert saved[f"{name}_score"].dtype == np.float32
        assert saved[f"{name}_is_id"].dtype == np.bool_
        assert saved[f"{name}_score"].shape == saved[f"{name}_is_id"].shape
    splits = regenerated_splits(cfg)
    net = weights_under_test(run, cfg)
    for name in ("test_near", "test_far"):
        shifted = splits.extra_tests[name]
        assert np.array_equal(saved[f"{name}_is_id"], shifted.is_id.numpy())
        expected = max_softmax(net, shifted.x)
        assert np.allclose(saved[f"{name}_score"], expected, atol=1e-6, rtol=0)


def numpy_f1(score: np.ndarray, is_id: np.ndarray, delta: float) -> float:
    """F1 (ID positive) of "ID when score >= delta", delta in the scores' float32."""
    accepted = score >= np.float32(delta)
    tp = int((accepted & is_id).sum())
    fp = int((accepted & ~is_id).sum())
    fn = int((~accepted & is_id).sum())
    return 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 0.0


def numpy_fpr95(score: np.ndarray, is_id: np.ndarray) -> float:
    """The smallest share of OOD points accepted by a threshold that accepts >= 95 % of ID."""
    best = 1.0
    for delta in np.unique(score):
        accepted = score >= delta
        if 100 * int((accepted & is_id).sum()) >= 95 * int(is_id.sum()):
            best = min(best, float((accepted & ~is_id).sum() / (~is_id).sum()))
    return best


@pytest.mark.parametrize("name", SCORE_SETS)
def test_metrics_json_is_recomputed_from_scores_npz(trained_run, name: str) -> None:
    """{set}/f1 at delta, /f1_tuned at val/delta_best, /auroc, /aupr_in, /aupr_out and /fpr95
    of metrics.json, recomputed from scores.npz with numpy and scikit-learn."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    run, cfg = trained_run
    metrics = json.loads((run / "metrics.json").read_text())
    with np.load(run / "scores.npz") as stored:
        score, is_id = stored[f"{name}_score"], stored[f"{name}_is_id"]
    assert metrics[f"{name}/f1"] == pytest.approx(numpy_f1(score, is_id, cfg["delta"]), abs=1e-6)
    tuned = numpy_f1(score, is_id, metrics["val/delta_best"])
    assert metrics[f"{name}/f1_tuned"] == pytest.approx(tuned, abs=1e-6)
    assert metrics[f"{name}/auroc"] == pytest.approx(roc_auc_score(is_id, score), abs=1e-6)
    assert metrics[f"{name}/aupr_in"] == pytest.approx(
        average_precision_score(is_id, score), abs=1e-6
    )
    assert metrics[f"{name}/aupr_out"] == pytest.approx(
        average_precision_score(~is_id, -score), abs=1e-6
    )
    assert metrics[f"{name}/fpr95"] == pytest.approx(numpy_fpr95(score, is_id), abs=1e-6)


def test_val_delta_best_is_the_top_of_its_tied_interval(trained_run) -> None:
    """val/delta_best is a validation score reaching the best validation F1, the highest such
    score; every threshold down to the next lower distinct score decides alike there."""
    run, _ = trained_run
    metrics = json.loads((run / "metrics.json").read_text())
    with np.load(run / "scores.npz") as stored:
        score, is_id = stored["val_score"], stored["val_is_id"]
    distinct = np.unique(score)
    f1 = np.array([numpy_f1(score, is_id, d) for d in distinct])
    best = np.flatnonzero(f1 == f1.max())
    assert metrics["val/delta_best"] == distinct[best[-1]]
    assert metrics["val/f1_tuned"] == pytest.approx(f1.max(), abs=1e-6)
