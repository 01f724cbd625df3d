"""Reading a Hydra multirun folder into jobs, and grouping them by what was swept."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest
from sweep_factory import make_job

from oodmix.reporting.aggregate import fixed_overrides, group_jobs, metric_names, swept_keys
from oodmix.reporting.jobs import load_jobs, parse_overrides


def f1_job(sweep: Path, name: int, overrides: list[str], f1: float | None) -> Path:
    """A job whose metrics.json holds test/f1 (no metrics.json when f1 is None: a failed job)."""
    metrics = None if f1 is None else {"test/f1": f1, "seed": 0, "loss": "ce"}
    return make_job(sweep, name, overrides, metrics)


# --- parse_overrides -------------------------------------------------------------------------


def test_parse_overrides_strips_plus_and_keeps_plain_keys() -> None:
    """'+x=1' and '++y=2' give keys x and y; a plain 'loss=ce' is kept as is."""
    assert parse_overrides(["loss=ce", "+x=1", "++y=2"]) == {"loss": "ce", "x": "1", "y": "2"}


def test_parse_overrides_drops_deletions() -> None:
    """'~key' and '~key=value' (deletions) are left out."""
    assert parse_overrides(["~logger", "~callbacks.report=x", "seed=3"]) == {"seed": "3"}


def test_parse_overrides_keeps_values_containing_equals_whole() -> None:
    """Only the first '=' splits: 'a=b=c' is key a with value 'b=c'."""
    assert parse_overrides(["a=b=c", "model.name='x=1,y=2'"]) == {
        "a": "b=c",
        "model.name": "'x=1,y=2'",
    }


# --- load_jobs -------------------------------------------------------------------------------


def test_load_jobs_orders_job_folders_numerically(tmp_path: Path) -> None:
    """Job 2 comes before job 10 (not string order); non-numeric folders come last."""
    for name in ["10", "2", "1", "extra", "0"]:
        make_job(tmp_path, name, [f"seed={name}"], {"test/f1": 0.5})
    assert [job.name for job in load_jobs(tmp_path)] == ["0", "1", "2", "10", "extra"]


def test_load_jobs_skips_folders_without_overrides(tmp_path: Path) -> None:
    """Folders lacking .hydra/overrides.yaml (and plain files) are not jobs."""
    make_job(tmp_path, 0, ["seed=0"], {"test/f1": 0.5})
    (tmp_path / "1" / ".hydra").mkdir(parents=True)  # .hydra but no overrides.yaml
    (tmp_path / "2").mkdir()  # nothing at all
    (tmp_path / "multirun.yaml").write_text("x: 1\n")
    jobs = load_jobs(tmp_path)
    assert [job.name for job in jobs] == ["0"]
    assert jobs[0].overrides == {"seed": "0"}
    assert jobs[0].metrics == {"test/f1": 0.5}
    assert jobs[0].ok and jobs[0].failure is None


def test_load_jobs_marks_a_job_without_metrics_as_failed(tmp_path: Path) -> None:
    """Neither metrics.json nor failure.json: not ok, and the reason says it did not finish."""
    make_job(tmp_path, 0, ["seed=0"])
    (job,) = load_jobs(tmp_path)
    assert not job.ok
    assert job.metrics is None
    assert job.failure == "did not finish (no metrics.json, no failure.json)"


def test_load_jobs_marks_a_job_with_invalid_json_as_failed(tmp_path: Path) -> None:
    """A metrics.json that is not JSON: not ok, and the reason names the invalid JSON."""
    make_job(tmp_path, 0, ["seed=0"], metrics_text='{"test/f1": 0.5')
    (job,) = load_jobs(tmp_path)
    assert not job.ok
    assert "not valid JSON" in job.failure


def test_load_jobs_on_a_missing_folder_raises(tmp_path: Path) -> None:
    """A path that is not a folder is an error, not an empty sweep."""
    with pytest.raises(FileNotFoundError):
        load_jobs(tmp_path / "absent")


# --- swept keys and groups -------------------------------------------------------------------


def loss_beta_sweep(sweep: Path) -> None:
    """loss x beta x 3 seeds, all run with the fixed override trainer.max_epochs=5."""
    n = 0
    for loss in ["ce", "ce_kl"]:
        for beta in ["0.5", "1.0"]:
            for seed in range(3):
                overrides = [f"loss={loss}", f"beta={beta}", f"seed={seed}", "trainer.max_epochs=5"]
                f1_job(sweep, n, overrides, 0.1 * (n + 1))
                n += 1


def test_swept_keys_are_the_differing_keys_without_seed(tmp_path: Path) -> None:
    """loss and beta differ: swept; seed is left out; the constant key is a fixed override."""
    loss_beta_sweep(tmp_path)
    jobs = load_jobs(tmp_path)
    assert swept_keys(jobs) == ["loss", "beta"]
    assert fixed_overrides(jobs) == {"trainer.max_epochs": "5"}


def test_a_key_present_in_only_some_jobs_is_swept(tmp_path: Path) -> None:
    """A key missing from a job counts as a value: it is swept, its group says (default)."""
    f1_job(tmp_path, 0, ["seed=0"], 0.5)
    f1_job(tmp_path, 1, ["seed=0", "+extra=1"], 0.6)
    jobs = load_jobs(tmp_path)
    assert swept_keys(jobs) == ["extra"]
    keys, groups = group_jobs(jobs)
    assert keys == ["extra"]
    assert [g.settings for g in groups] == [{"extra": "(default)"}, {"extra": "1"}]


def test_group_jobs_groups_by_every_swept_key_but_seed(tmp_path: Path) -> None:
    """loss x beta with 3 seeds gives 4 groups of 3 jobs, in order of first job."""
    loss_beta_sweep(tmp_path)
    keys, groups = group_jobs(load_jobs(tmp_path))
    assert keys == ["loss", "beta"]
    assert [g.settings for g in groups] == [
        {"loss": "ce", "beta": "0.5"},
        {"loss": "ce", "beta": "1.0"},
        {"loss": "ce_kl", "beta": "0.5"},
        {"loss": "ce_kl", "beta": "1.0"},
    ]
    assert [[job.name for job in g.jobs] for g in groups] == [
        ["0", "1", "2"],
        ["3", "4", "5"],
        ["6", "7", "8"],
        ["9", "10", "11"],
    ]
    assert groups[1].label() == "loss=ce, beta=1.0"


def test_only_seeds_swept_gives_one_group(tmp_path: Path) -> None:
    """With nothing but the seed varying there are no swept keys and one group of all jobs."""
    for seed in range(3):
        f1_job(tmp_path, seed, ["loss=ce", f"seed={seed}"], 0.5)
    keys, groups = group_jobs(load_jobs(tmp_path))
    assert keys == []
    assert len(groups) == 1 and len(groups[0].jobs) == 3
    assert groups[0].label() == "all jobs"


# --- statistics over seeds -------------------------------------------------------------------


def test_group_mean_and_std_hand_derived(tmp_path: Path) -> None:
    """Values 0.1, 0.2, 0.6: mean 0.3, sample std sqrt(((-0.2)^2 + (-0.1)^2 + 0.3^2) / 2)."""
    for seed, f1 in enumerate([0.1, 0.2, 0.6]):
        f1_job(tmp_path, seed, [f"seed={seed}"], f1)
    (group,) = group_jobs(load_jobs(tmp_path))[1]
    assert group.mean("test/f1") == pytest.approx(0.3, abs=1e-12)
    assert group.std("test/f1") == pytest.approx(math.sqrt(0.07), abs=1e-12)


def test_group_mean_and_std_match_statistics_module(tmp_path: Path) -> None:
    """Mean and sample std over 5 seeds equal statistics.fmean and statistics.stdev."""
    values = [0.91, 0.42, 0.77, 0.05, 0.63]
    for seed, f1 in enumerate(values):
        f1_job(tmp_path, seed, ["loss=ce", f"seed={seed}"], f1)
    (group,) = group_jobs(load_jobs(tmp_path))[1]
    assert group.mean("test/f1") == pytest.approx(statistics.fmean(values), abs=1e-12)
    assert group.std("test/f1") == pytest.approx(statistics.stdev(values), abs=1e-12)


def test_failed_job_is_counted_but_not_averaged(tmp_path: Path) -> None:
    """A failed seed is in `failed`, not in `finished`, and does not enter the mean or std."""
    f1_job(tmp_path, 0, ["seed=0"], 0.2)
    f1_job(tmp_path, 1, ["seed=1"], None)
    f1_job(tmp_path, 2, ["seed=2"], 0.4)
    make_job(tmp_path, 3, ["seed=3"], metrics_text="not json")
    (group,) = group_jobs(load_jobs(tmp_path))[1]
    assert [job.name for job in group.failed] == ["1", "3"]
    assert [job.name for job in group.finished] == ["0", "2"]
    assert group.mean("test/f1") == pytest.approx(0.3, abs=1e-12)
    assert group.std("test/f1") == pytest.approx(math.sqrt(0.02), abs=1e-12)


def test_std_is_nan_for_a_single_seed(tmp_path: Path) -> None:
    """One finished seed: the mean is its value, the std is NaN; no value at all: NaN mean."""
    f1_job(tmp_path, 0, ["seed=0"], 0.7)
    f1_job(tmp_path, 1, ["seed=1"], None)
    (group,) = group_jobs(load_jobs(tmp_path))[1]
    assert group.mean("test/f1") == 0.7
    assert math.isnan(group.std("test/f1"))
    assert math.isnan(group.mean("test/absent"))


def test_metric_names_puts_headline_metrics_first(tmp_path: Path) -> None:
    """Headline metrics in their fixed order, then the other numeric ones sorted; seed, strings
    and booleans left out."""
    metrics = {
        "val/f1": 0.5,
        "aaa": 1,
        "test/acc": 0.9,
        "test/recall": 0.8,
        "test/f1": 0.7,
        "test/zzz": 0.1,
        "seed": 0,
        "loss": "ce",
        "flag": True,
    }
    make_job(tmp_path, 0, ["seed=0"], metrics)
    make_job(tmp_path, 1, ["seed=1"], {"test/f1_ood": 0.3, "seed": 1})
    _, groups = group_jobs(load_jobs(tmp_path))
    assert metric_names(groups) == [
        "test/f1",
        "test/f1_ood",
        "test/recall",
        "test/acc",
        "aaa",
        "test/zzz",
        "val/f1",
    ]


def test_an_undefined_metric_is_strict_json_null_and_read_back_as_nan(
    compose_config, tmp_path: Path
) -> None:
    """metrics.json is strict JSON (no bare NaN, which JSON does not have): an undefined value
    is written as null, and the report reads it back as NaN."""
    import json

    from oodmix.losses import CrossEntropyLoss
    from oodmix.reporting.jobs import read_metrics
    from oodmix.runs.results import write_metrics

    cfg = compose_config(run="sweep/0")
    written = write_metrics(cfg, CrossEntropyLoss(), {"test/f1": 0.5, "test/auroc": math.nan})
    assert math.isnan(written["test/auroc"])  # as computed, for the printed table
    path = tmp_path / "sweep" / "0" / "metrics.json"

    def no_constants(name: str) -> None:
        raise AssertionError(f"{name} in metrics.json")

    stored = json.loads(path.read_text(), parse_constant=no_constants)
    assert stored["test/auroc"] is None and stored["test/f1"] == 0.5
    assert math.isnan(read_metrics(path)["test/auroc"])
    (tmp_path / "sweep" / "0" / ".hydra").mkdir(parents=True)
    (tmp_path / "sweep" / "0" / ".hydra" / "overrides.yaml").write_text("- seed=0\n")
    (job,) = load_jobs(tmp_path / "sweep")
    assert math.isnan(job.metrics["test/auroc"]) and job.metrics["test/f1"] == 0.5
