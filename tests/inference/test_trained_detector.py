"""The Python API (oodmix.load_detector / TrainedDetector) against the network's own forward
pass and against the decisions a training run recorded."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

import oodmix
from oodmix.detectors import MaxLogitScore, MaxSoftmaxScore
from oodmix.inference import InferenceError, TrainedDetector, load_detector
from oodmix.models import MLP


def points(n: int = 500, seed: int = 0) -> torch.Tensor:
    """Points spread over the data's box [-10, 10]^2, a few of them far outside it."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=generator) * 20 - 10
    x[:10] *= 5
    return x


def network_of(ckpt: Path) -> torch.nn.Module:
    """The MLP of a checkpoint, built by hand from its state_dict."""
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    model = checkpoint["hyper_parameters"]["config"]["model"]
    net = MLP(2, 2, hidden=model["hidden"], activation=model["activation"])
    state = checkpoint["state_dict"]
    net.load_state_dict({k.removeprefix("net."): v for k, v in state.items() if k[:4] == "net."})
    return net.eval()


def test_api_equals_the_forward_pass_and_max_softmax_by_hand(msp_run) -> None:
    """Scores are the max softmax probability of the network's logits, computed here by hand
    (in float64, rounded to float32, as the API computes; a float32 pass agrees within 1e-6)."""
    detector = oodmix.load_detector(msp_run.tested_ckpt)
    x = points()
    with torch.no_grad():
        logits32 = network_of(msp_run.tested_ckpt)(x)
        logits = network_of(msp_run.tested_ckpt).double()(x.double())
    exp = (logits - logits.max(dim=1, keepdim=True).values).exp()
    by_hand = (exp / exp.sum(dim=1, keepdim=True)).max(dim=1).values.float()

    scores = detector.scores(x)
    assert scores.dtype == torch.float32
    assert torch.equal(scores, by_hand)
    torch.testing.assert_close(scores, MaxSoftmaxScore()(logits32), rtol=0, atol=1e-6)
    assert torch.equal(detector.is_ood(x), scores < 0.8)
    assert torch.equal(detector.predict(x), logits.argmax(dim=1))
    assert torch.equal(detector.predict(x), logits32.argmax(dim=1))
    assert detector.is_ood(x).any() and not detector.is_ood(x).all()  # both decisions occur

    # numpy in, numpy out: the same values.
    result = detector.detect(x.numpy())
    assert isinstance(result.score, np.ndarray) and result.score.dtype == np.float32
    assert result.is_ood.dtype == np.bool_ and result.predicted_class.dtype == np.int64
    np.testing.assert_array_equal(result.score, scores.numpy())
    np.testing.assert_array_equal(result.is_ood, (scores < 0.8).numpy())
    np.testing.assert_array_equal(detector.predict(x.double().numpy()), logits.argmax(1).numpy())

    assert (detector.num_features, detector.num_classes) == (2, 2)
    assert detector.threshold == 0.8 and "the run's delta" in detector.threshold_source
    assert detector.config == msp_run.config and detector.config["delta"] == 0.8
    assert isinstance(detector, TrainedDetector) and detector.device == torch.device("cpu")


@pytest.mark.parametrize("run_name", ["msp_run", "max_logit_run"])
def test_decisions_on_the_runs_test_points_equal_those_it_recorded(request, run_name) -> None:
    """scores.npz (SavedScores) holds every test point's score; the API gives the same scores,
    and at the run's threshold the same decisions, the run's test F1 and its accuracy."""
    run = request.getfixturevalue(run_name)
    metrics, config = run.metrics, run.config
    with np.load(run.dir / "scores.npz") as stored:
        saved = {name: stored[name] for name in stored.files}
    sets = ("val", "test", "test_near", "test_far")
    assert set(saved) == {f"{name}_{kind}" for name in sets for kind in ("score", "is_id")}
    n_test = config["data"]["n_test"]
    assert saved["test_score"].shape == (n_test,) and saved["test_score"].dtype == np.float32
    assert saved["test_is_id"].shape == (n_test,) and saved["test_is_id"].dtype == np.bool_

    splits = instantiate(config["data"]).generate()  # the run's data, from its seed
    test = splits.test
    np.testing.assert_array_equal(test.is_id.numpy(), saved["test_is_id"])

    detector = load_detector(run.tested_ckpt)
    if run_name == "msp_run":
        assert detector.threshold == config["delta"] == 0.8
    else:
        assert isinstance(detector.score, MaxLogitScore)
        assert detector.threshold == metrics["val/delta_best"]
        assert "val/delta_best" in detector.threshold_source
    result = detector.detect(test.x.numpy())
    np.testing.assert_allclose(result.score, saved["test_score"], rtol=0, atol=1e-6)
    # The run's rule on the run's own scores: ID when score >= threshold.
    recorded_ood = ~(torch.from_numpy(saved["test_score"]) >= detector.threshold).numpy()
    np.testing.assert_array_equal(result.is_ood, recorded_ood)

    is_id = saved["test_is_id"]
    tp = int((~result.is_ood & is_id).sum())
    fp = int((~result.is_ood & ~is_id).sum())
    fn = int((result.is_ood & is_id).sum())
    assert 2 * tp / (2 * tp + fp + fn) == pytest.approx(metrics["test/f1"], abs=1e-6)
    accuracy = (result.predicted_class[is_id] == test.y.numpy()[is_id]).mean()
    assert accuracy == pytest.approx(metrics["test/acc"], abs=1e-6)


def test_a_score_equal_to_the_threshold_is_in_distribution(msp_run) -> None:
    detector = load_detector(msp_run.tested_ckpt)
    x = points(50).numpy()
    score = detector.scores(x)[7]
    assert not detector.is_ood(x, delta=float(score))[7]
    above = float(np.nextafter(score, np.float32(np.inf)))
    assert detector.is_ood(x, delta=above)[7]
    with pytest.raises(InferenceError, match="delta=nan is not allowed"):
        detector.is_ood(x, delta=float("nan"))


def test_batch_size_does_not_change_the_results(msp_run) -> None:
    x = points(1000).numpy()
    whole = load_detector(msp_run.tested_ckpt).detect(x)
    small = load_detector(msp_run.tested_ckpt, batch_size=7).detect(x)
    for a, b in zip(whole, small):
        np.testing.assert_array_equal(a, b)


def copy_run(run, tmp_path: Path) -> Path:
    """The run's metrics.json and tested checkpoint in a new run folder; its checkpoints/."""
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    shutil.copy(run.dir / "metrics.json", tmp_path / "run" / "metrics.json")
    shutil.copy(run.tested_ckpt, folder / run.tested_ckpt.name)
    return folder


def test_a_tuned_threshold_is_used_only_for_the_weights_it_was_tuned_for(
    max_logit_run, tmp_path
) -> None:
    folder = copy_run(max_logit_run, tmp_path)
    tuned = max_logit_run.metrics["val/delta_best"]
    shutil.copy(folder / max_logit_run.tested_ckpt.name, folder / "same_weights.ckpt")
    assert load_detector(folder / "same_weights.ckpt").threshold == tuned

    checkpoint = torch.load(max_logit_run.tested_ckpt, map_location="cpu", weights_only=True)
    checkpoint["state_dict"]["net.0.bias"] = checkpoint["state_dict"]["net.0.bias"] + 0.1
    torch.save(checkpoint, folder / "other.ckpt")
    other = load_detector(folder / "other.ckpt")
    assert other.threshold is None
    assert "was tuned for the weights the run tested (best-epoch=" in other.threshold_source
    x = points(20)
    other.scores(x)  # scores and classes need no threshold
    with pytest.raises(InferenceError, match=r"no threshold: .* give one, e.g. is_ood\(x, delta"):
        other.is_ood(x)
    assert torch.equal(other.is_ood(x, delta=tuned), other.scores(x) < tuned)
    assert load_detector(folder / "other.ckpt", delta=1.5).threshold == 1.5

    (tmp_path / "run" / "metrics.json").unlink()
    missing = load_detector(folder / "same_weights.ckpt")
    assert missing.threshold is None and "holds no tuned threshold" in missing.threshold_source
    outside = tmp_path / "model.ckpt"
    shutil.copy(max_logit_run.tested_ckpt, outside)
    assert load_detector(outside).threshold is None


def test_a_fixed_threshold_needs_no_run_folder(msp_run, tmp_path) -> None:
    shutil.copy(msp_run.tested_ckpt, tmp_path / "model.ckpt")
    assert load_detector(tmp_path / "model.ckpt").threshold == 0.8


@pytest.mark.parametrize("delta", [1.5, 1.0, 0.0, -0.2])
def test_a_probability_threshold_outside_0_1_is_refused(msp_run, delta) -> None:
    """Max softmax probabilities lie in (0, 1]: at 1 or above every point is OOD, at 0 or
    below none (training refuses such a delta too); a max-logit threshold may be any number."""
    from oodmix.allowed import shown
    from oodmix.detectors.thresholds import DELTA_RANGE

    # Training refuses the same delta in the same words (one statement of its range).
    assert DELTA_RANGE == "a number strictly between 0 and 1"
    message = rf"delta={shown(delta)} is not allowed: .* delta must be {DELTA_RANGE}"
    with pytest.raises(InferenceError, match=message):
        load_detector(msp_run.tested_ckpt, delta=delta)
    detector = load_detector(msp_run.tested_ckpt)
    with pytest.raises(InferenceError, match=message):
        detector.is_ood(points(3), delta=delta)
    assert detector.is_ood(points(3), delta=0.5).shape == (3,)


def test_bad_points_and_checkpoints_are_refused_in_one_line(msp_run, tmp_path) -> None:
    detector = load_detector(msp_run.tested_ckpt)
    cases = [
        (np.zeros((3, 3)), "x has 3 features per point, the model takes 2"),
        (np.array([[0.0, 1.0], [np.nan, 0.0]]), "x has NaN or inf .* in row 1"),
        (torch.tensor([[0.0, float("inf")]]), "x has NaN or inf .* in row 0"),
        (np.array([[1e39, 0.0]]), "x has NaN or inf .* in row 0"),  # beyond float32
        (np.zeros(2), r"x must be 2-D \(points x features\), got shape \(2,\)"),
        (np.array([["a", "b"]]), "x must hold real numbers, got dtype <U1"),
    ]
    for x, message in cases:
        with pytest.raises(InferenceError, match=message) as caught:
            detector.scores(x)
        assert "\n" not in str(caught.value)
    assert detector.scores(np.zeros((0, 2))).shape == (0,)

    with pytest.raises(InferenceError, match=r"ckpt=.*nope\.ckpt: no such file"):
        load_detector(tmp_path / "nope.ckpt")
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    with pytest.raises(InferenceError, match="cannot be read as an oodmix checkpoint"):
        load_detector(tmp_path / "text.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "bare.ckpt")
    with pytest.raises(InferenceError, match="holds no oodmix run config"):
        load_detector(tmp_path / "bare.ckpt")


def test_a_checkpoint_builds_only_torch_modules(msp_run, tmp_path) -> None:
    """The config in a checkpoint names what is built: anything but a torch module is refused."""
    checkpoint = torch.load(msp_run.tested_ckpt, map_location="cpu", weights_only=True)
    checkpoint["hyper_parameters"]["config"]["detector"] = {"_target_": "os.getcwd"}
    torch.save(checkpoint, tmp_path / "odd.ckpt")
    with pytest.raises(
        InferenceError, match=r"detector\._target_=os\.getcwd is not a torch module"
    ):
        load_detector(tmp_path / "odd.ckpt")


def test_to_moves_the_detector_between_devices(msp_run) -> None:
    detector = load_detector(msp_run.tested_ckpt, device="auto")
    assert detector.to("cpu") is detector and detector.device.type == "cpu"
    x = points(100)
    on_cpu = detector.scores(x)
    if not torch.cuda.is_available():
        with pytest.raises(InferenceError, match="device=cuda is not allowed: torch finds no CUDA"):
            detector.to("cuda")
        return
    detector.to("cuda")
    assert detector.device.type == "cuda"
    torch.testing.assert_close(detector.scores(x), on_cpu, rtol=0, atol=1e-5)  # back on the CPU
    on_gpu = detector.detect(x.cuda())
    assert all(value.device.type == "cuda" for value in on_gpu)
    assert isinstance(detector.predict(x.numpy()), np.ndarray)
