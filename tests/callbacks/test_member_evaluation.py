"""DetectionEvaluation of a stack of K runs: every metric is (K,), and member k's value is the
one the same callback computes for member k's outputs alone (its solo run), which is checked
here, and for the F1 at a threshold also against a hand count."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from oodmix.callbacks import DetectionEvaluation
from oodmix.callbacks.detection_evaluation import ALL_METRICS
from oodmix.detectors.max_logit import MaxLogitScore
from oodmix.detectors.max_softmax import MaxSoftmaxScore
from oodmix.metrics import ThresholdDetection

K, N, C = 4, 40, 3


def member_outputs(seed: int = 0) -> dict[str, torch.Tensor]:
    """Logits (K, N, C) on a coarse grid (scores tie within a member), is_id and y (K, N)."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randint(-6, 7, (K, N, C), generator=generator).float() / 2
    is_id = torch.rand(K, N, generator=generator) < 0.5
    is_id[0, :3] = True  # member 0: three ID points only
    is_id[0, 3:] = False
    y = torch.randint(0, C, (K, N), generator=generator)
    return {"logits": logits, "is_id": is_id, "y": torch.where(is_id, y, -1)}


def evaluate(callback: DetectionEvaluation, outputs: dict, members: int | None) -> dict:
    """One validation pass of `callback` (outside fit: every metric) over `outputs` in two
    batches; the published values by name."""
    trainer = SimpleNamespace(
        datamodule=SimpleNamespace(num_classes=C, test_set_names=["test"]),
        state=SimpleNamespace(fn="validate"),
        callback_metrics={},
        progress_bar_metrics={},
        loggers=[],
        current_epoch=0,
        global_step=0,
    )
    module = SimpleNamespace(members=members, device=torch.device("cpu"))
    callback.setup(trainer, module, "validate")
    callback.on_validation_epoch_start(trainer, module)
    points = outputs["logits"].shape[-2]
    for part in (slice(0, points // 2), slice(points // 2, points)):
        cut = {name: value[..., part] if name != "logits" else value[..., part, :]
               for name, value in outputs.items()}  # fmt: skip
        batch = {"is_id": cut["is_id"], "y": cut["y"]}
        callback.on_validation_batch_end(trainer, module, {"logits": cut["logits"]}, batch, 0)
    callback.on_validation_epoch_end(trainer, module)
    return trainer.callback_metrics


@pytest.mark.parametrize("detector", [MaxSoftmaxScore(), MaxLogitScore()], ids=["msp", "logit"])
def test_every_members_metrics_are_its_solo_evaluations(detector) -> None:
    outputs = member_outputs()
    deltas = [0.5, 0.6, 0.8, 0.9]
    stacked = evaluate(DetectionEvaluation(deltas, detector), outputs, members=K)
    assert {name.removeprefix("val/") for name in stacked} == ALL_METRICS
    for k in range(K):
        alone = {name: value[k] for name, value in outputs.items()}
        solo = evaluate(DetectionEvaluation(deltas[k], detector), alone, members=None)
        assert solo.keys() == stacked.keys()
        for name, value in solo.items():
            assert stacked[name].shape == (K,)
            assert stacked[name].dtype == value.dtype, name
            assert torch.equal(stacked[name][k], value) or (
                value.isnan() and stacked[name][k].isnan()
            ), (name, k, stacked[name][k], value)


def hand_f1(scores: list[float], is_id: list[bool], delta: float) -> float:
    """2 tp / (2 tp + fp + fn), ID positive, of "ID when score >= delta", counted one by one."""
    tp = fp = fn = 0
    for score, truth in zip(scores, is_id):
        if score >= delta and truth:
            tp += 1
        elif score >= delta:
            fp += 1
        elif truth:
            fn += 1
    return 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 0.0


def as_float32(value: float) -> float:
    return torch.tensor(value, dtype=torch.float32).item()


def test_a_members_f1_is_counted_at_its_own_delta() -> None:
    outputs = member_outputs()
    scores = MaxSoftmaxScore()(outputs["logits"])  # (K, N) float32
    # Below every score, one of the member's own scores (a tie, decided by >=), the paper's
    # 0.8, and above every score.
    deltas = [0.0, float(scores[1, 3]), 0.8, 1.5]
    metric = ThresholdDetection(deltas)
    metric.update(scores, outputs["is_id"])
    f1 = metric.compute()["f1"]
    assert f1.shape == (K,)
    for k, delta in enumerate(deltas):
        # The scores are float32: delta is compared rounded to float32, as torch does.
        by_hand = hand_f1(scores[k].tolist(), outputs["is_id"][k].tolist(), as_float32(delta))
        assert f1[k].item() == as_float32(by_hand)
    assert 0 < f1[1] < 1 and f1[3] == 0.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_a_members_delta_is_rounded_to_the_scores_dtype_as_in_the_solo_run(dtype) -> None:
    delta = 0.8  # not a float16 or bfloat16 number: rounded to one just below or above it
    rounded = torch.tensor(delta, dtype=dtype)
    scores = torch.stack([rounded, rounded.nextafter(torch.tensor(0.0, dtype=dtype))])
    scores = scores.expand(2, 2).clone()  # 2 members, each: the rounded delta, and just below
    is_id = torch.tensor([[True, True], [True, False]])
    stacked = ThresholdDetection([delta, delta])
    stacked.update(scores, is_id)
    f1 = stacked.compute()["f1"]
    for k in range(2):
        solo = ThresholdDetection(delta)
        solo.update(scores[k], is_id[k])
        assert f1[k].item() == solo.compute()["f1"].item()
    assert f1.tolist() == [as_float32(2 / 3), 1.0]  # the rounded delta itself is ID


def test_a_member_with_non_finite_scores_fails_alone() -> None:
    outputs = member_outputs()
    outputs["logits"][2, 5] = float("nan")
    callback = DetectionEvaluation([0.8] * K)
    values = evaluate(callback, outputs, members=K)
    assert list(callback.member_failures) == [2]
    assert "1 of 40 val scores are not finite" in str(callback.member_failures[2])
    assert values["val/f1"][2].isnan() and not values["val/f1"][[0, 1, 3]].isnan().any()


def test_a_non_finite_score_of_a_single_run_stops_its_evaluation() -> None:
    outputs = {name: value[1] for name, value in member_outputs().items()}
    outputs["logits"][5] = float("inf")
    from oodmix.metrics import NonFiniteScores

    with pytest.raises(NonFiniteScores, match="1 of 40 val scores are not finite"):
        evaluate(DetectionEvaluation(0.8), outputs, members=None)


def test_a_members_deltas_move_with_the_metric() -> None:
    """Per-member deltas are a buffer of the metric (moved by .to(device) once, not copied
    to the device on every batch); one run's delta stays a float."""
    stacked = ThresholdDetection([0.5, 0.6])
    assert dict(stacked.named_buffers())["delta"].tolist() == [0.5, 0.6]
    assert stacked.delta.dtype == torch.float64  # each job's delta exactly
    assert ThresholdDetection(0.8).delta == 0.8


def test_each_member_reads_one_value_as_every_members() -> None:
    from oodmix.callbacks.members import each_member

    assert each_member([0.5, 0.6]) == [0.5, 0.6]
    assert each_member(0.8) == [0.8]
    assert each_member("out/0") == ["out/0"]
    assert DetectionEvaluation([0.7]).delta == 0.7 and DetectionEvaluation(0.7).delta == 0.7
