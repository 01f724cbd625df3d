"""The mixup-gain study: ce_kl_mixup jobs paired with ce_kl jobs by beta and seed, on hand-made
sweep folders with hand-chosen F1 values (no training)."""

from __future__ import annotations

import csv
import io
import math
import statistics
from pathlib import Path

import numpy as np
import pytest
from console_scripts import run_module
from sweep_factory import make_job

from oodmix.plots.sweeps import heatmap_figure
from oodmix.reporting.mixup_gain import PROG, Study, gain_figure, main, pair_sweeps

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# (test/f1, test/f1_tuned) of the ce_kl jobs, by (beta, seed).
BASELINE = {
    (0.1, 0): (0.50, 0.80),
    (0.1, 1): (0.60, 0.85),
    (0.1, 2): (0.70, 0.90),
    (1.0, 0): (0.80, 0.90),
    (1.0, 1): (0.85, 0.92),
    (1.0, 2): (0.90, 0.94),
}
# (test/f1, test/f1_tuned) of the ce_kl_mixup jobs, by (beta, alpha, seed); None: the job failed.
MIXUP = {
    # gains in f1 +0.05, 0 (a tie), +0.10; in f1_tuned -0.02, 0, +0.01
    (0.1, 0.2, 0): (0.55, 0.78),
    (0.1, 0.2, 1): (0.60, 0.85),
    (0.1, 0.2, 2): (0.80, 0.91),
    # seed 2 failed (no metrics.json): two pairs; gains +0.10, +0.10 and 0, -0.05
    (0.1, 1.0, 0): (0.60, 0.80),
    (0.1, 1.0, 1): (0.70, 0.80),
    (0.1, 1.0, 2): None,
    # gains -0.10, -0.05, -0.05 and +0.05, +0.01, 0
    (1.0, 0.2, 0): (0.70, 0.95),
    (1.0, 0.2, 1): (0.80, 0.93),
    (1.0, 0.2, 2): (0.85, 0.94),
    # written in the job order seed 2, 0, 1 (below): gains +0.10, +0.10, -0.10; f1_tuned all ties
    (1.0, 1.0, 2): (0.80, 0.94),
    (1.0, 1.0, 0): (0.90, 0.90),
    (1.0, 1.0, 1): (0.95, 0.92),
    # its ce_kl partner (beta 1, seed 3) failed: no pair
    (1.0, 0.2, 3): (0.99, 0.99),
}
# The expected gains per (beta, alpha) cell, in seed order.
GAINS = {
    "test/f1": {
        (0.1, 0.2): [0.05, 0.0, 0.10],
        (0.1, 1.0): [0.10, 0.10],
        (1.0, 0.2): [-0.10, -0.05, -0.05],
        (1.0, 1.0): [0.10, 0.10, -0.10],
    },
    "test/f1_tuned": {
        (0.1, 0.2): [-0.02, 0.0, 0.01],
        (0.1, 1.0): [0.0, -0.05],
        (1.0, 0.2): [0.05, 0.01, 0.0],
        (1.0, 1.0): [0.0, 0.0, 0.0],
    },
}


def job_metrics(loss: str, seed: int, f1: float, f1_tuned: float) -> dict:
    return {"test/f1": f1, "test/f1_tuned": f1_tuned, "seed": seed, "loss": loss}


def mixup_job(sweep: Path, n: int, beta, alpha, seed: int, values, *extra: str) -> Path:
    """A ce_kl_mixup job; values None: no metrics.json (it did not finish)."""
    overrides = ["loss=ce_kl_mixup", f"beta={beta:g}", f"mixup.alpha={alpha:g}", f"seed={seed}"]
    metrics = None if values is None else job_metrics("ce_kl_mixup", seed, *values)
    return make_job(sweep, n, [*overrides, "plots=False", *extra], metrics)


def baseline_job(sweep: Path, n: int, beta, seed: int, values, *extra: str, failure=None) -> Path:
    overrides = ["loss=ce_kl", f"beta={beta:g}", f"seed={seed}", "plots=False", *extra]
    metrics = None if values is None else job_metrics("ce_kl", seed, *values)
    return make_job(sweep, n, overrides, metrics, failure=failure)


@pytest.fixture
def sweeps(tmp_path: Path) -> tuple[Path, Path]:
    """<tmp>/study/ce_kl_mixup and <tmp>/study/ce_kl, filled from MIXUP and BASELINE, plus a
    ce_kl job that failed (beta 1, seed 3, with failure.json) and a finished ce_kl job of a
    beta the mixup sweep does not have (beta 3)."""
    mixup_dir, baseline_dir = tmp_path / "study" / "ce_kl_mixup", tmp_path / "study" / "ce_kl"
    for n, ((beta, alpha, seed), values) in enumerate(MIXUP.items()):
        mixup_job(mixup_dir, n, beta, alpha, seed, values)
    for n, ((beta, seed), values) in enumerate(BASELINE.items()):
        baseline_job(baseline_dir, n, beta, seed, values)
    failure = {"type": "RuntimeError", "message": "training diverged"}
    baseline_job(baseline_dir, 6, 1.0, 3, None, failure=failure)
    baseline_job(baseline_dir, 7, 3.0, 0, (0.95, 0.96))
    return mixup_dir, baseline_dir


def cells(study: Study, metric: str) -> dict:
    return {(cell.beta, cell.alpha): cell for cell in study.cells(metric)}


# --- pairing and statistics ------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["test/f1", "test/f1_tuned"])
def test_mean_sem_share_and_seeds_per_cell(sweeps, metric) -> None:
    """Per cell: mean gain, SEM = sample std / sqrt(n), share of seeds with gain > 0, n."""
    found = cells(pair_sweeps(*sweeps), metric)
    assert set(found) == set(GAINS[metric])
    for key, gains in GAINS[metric].items():
        cell = found[key]
        assert cell.gains == pytest.approx(gains, abs=1e-12)
        assert cell.n_seeds == len(gains)
        assert cell.mean_gain == pytest.approx(sum(gains) / len(gains), abs=1e-12)
        assert cell.sem == pytest.approx(statistics.stdev(gains) / math.sqrt(len(gains)), abs=1e-12)
        assert cell.share_won == pytest.approx(sum(g > 0 for g in gains) / len(gains))


def test_hand_computed_cell(sweeps) -> None:
    """beta 0.1, alpha 0.2, test/f1: gains 0.05, 0, 0.10 -> mean 0.05, std 0.05, SEM
    0.05 / sqrt(3), won 2 of 3 (the tie is not a win)."""
    cell = cells(pair_sweeps(*sweeps), "test/f1")[(0.1, 0.2)]
    assert cell.mean_gain == pytest.approx(0.05, abs=1e-12)
    assert cell.sem == pytest.approx(0.05 / math.sqrt(3), abs=1e-12)
    assert (cell.wins, cell.n_seeds, cell.share_won) == (2, 3, pytest.approx(2 / 3))


def test_ties_count_as_not_won(sweeps) -> None:
    """Equal F1 gives a gain of exactly 0, which is not a win: all ties -> share 0, mean 0."""
    study = pair_sweeps(*sweeps)
    tie = cells(study, "test/f1")[(0.1, 0.2)]
    assert tie.gains[1] == 0.0
    all_ties = cells(study, "test/f1_tuned")[(1.0, 1.0)]
    assert all_ties.gains == [0.0, 0.0, 0.0]
    assert (all_ties.mean_gain, all_ties.sem, all_ties.wins, all_ties.share_won) == (0, 0, 0, 0)


def test_pairs_by_beta_and_seed_not_job_order(sweeps) -> None:
    """The beta 1, alpha 1 jobs are numbered seed 2, 0, 1: each still meets the ce_kl job of its
    own seed (same data, same initial weights), and one ce_kl job serves every alpha."""
    study = pair_sweeps(*sweeps)
    for pair in study.pairs:
        assert pair.mixup.metrics["seed"] == pair.baseline.metrics["seed"] == pair.seed
        assert pair.baseline.overrides["beta"] == f"{pair.beta:g}"
    by_seed = {p.seed: p for p in study.pairs if (p.beta, p.alpha) == (1.0, 1.0)}
    assert {s: by_seed[s].gain("test/f1") for s in (0, 1, 2)} == pytest.approx(
        {0: 0.10, 1: 0.10, 2: -0.10}, abs=1e-12
    )
    partners = [p.baseline.name for p in study.pairs if (p.beta, p.seed) == (1.0, 0)]
    assert partners == ["3", "3"]  # ce_kl job 3 (beta 1, seed 0), for alpha 0.2 and 1
    assert len(study.pairs) == 11


def test_failed_and_unpaired_jobs_are_listed_not_dropped(sweeps) -> None:
    """A failed job of either sweep is skipped and named with its reason; a finished job whose
    partner failed or does not exist is skipped and named too."""
    study = pair_sweeps(*sweeps)
    assert study.failed == [
        "ce_kl_mixup job 5 (beta=0.1 mixup.alpha=1 seed=2): "
        "did not finish (no metrics.json, no failure.json)",
        "ce_kl job 6 (beta=1 seed=3): RuntimeError: training diverged",
    ]
    assert study.unpaired == [
        "ce_kl_mixup job 12 (beta=1 mixup.alpha=0.2 seed=3): its ce_kl partner, job 6, failed",
        "ce_kl job 7 (beta=3 seed=0): no finished ce_kl_mixup job has its beta and seed",
    ]
    assert all(p.seed != 3 for p in study.pairs)  # the job whose partner failed counts nowhere


def test_a_missing_metric_leaves_the_pair_out_of_that_table_only(tmp_path: Path) -> None:
    """A metrics.json without test/f1_tuned: the pair counts for test/f1, not for f1_tuned, and
    the report says so."""
    mixup_dir, baseline_dir = tmp_path / "m", tmp_path / "b"
    make_job(mixup_dir, 0, ["loss=ce_kl_mixup", "beta=1", "mixup.alpha=1", "seed=0"],
             {"test/f1": 0.9, "loss": "ce_kl_mixup"})  # fmt: skip
    baseline_job(baseline_dir, 0, 1.0, 0, (0.8, 0.85))
    study = pair_sweeps(mixup_dir, baseline_dir)
    assert [c.gains for c in study.cells("test/f1")] == [pytest.approx([0.1])]
    assert study.cells("test/f1_tuned") == []
    main([str(mixup_dir), str(baseline_dir)])
    assert "- 1 pairs lack test/f1_tuned: left out of its table" in (
        (tmp_path / "mixup_gain.md").read_text()
    )


# --- the files -------------------------------------------------------------------------------


def test_main_writes_md_csv_png_beside_the_sweeps(sweeps, capsys) -> None:
    """Default out: the folder holding both sweeps; the tables and the paths are printed."""
    main([str(sweeps[0]), str(sweeps[1])])
    out_dir = sweeps[0].parent
    printed = capsys.readouterr().out
    names = ["mixup_gain.md", "mixup_gain.csv", "mixup_gain.png"]
    for name in names:
        assert f"wrote {out_dir / name}" in printed
    assert (out_dir / "mixup_gain.md").read_text() in printed
    data = (out_dir / "mixup_gain.png").read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1000


def test_markdown_tables_and_header(sweeps) -> None:
    """Rows beta, columns alpha, cells 'mean gain (won/seeds)'; the baseline's F1 per beta; a
    header with both folders, the number of pairs and every skipped job."""
    main([str(sweeps[0]), str(sweeps[1])])
    text = (sweeps[0].parent / "mixup_gain.md").read_text()
    mixup_dir, baseline_dir = sweeps
    assert f"`{mixup_dir}`: 13 jobs, 12 finished, 1 failed" in text
    assert f"`{baseline_dir}`: 8 jobs, 7 finished, 1 failed" in text
    assert "- 11 pairs: 2 betas x 2 alphas, seeds 0, 1, 2." in text
    assert "a tie counts as not won" in text
    assert "Failed jobs (skipped): 2" in text
    assert "- ce_kl job 6 (beta=1 seed=3): RuntimeError: training diverged" in text
    assert "Finished jobs without a partner (skipped): 2" in text
    f1_section = text.split("## Gain in test/f1 ")[1].split("##")[0]
    assert "| beta \\ mixup.alpha | 0.2 | 1 |" in f1_section
    assert "| 0.1 | +0.050 (2/3) | +0.100 (2/2) |" in f1_section
    assert "| 1 | -0.067 (0/3) | +0.033 (2/3) |" in f1_section
    tuned_section = text.split("## Gain in test/f1_tuned ")[1].split("##")[0]
    assert "| 0.1 | -0.003 (1/3) | -0.025 (0/2) |" in tuned_section
    assert "| 1 | +0.020 (2/3) | +0.000 (0/3) |" in tuned_section
    baseline = text.split("## ce_kl alone")[1]
    assert "| 0.1 | 0.600 ± 0.100 | 0.850 ± 0.050 | 3 |" in baseline
    assert "| 1 | 0.850 ± 0.050 | 0.920 ± 0.020 | 3 |" in baseline
    assert "| 3 | 0.950 | 0.960 | 1 |" in baseline


def test_csv_long_format(sweeps, tmp_path: Path) -> None:
    """One row per (beta, alpha, metric) with mean_gain, sem, share_won, n_seeds."""
    main([str(sweeps[0]), str(sweeps[1]), "--out", str(tmp_path / "elsewhere")])
    text = (tmp_path / "elsewhere" / "mixup_gain.csv").read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0] == "beta,alpha,metric,mean_gain,sem,share_won,n_seeds"
    assert [(r["beta"], r["alpha"], r["metric"]) for r in rows] == [
        (beta, alpha, metric)
        for beta, alpha in [("0.1", "0.2"), ("0.1", "1"), ("1", "0.2"), ("1", "1")]
        for metric in ["test/f1", "test/f1_tuned"]
    ]
    for row in rows:
        gains = GAINS[row["metric"]][(float(row["beta"]), float(row["alpha"]))]
        assert float(row["mean_gain"]) == pytest.approx(statistics.fmean(gains), abs=1e-12)
        sem = statistics.stdev(gains) / math.sqrt(len(gains))
        assert float(row["sem"]) == pytest.approx(sem, abs=1e-12)
        assert float(row["share_won"]) == pytest.approx(sum(g > 0 for g in gains) / len(gains))
        assert int(row["n_seeds"]) == len(gains)
    assert not (sweeps[0].parent / "mixup_gain.csv").exists()  # --out was obeyed


def test_csv_sem_is_empty_for_a_single_seed(tmp_path: Path) -> None:
    """One seed has no standard error: the column is left empty (as table.csv leaves a std)."""
    mixup_job(tmp_path / "m", 0, 1.0, 1.0, 0, (0.9, 0.9))
    baseline_job(tmp_path / "b", 0, 1.0, 0, (0.8, 0.95))
    main([str(tmp_path / "m"), str(tmp_path / "b")])
    rows = list(csv.DictReader(io.StringIO((tmp_path / "mixup_gain.csv").read_text())))
    assert [(r["metric"], r["sem"], r["share_won"], r["n_seeds"]) for r in rows] == [
        ("test/f1", "", "1.0", "1"),
        ("test/f1_tuned", "", "0.0", "1"),
    ]


def test_figure_is_two_panels_on_a_scale_centred_at_zero(sweeps) -> None:
    """Gain at delta and at the tuned threshold side by side, on one diverging scale from -m to
    +m (m: the largest |mean gain| of both panels), each cell with its share won."""
    study = pair_sweeps(*sweeps)
    figure = gain_figure(study)
    panels = [ax for ax in figure.axes if ax.images]
    assert len(panels) == 2
    largest = max(abs(c.mean_gain) for m in GAINS for c in study.cells(m))
    for ax in panels:
        image = ax.images[0]
        assert image.get_clim() == pytest.approx((-largest, largest))
        assert image.get_cmap().name == "RdBu"
    texts = [t.get_text() for t in panels[0].texts]
    assert {"2/3 won", "2/2 won", "0/3 won"} <= set(texts)
    assert "0.050" in texts


# --- heatmap_figure's centred scale ----------------------------------------------------------


def test_heatmap_default_scale_is_unchanged() -> None:
    """Without `center`: viridis from the smallest to the largest value, as before."""
    cells = {("a", "x"): 0.2, ("b", "x"): 0.5, ("a", "y"): 0.9, ("b", "y"): 0.4}
    image = heatmap_figure({"p": cells}, "X", "Y", "v").axes[0].images[0]
    assert image.get_clim() == pytest.approx((0.2, 0.9))
    assert image.get_cmap().name == "viridis"


def test_heatmap_centred_scale_is_symmetric() -> None:
    """center=0.5: vmin, vmax = 0.5 -+ max |v - 0.5| over every panel; all values at the centre
    (or none) give 0.5 -+ 1 rather than an empty range."""
    panels = {"p": {("a", "x"): 0.3, ("b", "x"): 0.6}, "q": {("a", "x"): np.nan}}
    image = heatmap_figure(panels, "X", "Y", "v", center=0.5).axes[0].images[0]
    assert image.get_clim() == pytest.approx((0.3, 0.7))
    assert image.get_cmap().name == "RdBu"
    flat = heatmap_figure({"p": {("a", "x"): 0.5}}, "X", "Y", "v", center=0.5)
    assert flat.axes[0].images[0].get_clim() == pytest.approx((-0.5, 1.5))


# --- one-line errors -------------------------------------------------------------------------


def run_main_error(capsys, *args: str | Path) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{PROG}: error: ")
    return lines[0]


def test_error_for_a_folder_that_is_not_a_sweep(sweeps, tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert "is not a folder" in run_main_error(capsys, tmp_path / "nope", sweeps[1])
    line = run_main_error(capsys, sweeps[0], tmp_path / "empty")
    assert line.endswith("empty is not a multirun folder: it holds no job folders "
                         "(<n>/.hydra/overrides.yaml)")  # fmt: skip
    assert "given twice" in run_main_error(capsys, sweeps[0], sweeps[0])
    assert not (sweeps[0].parent / "mixup_gain.md").exists()


def test_error_for_a_sweep_of_another_loss(sweeps, tmp_path: Path, capsys) -> None:
    """Swapped folders, and a sweep that holds another objective."""
    line = run_main_error(capsys, sweeps[1], sweeps[0])
    assert line.endswith(
        f"{sweeps[1]} is a sweep of loss=ce_kl, not of loss=ce_kl_mixup (are the two folders "
        "swapped?)"
    )
    make_job(tmp_path / "oe", 0, ["loss=oe", "seed=0"], {"test/f1": 0.5, "loss": "oe"})
    line = run_main_error(capsys, sweeps[0], tmp_path / "oe")
    assert line.endswith(f"{tmp_path / 'oe'} is a sweep of loss=oe, not of loss=ce_kl")
    assert not (sweeps[0].parent / "mixup_gain.md").exists()


def test_error_when_nothing_pairs(tmp_path: Path, capsys) -> None:
    """Other seeds in the baseline sweep: no pair, and the line says what each sweep holds."""
    mixup_job(tmp_path / "m", 0, 1.0, 1.0, 0, (0.9, 0.9))
    mixup_job(tmp_path / "m", 1, 1.0, 1.0, 1, (0.9, 0.9))
    baseline_job(tmp_path / "b", 0, 1.0, 5, (0.8, 0.95))
    line = run_main_error(capsys, tmp_path / "m", tmp_path / "b")
    assert line.endswith(
        "no pairs: no ce_kl_mixup job shares beta and seed with a finished ce_kl job "
        "(ce_kl_mixup: betas 1; seeds 0, 1; ce_kl: betas 1; seeds 5)"
    )
    assert not (tmp_path / "mixup_gain.md").exists()


def test_error_when_every_job_of_a_sweep_failed(tmp_path: Path, capsys) -> None:
    mixup_job(tmp_path / "m", 0, 1.0, 1.0, 0, None)
    baseline_job(tmp_path / "b", 0, 1.0, 0, (0.8, 0.95))
    line = run_main_error(capsys, tmp_path / "m", tmp_path / "b")
    assert line.endswith(f"no pairs: {tmp_path / 'm'} has no finished job (all 1 failed)")


def test_error_for_sweeps_run_with_different_settings(tmp_path: Path, capsys) -> None:
    """Same seed is a fair pair only with the same everything else; output switches
    (plots, logger) may differ."""
    mixup_job(tmp_path / "m", 0, 1.0, 1.0, 0, (0.9, 0.9), "trainer.max_epochs=2", "logger=none")
    baseline_job(tmp_path / "b", 0, 1.0, 0, (0.8, 0.95))
    line = run_main_error(capsys, tmp_path / "m", tmp_path / "b")
    assert "different settings (trainer.max_epochs=2 vs 50)" in line


def test_error_for_a_sweep_over_another_key(tmp_path: Path, capsys) -> None:
    """A second swept key would be averaged in as if it were another seed."""
    mixup_job(tmp_path / "m", 0, 1.0, 1.0, 0, (0.9, 0.9), "delta=0.7")
    mixup_job(tmp_path / "m", 1, 1.0, 1.0, 0, (0.9, 0.9), "delta=0.9")
    baseline_job(tmp_path / "b", 0, 1.0, 0, (0.8, 0.95))
    line = run_main_error(capsys, tmp_path / "m", tmp_path / "b")
    assert line.endswith("also varies delta; the study compares over beta, mixup.alpha and "
                         "seeds only: run one pair of sweeps per value")  # fmt: skip


def test_error_for_sweeps_in_different_folders_without_out(tmp_path: Path, capsys) -> None:
    mixup_job(tmp_path / "x" / "m", 0, 1.0, 1.0, 0, (0.9, 0.9))
    baseline_job(tmp_path / "y" / "b", 0, 1.0, 0, (0.8, 0.95))
    assert "--out DIR" in run_main_error(capsys, tmp_path / "x" / "m", tmp_path / "y" / "b")
    main([str(tmp_path / "x" / "m"), str(tmp_path / "y" / "b"), "--out", str(tmp_path)])
    assert (tmp_path / "mixup_gain.png").is_file()


def test_python_dash_m_entry_point(sweeps) -> None:
    """`python -m oodmix.reporting.mixup_gain` runs main: an error is one line and exit 2."""
    result = run_module("oodmix.reporting.mixup_gain", [str(sweeps[1]), str(sweeps[0])])
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"{PROG}: error: {sweeps[1]} is a sweep of loss=ce_kl, not of loss=ce_kl_mixup (are the "
        "two folders swapped?)"
    ]
