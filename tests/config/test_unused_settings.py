"""No setting is silently ignored: a knob the user sets that no run uses, or sweeps where some
run ignores it, is refused in one line before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from console_scripts import run_script

from oodmix.config.errors import ConfigError
from oodmix.config.unused_settings import Choice, check_run, chosen, refusal


def test_chosen_reads_single_values_sweeps_and_searches() -> None:
    found = chosen(["beta=0.5", "mixup.alpha=0.2,1", "+delta=0.7", "loss=ce", "seed=0,1"])
    assert found == [
        Choice("beta", "beta=0.5", swept=False),
        Choice("mixup.alpha", "mixup.alpha=0.2,1", swept=True),
        Choice("delta", "delta=0.7", swept=False),
    ]
    searched = chosen(["beta=tag(log, interval(0.01, 10.0))"], searched=["beta"])
    assert searched == [Choice("beta", "beta=tag(log, interval(0.01, 10.0))", True, True)]


@pytest.mark.parametrize(
    ("choice", "runs", "refused"),
    [
        # One run that ignores it: refused.
        (Choice("beta", "beta=2", False), [("loss=ce", False)], "it would change nothing"),
        # A single value that some run uses: the user meant it for those runs.
        (Choice("beta", "beta=2", False), [("loss=ce", False), ("loss=ce_kl", True)], None),
        # Swept over runs of which some ignore it: those would be trained once per value.
        (
            Choice("beta", "beta=0.1,1", True),
            [("loss=ce", False), ("loss=ce_kl", True)],
            "loss=ce does not use beta",
        ),
        # Used by every run: fine.
        (Choice("beta", "beta=0.1,1", True), [("loss=ce_kl", True)], None),
    ],
)
def test_refusal_depends_on_which_runs_use_the_knob(choice, runs, refused) -> None:
    reason = refusal(choice, runs)
    if refused is None:
        assert reason is None
    else:
        assert refused in reason and reason.startswith(f"{choice.shown} is not allowed with ")
        assert "\n" not in reason


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["loss=ce", "beta=0.5"], "beta=0.5 is not allowed with loss=ce: it would change nothing"),
        (["loss=oe", "beta=0.5"], "beta=0.5 is not allowed with loss=oe"),
        (["loss=ce_kl", "mixup.alpha=0.3"], "mixup.alpha=0.3 is not allowed with loss=ce_kl"),
        (["loss=energy", "mixup.pairs=both"], "mixup.pairs=both is not allowed with loss=energy"),
        (["detector=energy", "delta=0.5"], "delta=0.5 is not allowed with detector=energy"),
        (["loss=ce", "data.ood_batch_size=64"], "data.ood_batch_size=64 is not allowed"),
        (["model.gradient_clip_algorithm=value"], "model.gradient_clip_algorithm=value is not"),
    ],
)
def test_a_knob_the_run_ignores_is_refused(compose_config, overrides, message) -> None:
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(")):
        check_run(compose_config(*overrides))


@pytest.mark.parametrize(
    "overrides",
    [
        ["loss=ce_kl", "beta=0.5"],
        ["loss=mixoe", "mixup.pairs=both", "mixup.alpha=0.4"],
        ["loss=ce_maxent", "beta=2"],
        ["detector=msp", "delta=0.6"],
        ["model.gradient_clip_val=1", "model.gradient_clip_algorithm=value"],
        ["loss=ce", "seed=3"],
        [],
    ],
)
def test_a_knob_the_run_uses_passes(compose_config, overrides) -> None:
    check_run(compose_config(*overrides))


def test_the_message_lists_the_objectives_that_use_the_knob(compose_config) -> None:
    """The list is read from conf/loss/ (each option whose config refers to ${beta})."""
    with pytest.raises(ConfigError) as error:
        check_run(compose_config("loss=ce", "beta=0.5"))
    assert "(ce_kl, ce_kl_mixup, ce_maxent, mixoe)" in str(error.value)
    with pytest.raises(ConfigError) as error:
        check_run(compose_config("loss=ce_kl", "mixup.alpha=0.5"))
    assert "objective that trains on mixed samples (ce_kl_mixup, mixoe)" in str(error.value)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["-m", "loss=ce,ce_kl", "beta=0.1,1"],
            "beta=0.1,1 is not allowed with loss=ce: loss=ce does not use beta",
        ),
        (["experiment=paper", "beta=0.1,1"], "beta=0.1,1 is not allowed with loss=ce: "),
        (["-m", "loss=ce", "mixup.alpha=0.2,1"], "mixup.alpha=0.2,1 is not allowed with loss=ce"),
        (
            ["hparams_search=optuna", "loss=ce"],
            "beta=tag(log, interval(0.01, 10.0)) is not allowed with loss=ce: it would change",
        ),
    ],
)
def test_sweeps_that_would_repeat_a_run_are_refused_before_the_first_job(
    tmp_path: Path, args, message
) -> None:
    sweep = tmp_path / "sweep"
    result = run_script("oodmix-train", [*args, f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("oodmix-train: error: " + message), result.stderr
    assert len(result.stderr.splitlines()) == 1
    if "hparams_search=optuna" in args:
        assert "search a space without it (hydra.sweeper.params)" in result.stderr
    assert not sweep.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.slow  # trains two runs
def test_a_single_value_used_by_some_jobs_of_a_sweep_runs(tmp_path: Path) -> None:
    """-m loss=ce,ce_kl beta=0.5: beta is meant for ce_kl; both jobs run."""
    sweep = tmp_path / "sweep"
    result = run_script(
        "oodmix-train",
        ["-m", "loss=ce,ce_kl", "beta=0.5", "trainer.max_epochs=1", "plots=false",
         "logger=none", f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (sweep / "0" / "metrics.json").is_file() and (sweep / "1" / "metrics.json").is_file()
