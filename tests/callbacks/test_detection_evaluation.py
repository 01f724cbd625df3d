"""DetectionEvaluation end to end (compose + train()): every logged detection number recomputed
from the best checkpoint's weights on the regenerated evaluation sets, in plain Python."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from oodmix.models import MLP
from oodmix.runs.job import train

# One short run per detector serves every test here; whichever test asks first trains it.
# Same seed, loss and epochs for both, so the weights after each epoch are the same in both.
OVERRIDES = ["trainer.max_epochs=2", "seed=1", "plots=false"]
_RUNS: dict[str, tuple[dict, dict, Path]] = {}


@pytest.fixture
def trained(compose_config):
    """trained(detector) -> (metrics.json, resolved config, run folder), trained once."""

    def _get(detector: str) -> tuple[dict, dict, Path]:
        if detector not in _RUNS:
            cfg = compose_config(f"detector={detector}", *OVERRIDES, run=detector)
            train(cfg)
            resolved = OmegaConf.to_container(
                OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True
            )
            run = Path(cfg.output_dir)
            written = json.loads((run / "metrics.json").read_text())
            _RUNS[detector] = (written, resolved, run)
        return _RUNS[detector]

    return _get


# ---------------------------------------------------------------------------------------------
# Independent recomputation: the network rebuilt from the checkpoint file, the evaluation sets
# regenerated from the config, and every count, threshold and ranking metric in plain Python.


def best_checkpoint(run: Path) -> Path:
    (path,) = (run / "checkpoints").glob("best-*.ckpt")
    return path


def load_net(resolved: dict, checkpoint: Path) -> MLP:
    net = MLP(2, 2, hidden=list(resolved["model"]["hidden"]))
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    net.load_state_dict(
        {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
    )
    return net.eval()


def eval_sets(resolved: dict):
    """The validation and test sets, regenerated from the run's data config and seed."""
    splits = instantiate(resolved["data"]).generate()
    return splits.val, splits.test


def logits_of(net: MLP, eval_set) -> torch.Tensor:
    with torch.no_grad():
        return net(eval_set.x.cpu().float())


def msp_scores(logits: torch.Tensor) -> list[float]:
    """max_k softmax(logits)_k, in the network's float32."""
    return logits.softmax(-1).max(-1).values.tolist()


def energy_scores(logits: torch.Tensor) -> list[float]:
    """T * logsumexp(logits / T) with T = 1, in the network's float32."""
    return torch.logsumexp(logits, -1).tolist()


def f1_at(scores: list[float], is_id: list[bool], delta: float) -> float:
    """F1 (ID positive) of the rule "ID when score >= delta", counted one point at a time."""
    tp = sum(1 for s, y in zip(scores, is_id, strict=True) if y and s >= delta)
    fp = sum(1 for s, y in zip(scores, is_id, strict=True) if not y and s >= delta)
    fn = sum(1 for s, y in zip(scores, is_id, strict=True) if y and s < delta)
    return 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 0.0


def brute_force_best_f1(scores: list[float], is_id: list[bool]) -> tuple[float, Fraction]:
    """Every score as a candidate delta (ascending, counts at or above it by a sweep from the
    top); the highest exact F1, and among equal F1 the highest delta."""
    n_id = sum(is_id)
    points = sorted(zip(scores, is_id, strict=True), reverse=True)
    counts = {}  # delta -> (tp, fp) of "ID when score >= delta"
    tp = fp = 0
    for s, y in points:
        tp, fp = tp + y, fp + (not y)
        counts[s] = (tp, fp)  # the last point of a tie group leaves the group's total
    best = None
    for delta in sorted(counts):
        tp, fp = counts[delta]
        f1 = Fraction(2 * tp, tp + fp + n_id)  # 2tp / (2tp + fp + fn), fn = n_id - tp
        if best is None or f1 >= best[1]:
            best = (delta, f1)
    return best


def mann_whitney_auroc(scores: list[float], is_id: list[bool]) -> float:
    """Over all (ID, OOD) pairs: 1 if the ID score is higher, 1/2 if equal."""
    ids = [s for s, y in zip(scores, is_id, strict=True) if y]
    oods = [s for s, y in zip(scores, is_id, strict=True) if not y]
    wins = 0.0
    for a in ids:
        for b in oods:
            wins += 1.0 if a > b else 0.5 if a == b else 0.0
    return wins / (len(ids) * len(oods))


def fpr_at_95_tpr(scores: list[float], is_id: list[bool]) -> float:
    """The smallest FPR over thresholds among the scores whose TPR >= 95 % (exact integers)."""
    n_id = sum(is_id)
    n_ood = len(is_id) - n_id
    counts = {}
    tp = fp = 0
    for s, y in sorted(zip(scores, is_id, strict=True), reverse=True):
        tp, fp = tp + y, fp + (not y)
        counts[s] = (tp, fp)
    return min(fp / n_ood for tp, fp in counts.values() if 100 * tp >= 95 * n_id)


def average_precision(scores: list[float], positive: list[bool]) -> float:
    """Sum over distinct thresholds (descending) of (R(t) - R(t_prev)) * P(t), ties grouped."""
    n_pos = sum(positive)
    counts = {}
    tp = n = 0
    for s, p in sorted(zip(scores, positive, strict=True), reverse=True):
        tp, n = tp + p, n + 1
        counts[s] = (tp, n)
    ap, previous = 0.0, 0.0
    for t in sorted(counts, reverse=True):
        tp, n = counts[t]
        ap += (tp / n_pos - previous) * tp / n
        previous = tp / n_pos
    return ap


def id_accuracy(logits: torch.Tensor, eval_set) -> float:
    predicted = logits.argmax(-1).tolist()
    pairs = [(p, y) for p, y in zip(predicted, eval_set.y.tolist(), strict=True) if y >= 0]
    return sum(p == y for p, y in pairs) / len(pairs)


# ---------------------------------------------------------------------------------------------
# The default detector: max softmax probability, F1 at the fixed delta.


def test_msp_writes_the_detection_metrics(trained):
    """metrics.json of the default run names the detector and carries every detection metric."""
    metrics, _, _ = trained("msp")
    expected = {
        "test/auroc",
        "test/aupr_in",
        "test/aupr_out",
        "test/fpr95",
        "test/acc",
        "test/f1",
        "test/f1_tuned",
        "val/delta_best",
        "val/f1",
        "val/f1_tuned",
    }
    assert expected <= set(metrics)
    assert metrics["detector"] == "msp"


def test_msp_f1_is_at_the_fixed_delta(trained):
    """test/f1 equals a recount of "max softmax >= delta" by the best checkpoint."""
    metrics, resolved, run = trained("msp")
    _, test = eval_sets(resolved)
    scores = msp_scores(logits_of(load_net(resolved, best_checkpoint(run)), test))
    is_id = test.is_id.tolist()
    assert metrics["test/f1"] == pytest.approx(f1_at(scores, is_id, resolved["delta"]), abs=1e-6)
    # The fixed and the tuned threshold give different F1 here, so the two are told apart.
    assert metrics["test/f1"] != pytest.approx(metrics["test/f1_tuned"], abs=1e-3)


def test_msp_delta_best_is_the_brute_force_best_on_validation(trained):
    """val/delta_best (and val/f1_tuned) equal a brute-force best-F1 threshold on validation."""
    metrics, resolved, run = trained("msp")
    val, _ = eval_sets(resolved)
    scores = msp_scores(logits_of(load_net(resolved, best_checkpoint(run)), val))
    delta, f1 = brute_force_best_f1(scores, val.is_id.tolist())
    assert metrics["val/delta_best"] == pytest.approx(delta, rel=1e-7)
    assert metrics["val/f1_tuned"] == pytest.approx(float(f1), abs=1e-6)
    assert 0.0 < delta <= 1.0


def test_msp_f1_tuned_is_recounted_at_delta_best_on_test(trained):
    """test/f1_tuned equals the test F1 counted directly at val/delta_best."""
    metrics, resolved, run = trained("msp")
    _, test = eval_sets(resolved)
    scores = msp_scores(logits_of(load_net(resolved, best_checkpoint(run)), test))
    expected = f1_at(scores, test.is_id.tolist(), metrics["val/delta_best"])
    assert metrics["test/f1_tuned"] == pytest.approx(expected, abs=1e-6)


def test_msp_ranking_metrics_match_direct_computations(trained):
    """test/auroc, /fpr95, /aupr_in, /aupr_out and /acc recomputed on the test set."""
    metrics, resolved, run = trained("msp")
    _, test = eval_sets(resolved)
    logits = logits_of(load_net(resolved, best_checkpoint(run)), test)
    scores, is_id = msp_scores(logits), test.is_id.tolist()
    assert metrics["test/auroc"] == pytest.approx(mann_whitney_auroc(scores, is_id), abs=1e-6)
    assert metrics["test/fpr95"] == pytest.approx(fpr_at_95_tpr(scores, is_id), abs=1e-6)
    assert metrics["test/aupr_in"] == pytest.approx(average_precision(scores, is_id), abs=1e-6)
    assert metrics["test/aupr_out"] == pytest.approx(
        average_precision([-s for s in scores], [not y for y in is_id]), abs=1e-6
    )
    assert metrics["test/acc"] == pytest.approx(id_accuracy(logits, test), abs=1e-6)


# ---------------------------------------------------------------------------------------------
# detector=energy: no fixed scale, so F1 is taken at the threshold tuned on validation.


def test_energy_f1_is_at_the_validation_threshold(trained):
    """test/f1 = test/f1_tuned = the direct recount at val/delta_best with the energy score."""
    metrics, resolved, run = trained("energy")
    assert metrics["detector"] == "energy"
    net = load_net(resolved, best_checkpoint(run))
    val, test = eval_sets(resolved)
    val_scores = energy_scores(logits_of(net, val))
    delta, best_f1 = brute_force_best_f1(val_scores, val.is_id.tolist())
    assert metrics["val/delta_best"] == pytest.approx(delta, rel=1e-7)
    assert metrics["val/f1"] == pytest.approx(float(best_f1), abs=1e-6)
    test_scores, is_id = energy_scores(logits_of(net, test)), test.is_id.tolist()
    expected = f1_at(test_scores, is_id, metrics["val/delta_best"])
    assert metrics["test/f1"] == pytest.approx(metrics["test/f1_tuned"], abs=1e-7)
    assert metrics["test/f1"] == pytest.approx(expected, abs=1e-6)
    # The fixed delta would have given another F1 on this scale.
    assert f1_at(test_scores, is_id, resolved["delta"]) != pytest.approx(expected, abs=1e-3)


def test_energy_auroc_differs_from_msp_only_through_the_score(trained):
    """Same weights in both runs: each test/auroc is the Mann-Whitney AUROC of its own score."""
    msp_metrics, _, msp_run = trained("msp")
    metrics, resolved, run = trained("energy")
    # The premise: both runs tested the same weights.
    msp_state = torch.load(best_checkpoint(msp_run), map_location="cpu", weights_only=False)
    energy_state = torch.load(best_checkpoint(run), map_location="cpu", weights_only=False)
    assert msp_state["state_dict"].keys() == energy_state["state_dict"].keys()
    for key, value in msp_state["state_dict"].items():
        assert torch.equal(value, energy_state["state_dict"][key]), key
    _, test = eval_sets(resolved)
    logits = logits_of(load_net(resolved, best_checkpoint(run)), test)
    is_id = test.is_id.tolist()
    energy_auroc = mann_whitney_auroc(energy_scores(logits), is_id)
    assert metrics["test/auroc"] == pytest.approx(energy_auroc, abs=1e-6)
    assert msp_metrics["test/auroc"] == pytest.approx(
        mann_whitney_auroc(msp_scores(logits), is_id), abs=1e-6
    )
    assert metrics["test/auroc"] != pytest.approx(msp_metrics["test/auroc"], abs=1e-3)
    assert metrics["test/acc"] == pytest.approx(msp_metrics["test/acc"], abs=1e-7)
