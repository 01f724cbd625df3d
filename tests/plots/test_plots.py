"""Figures: F1 against delta, curve statistics, the figure files, and which ones a report makes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sweep_factory import make_job

from oodmix.files import save_figure_atomic
from oodmix.plots.confidence import ConfidenceMapData, confidence_map_figure
from oodmix.plots.sweeps import f1_against_threshold, f1_delta_figure, heatmap_figure, stack_curves
from oodmix.reporting.report import build_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    """A non-empty PNG: the 8-byte signature and more than 1000 bytes."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 1000


def plain_f1(scores: list[float], is_id: list[bool], delta: float) -> float:
    """F1 with ID positive of "ID when score >= delta", counted in a loop."""
    tp = fp = fn = 0
    for score, truth in zip(scores, is_id, strict=True):
        predicted = score >= delta
        tp += predicted and truth
        fp += predicted and not truth
        fn += truth and not predicted
    return 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 0.0


def small_map(n: int = 20, num_classes: int = 2) -> ConfidenceMapData:
    """A hand-made n x n map: score falls off from the centre, support is the unit disk."""
    rng = np.random.default_rng(0)
    axis = np.linspace(-2.0, 2.0, n, dtype=np.float32)
    x, y = np.meshgrid(axis, axis)  # x varies along columns: scores[i, j] at (axis[j], axis[i])
    scores = (1.0 / num_classes + (1 - 1.0 / num_classes) * np.exp(-(x**2 + y**2))).astype(
        np.float32
    )
    id_x = rng.uniform(-1, 1, size=(30, 2)).astype(np.float32)
    return ConfidenceMapData(
        axis=axis,
        scores=scores,
        support=x**2 + y**2 <= 1.0,
        delta=0.8,
        id_x=id_x,
        id_y=np.arange(30) % num_classes,
        ood_x=rng.uniform(-2, 2, size=(40, 2)).astype(np.float32),
    )


# --- F1 against delta ------------------------------------------------------------------------

SCORES = [0.25, 0.5, 0.5, 0.75, 0.9, 0.1, 0.625]
IS_ID = [True, True, False, True, False, False, True]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_f1_against_threshold_matches_a_plain_count(dtype) -> None:
    """Every delta, including 0.5 that two scores equal exactly (they count as ID) and 0.95
    above every score, gives the F1 of a direct count."""
    deltas = np.array([0.0, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 0.95])
    curve = f1_against_threshold(np.array(SCORES, dtype=dtype), np.array(IS_ID), deltas)
    expected = [plain_f1(SCORES, IS_ID, float(d)) for d in deltas]
    assert curve.shape == (len(deltas),)
    assert curve.tolist() == pytest.approx(expected, abs=1e-12)


def test_f1_against_threshold_hand_values() -> None:
    """At delta 0.5: predicted ID = 0.5, 0.5, 0.75, 0.9, 0.625 -> tp 3, fp 2, fn 1, F1 6/9;
    above every score: F1 0."""
    curve = f1_against_threshold(np.array(SCORES), np.array(IS_ID), np.array([0.5, 0.95]))
    assert curve[0] == pytest.approx(6 / 9, abs=1e-12)
    assert curve[1] == 0.0


def test_f1_against_threshold_nothing_id() -> None:
    """No ID point and nothing predicted ID: F1 is 0, not NaN."""
    curve = f1_against_threshold(np.array([0.2, 0.3]), np.array([False, False]), np.array([0.9]))
    assert curve.tolist() == [0.0]


# --- stack_curves ----------------------------------------------------------------------------


def test_stack_curves_mean_and_sample_std() -> None:
    """Mean over curves and the sample (ddof=1) std, point by point."""
    curves = [np.array([0.1, 0.5, 0.9]), np.array([0.3, 0.5, 0.6]), np.array([0.2, 0.8, 0.0])]
    mean, std = stack_curves(curves)
    table = np.array([[0.1, 0.5, 0.9], [0.3, 0.5, 0.6], [0.2, 0.8, 0.0]])
    assert np.allclose(mean, table.mean(axis=0), atol=1e-12, rtol=0)
    assert np.allclose(std, table.std(axis=0, ddof=1), atol=1e-12, rtol=0)


def test_stack_curves_two_curves_by_hand() -> None:
    """[0, 1] and [2, 3]: mean [1, 2], sample std sqrt(2) at both points."""
    mean, std = stack_curves([np.array([0.0, 1.0]), np.array([2.0, 3.0])])
    assert mean.tolist() == [1.0, 2.0]
    assert std.tolist() == pytest.approx([2**0.5, 2**0.5], abs=1e-12)


def test_stack_curves_single_curve_has_zero_std() -> None:
    """One curve: the mean is the curve itself and the band is zero."""
    mean, std = stack_curves([np.array([0.2, 0.4, 0.6])])
    assert mean.tolist() == [0.2, 0.4, 0.6]
    assert std.tolist() == [0.0, 0.0, 0.0]


# --- figure files ----------------------------------------------------------------------------


def test_heatmap_figure_saves_a_png(tmp_path: Path) -> None:
    """A 2 x 2 heatmap (with one missing cell in a second panel) saves as a PNG."""
    full = {("0.2", "0.5"): 0.3, ("1.0", "0.5"): 0.4, ("0.2", "1.0"): 0.5, ("1.0", "1.0"): 0.6}
    partial = {("0.2", "0.5"): 0.35, ("1.0", "1.0"): 0.55}
    figure = heatmap_figure({"loss=ce": full, "loss=ce_kl": partial}, "mixup.alpha", "beta", "F1")
    save_figure_atomic(figure, tmp_path / "heatmap.png")
    assert_png(tmp_path / "heatmap.png")


def test_f1_delta_figure_saves_a_png(tmp_path: Path) -> None:
    """Two curves with bands and the marked delta save as a PNG."""
    deltas = np.linspace(0.5, 1.0, 51)
    curves = {
        "a": (deltas, 1 - deltas, np.full_like(deltas, 0.05)),
        "b": (deltas, deltas / 2, np.zeros_like(deltas)),
    }
    save_figure_atomic(f1_delta_figure(curves, 0.8, title="t"), tmp_path / "f1.png")
    assert_png(tmp_path / "f1.png")


def test_confidence_map_figure_saves_a_png(tmp_path: Path) -> None:
    """Two hand-made 20 x 20 confidence maps side by side save as a PNG; no temporary left."""
    figure = confidence_map_figure([("first", small_map()), ("second", small_map())])
    save_figure_atomic(figure, tmp_path / "maps.png")
    assert_png(tmp_path / "maps.png")
    assert [p.name for p in tmp_path.iterdir()] == ["maps.png"]


def test_confidence_map_data_round_trip_is_exact(tmp_path: Path) -> None:
    """save then load gives back every array with its dtype and values, and delta."""
    data = small_map()
    data.save(tmp_path / "map.npz")
    loaded = ConfidenceMapData.load(tmp_path / "map.npz")
    for name in ("axis", "scores", "support", "id_x", "id_y", "ood_x"):
        original, restored = getattr(data, name), getattr(loaded, name)
        assert restored.dtype == original.dtype, name
        assert np.array_equal(restored, original), name
    assert loaded.delta == 0.8 and isinstance(loaded.delta, float)
    assert loaded.num_classes == 2


# --- which figures build_report makes --------------------------------------------------------


def grid_sweep(sweep: Path, cells: list[tuple[str, str]], seeds: int = 2) -> None:
    """One job per (beta, mixup.alpha) cell and seed."""
    n = 0
    for beta, alpha in cells:
        for seed in range(seeds):
            overrides = [f"beta={beta}", f"mixup.alpha={alpha}", f"seed={seed}"]
            metrics = {"test/f1": 0.1 * (n + 1), "val/f1": 0.5, "seed": seed}
            make_job(sweep, n, overrides, metrics)
            n += 1


def loss_sweep(sweep: Path, losses=("ce", "ce_kl_mixup"), seeds: int = 2) -> list[Path]:
    """One job per objective and seed."""
    jobs = []
    for n, (loss, seed) in enumerate((loss, seed) for loss in losses for seed in range(seeds)):
        metrics = {"test/f1": 0.2 + 0.1 * n, "val/f1": 0.5, "seed": seed, "loss": loss}
        jobs.append(make_job(sweep, n, [f"loss={loss}", f"seed={seed}"], metrics))
    return jobs


def test_report_heatmap_for_a_full_beta_alpha_grid(tmp_path: Path) -> None:
    """A full 2 x 2 grid over beta and mixup.alpha (2 seeds each) gives heatmap_beta_alpha.png,
    linked from table.md."""
    grid_sweep(tmp_path, [("0.5", "0.2"), ("0.5", "1.0"), ("1.0", "0.2"), ("1.0", "1.0")])
    report = build_report(tmp_path)
    assert_png(tmp_path / "heatmap_beta_alpha.png")
    assert tmp_path / "heatmap_beta_alpha.png" in report.written
    assert "![heatmap_beta_alpha](heatmap_beta_alpha.png)" in (tmp_path / "table.md").read_text()


def test_report_no_heatmap_for_an_incomplete_grid(tmp_path: Path) -> None:
    """Three of the four (beta, alpha) cells: not a full grid, no heatmap."""
    grid_sweep(tmp_path, [("0.5", "0.2"), ("0.5", "1.0"), ("1.0", "0.2")])
    build_report(tmp_path)
    assert (tmp_path / "table.md").is_file()
    assert not (tmp_path / "heatmap_beta_alpha.png").exists()


def test_report_no_heatmap_when_only_beta_is_swept(tmp_path: Path) -> None:
    """mixup.alpha not swept: no heatmap."""
    for n, beta in enumerate(["0.5", "1.0", "2.0"]):
        make_job(tmp_path, n, [f"beta={beta}", "seed=0"], {"test/f1": 0.5, "seed": 0})
    build_report(tmp_path)
    assert not (tmp_path / "heatmap_beta_alpha.png").exists()


def test_report_f1_vs_delta_from_saved_scores(tmp_path: Path) -> None:
    """Jobs with scores.npz give f1_vs_delta.png; the same sweep without them does not."""
    without = tmp_path / "without"
    loss_sweep(without)
    build_report(without)
    assert not (without / "f1_vs_delta.png").exists()

    with_scores = tmp_path / "with"
    rng = np.random.default_rng(0)
    for job in loss_sweep(with_scores):
        np.savez(
            job / "scores.npz",
            test_score=rng.uniform(0.5, 1.0, 50).astype(np.float32),
            test_is_id=rng.uniform(size=50) < 0.3,
            val_score=rng.uniform(0.5, 1.0, 50).astype(np.float32),
            val_is_id=rng.uniform(size=50) < 0.3,
        )
    report = build_report(with_scores)
    assert_png(with_scores / "f1_vs_delta.png")
    assert with_scores / "f1_vs_delta.png" in report.written


@pytest.mark.parametrize(("paper", "name", "other"), [
    (True, "figure1.png", "confidence_maps.png"),
    (False, "confidence_maps.png", "figure1.png"),
])  # fmt: skip
def test_report_confidence_maps(tmp_path: Path, paper: bool, name: str, other: str) -> None:
    """Jobs with confidence_map.npz give figure1.png with paper=True, confidence_maps.png
    otherwise; without the maps, neither."""
    for job in loss_sweep(tmp_path / "with"):
        small_map().save(job / "confidence_map.npz")
    build_report(tmp_path / "with", paper=paper)
    assert_png(tmp_path / "with" / name)
    assert not (tmp_path / "with" / other).exists()

    loss_sweep(tmp_path / "without")
    build_report(tmp_path / "without", paper=paper)
    assert not (tmp_path / "without" / name).exists()
