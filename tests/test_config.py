"""Command-line and composed-config checks (oodmix.config)."""

from __future__ import annotations

import pytest
from omegaconf import DictConfig, ListConfig, OmegaConf

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
        ["trainer=gpu", "trainer.max_epochs=5", "delta=0.8", "delta=0.999", "beta=0"],
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
        (["trainer=tpu"], "trainer=tpu is not allowed: trainer must be one of auto, cpu, "),
        (["-m", "beta=0.1,-2"], "beta=-2 is not allowed: beta must be a finite number >= 0"),
        (
            ["mixup.alpha=0"],
            "mixup.alpha=0 is not allowed: mixup.alpha must be a finite number > 0",
        ),
        (["mixup.alpha=-0.5"], "mixup.alpha=-0.5 is not allowed"),
        (
            ["delta=1.5"],
            "delta=1.5 is not allowed: delta must be a number strictly between 0 and 1",
        ),
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


def test_every_key_of_every_shipped_config_has_a_rule_or_is_exempt(compose_config) -> None:
    """The schema covers the shipped configs: a new key needs a rule (or a reason in EXEMPT)."""
    from oodmix.config.rules import RULES, is_exempt
    from oodmix.config.validation import _concrete_keys, rule_key

    unchecked = set()
    for group in ("data", "loss", "model", "detector", "trainer"):
        for option in group_options(group):
            if (group, option) == ("data", "npz"):
                cfg = compose_config("data=npz", "data.train=a", "data.val=b", "data.test=c")
            else:
                cfg = compose_config(f"{group}={option}")
            job = {k: cfg[k] for k in cfg if k != "hydra"}
            for key, node in _concrete_keys(OmegaConf.create(job)):
                leaf = not isinstance(node, (DictConfig, ListConfig))
                pattern = rule_key(key)
                # A list element (e.g. model.hidden[0]) is covered by its list's rule.
                in_ruled_list = any(pattern.startswith(p + "[") for p in RULES)
                if leaf and pattern not in RULES and not is_exempt(pattern) and not in_ruled_list:
                    unchecked.add(f"{group}={option}: {pattern}")
    assert not unchecked, sorted(unchecked)


def test_activation_names_match_the_model() -> None:
    from oodmix.config.rules import ACTIVATION_NAMES
    from oodmix.models.mlp import ACTIVATIONS

    assert sorted(ACTIVATIONS) == list(ACTIVATION_NAMES)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.disks.1.radius=-2"], "data.disks[1].radius=-2 is not allowed"),
        (["data.disks.0.center=[1]"], "data.disks[0].center=[1] is not allowed"),
        (["data.box=[5,-5]"], "data.box=[5, -5] is not allowed: data.box must be [low, high]"),
        (["data.box=[-3.5,3.5]"], "the box must contain the ID support, and data.disks[0] spans"),
        (
            ["data.near_margin=5"],
            "data.near_margin=5 is not allowed: it must be <= data.far_margin",
        ),
        (["data=rings", "data.box=[-3,3]"], "data.classes[1].region spans x in [-4, 4]"),
        (["data=moons", "data.classes.0.region.r_in=2"], "data.classes[0].region.r_in=2 is not"),
        (["data.batch_size=2.5"], "data.batch_size=2.5 is not allowed: data.batch_size must be"),
        (["data.drop_last=maybe"], "data.drop_last='maybe' is not allowed: data.drop_last must"),
        (["loss=energy", "loss.margin_in=0"], "loss.margin_in=0 is not allowed: it must be below"),
        (["detector=energy", "detector.temperature=0"], "detector.temperature=0 is not allowed"),
        (["beta=${delta}", "delta=0.5", "loss=ce_kl"], None),
        (["delta=0"], "delta=0 is not allowed: delta must be a number strictly between 0 and 1"),
        (["optimized_metric=test/f1"], "optimized_metric='test/f1' is not allowed"),
        (["ckpt_path=/no/such.ckpt"], "ckpt_path='/no/such.ckpt' is not allowed"),
    ],
)
def test_composed_values_are_checked(compose_config, overrides, message) -> None:
    """Types, ranges and cross-key checks of the composed config, list elements included."""
    cfg = compose_config(*overrides)
    if message is None:
        validate(cfg)
        return
    with pytest.raises(ConfigError) as error:
        validate(cfg)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_moons_box_holds_both_half_rings() -> None:
    """The bounding box of a ring sector, checked against a hand-derived extent."""
    from oodmix.config.consistency import _extent

    upper = {
        "center": [0.0, 0.0],
        "r_in": 0.8,
        "r_out": 1.2,
        "theta_start": 0.0,
        "theta_end": 3.14159,
    }
    x0, x1, y0, y1 = _extent(upper)
    assert (round(x0, 4), round(x1, 4), round(y0, 4), round(y1, 4)) == (-1.2, 1.2, 0.0, 1.2)
    quarter = {"center": [1.0, 1.0], "r_in": 1.0, "r_out": 2.0, "theta_end": 1.5707963}
    assert tuple(round(v, 4) for v in _extent(quarter)) == (1.0, 3.0, 1.0, 3.0)


def test_a_fresh_folder_is_claimed_beside_a_taken_one(tmp_path) -> None:
    """Two runs started in the same second: the second gets name_2, then name_3."""
    from oodmix.config.run_dirs import claim_fresh_dir

    name = str(tmp_path / "runs" / "12-00-00")
    assert claim_fresh_dir(name) == name
    assert claim_fresh_dir(name) == name + "_2"
    assert claim_fresh_dir(name) == name + "_3"
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "12-00-00",
        "12-00-00_2",
        "12-00-00_3",
    ]


def test_resuming_goes_on_in_the_checkpoints_run_folder(tmp_path) -> None:
    from oodmix.config.run_dirs import check_run_dir, checkpoint_run_dir, hydra_subdir

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    ckpt = run / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(b"")
    assert checkpoint_run_dir(str(ckpt)) == run.resolve()
    assert hydra_subdir(str(ckpt), "12-00-00") == ".hydra/resumed_12-00-00"
    assert hydra_subdir(None, "12-00-00") == ".hydra"
    check_run_dir(run, str(ckpt))  # its own folder: allowed
    with pytest.raises(ConfigError, match="already holds files"):
        check_run_dir(run, None)
    elsewhere = tmp_path / "copy.ckpt"
    elsewhere.write_bytes(b"")
    assert checkpoint_run_dir(str(elsewhere)) is None  # not in a run folder: a new run folder
