"""Command-line and composed-config checks (oodmix.config)."""

from __future__ import annotations

import pytest

from oodmix.config.overrides import check_command_line
from oodmix.config.paths import config_dir, group_options
from oodmix.config.validation import ConfigError, check_value, validate


def test_shipped_groups_have_the_public_options() -> None:
    """The config names the README and the issues promise exist."""
    assert {"ce", "ce_kl", "ce_kl_mixup"} <= set(group_options("loss"))
    assert {"cpu", "gpu", "auto"} <= set(group_options("trainer"))
    assert "two_disks" in group_options("data")
    assert (config_dir() / "train.yaml").is_file()


@pytest.mark.parametrize(
    "argv",
    [
        ["loss=ce"],
        ["-m", "loss=ce,ce_kl,ce_kl_mixup", "seed=0,1,2"],
        ["-m", "loss=ce_kl_mixup", "beta=0.1,1", "mixup.alpha=0.2,1"],
        ["model.hidden=[64,64]", "model.lr=0.003", "data.batch_size=64"],
        ["model.gradient_clip_val=1.0", "model.gradient_clip_algorithm=value"],
        ["trainer=gpu", "trainer.max_epochs=5", "delta=0.8", "delta=1", "beta=0"],
        ["beta=${delta}"],  # interpolations are checked after composition
        ["--cfg", "job", "loss=ce"],
    ],
)
def test_good_command_lines_pass(argv) -> None:
    check_command_line(argv)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["loss=nope"], "loss=nope is not allowed: loss must be one of ce, ce_kl, ce_kl_mixup"),
        (["-m", "loss=ce,nope"], "loss=nope is not allowed"),
        (["trainer=tpu"], "trainer=tpu is not allowed: trainer must be one of auto, cpu, gpu"),
        (["-m", "beta=0.1,-2"], "beta=-2 is not allowed: beta must be a finite number >= 0"),
        (
            ["mixup.alpha=0"],
            "mixup.alpha=0 is not allowed: mixup.alpha must be a finite number > 0",
        ),
        (["mixup.alpha=-0.5"], "mixup.alpha=-0.5 is not allowed"),
        (["delta=1.5"], "delta=1.5 is not allowed: delta must be a number in [0, 1]"),
        (["delta=-0.1"], "delta=-0.1 is not allowed"),
        (["beta=nan"], "beta=nan is not allowed"),
        (["beta=inf"], "beta=inf is not allowed"),
        (["beta=abc"], "beta='abc' is not allowed"),
        (["model.hidden=[0]"], "model.hidden=[0] is not allowed"),
        (["model.hidden=[]"], "model.hidden=[] is not allowed"),
        (["model.hidden=[32,2.5]"], "model.hidden=[32, 2.5] is not allowed"),
        (["seed=-1"], "seed=-1 is not allowed: seed must be an integer >= 0"),
        (["data.batch_size=0"], "data.batch_size=0 is not allowed"),
        (["trainer.max_epochs=0"], "trainer.max_epochs=0 is not allowed"),
        (["model.gradient_clip_val=0"], "model.gradient_clip_val=0 is not allowed"),
        (["model.gradient_clip_algorithm=l1"], "model.gradient_clip_algorithm='l1' is not allowed"),
        (
            ["+trainer.gradient_clip_val=1"],
            "trainer.gradient_clip_val=1 is not allowed: trainer.gradient_clip_val must be "
            "null: oodmix steps manually, set model.gradient_clip_val instead",
        ),
        (
            ["+trainer.accumulate_grad_batches=4"],
            "trainer.accumulate_grad_batches=4 is not allowed",
        ),
        (
            ["test_ckpt=first"],
            "test_ckpt='first' is not allowed: test_ckpt must be 'best' or 'last'",
        ),
    ],
)
def test_bad_command_lines_name_key_value_and_what_is_allowed(argv, message) -> None:
    with pytest.raises(ConfigError) as error:
        check_command_line(argv)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_extra_config_dir_disables_the_group_check() -> None:
    """With a user config folder on the search path, unknown-looking options may exist there."""
    check_command_line(["--config-dir", "/somewhere", "loss=my_loss"])
    check_command_line(["hydra.searchpath=[file:///somewhere]", "loss=my_loss"])


def test_booleans_are_not_numbers() -> None:
    with pytest.raises(ConfigError):
        check_value("beta", True)
    with pytest.raises(ConfigError):
        check_value("seed", 1.0)


def test_composed_config_is_validated(compose_config) -> None:
    """Values set in YAML (not on the command line) are checked too."""
    validate(compose_config())
    with pytest.raises(ConfigError, match=r"^mixup\.alpha=0\.0 is not allowed"):
        validate(compose_config("mixup.alpha=0.0"))


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["hparams_search=optuna"], "optuna"),
        (["-m", "hydra/launcher=joblib", "seed=0,1"], "joblib"),
        (["-m", "hydra/launcher=submitit_slurm"], "slurm"),
        (["data=digits"], "digits"),
    ],
)
def test_missing_plugin_names_the_extra_to_install(monkeypatch, argv, extra) -> None:
    """An optional Hydra plugin that is not installed: one line saying which extra brings it."""
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *args: None)
    with pytest.raises(
        ConfigError, match=rf"is not available: it needs .*install it with: .*\[{extra}\]"
    ):
        check_command_line(argv)


def test_study_groups_exist() -> None:
    assert "paper" in group_options("experiment")
    assert "optuna" in group_options("hparams_search")
