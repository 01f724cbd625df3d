"""Command-line and composed-config checks (oodmix.config)."""

from __future__ import annotations

import math

import pytest
from omegaconf import DictConfig, ListConfig, OmegaConf

from oodmix.config.overrides import check_command_line
from oodmix.config.paths import config_dir, group_options
from oodmix.config.validation import ConfigError, check_value, shown, validate


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


def test_activations_are_the_mlps_own(monkeypatch) -> None:
    """model.activation accepts exactly the MLP's table: a name added there is allowed."""
    from torch import nn

    from oodmix.models import mlp

    for name in mlp.ACTIVATIONS:
        check_value("model.activation", name)
    with pytest.raises(ConfigError) as error:
        check_value("model.activation", "swish")
    assert str(error.value) == (
        "model.activation='swish' is not allowed: model.activation must be one of "
        + ", ".join(sorted(mlp.ACTIVATIONS))
    )
    monkeypatch.setitem(mlp.ACTIVATIONS, "swish", nn.SiLU)
    check_value("model.activation", "swish")
    assert isinstance(mlp.MLP(2, 2, [4], "swish")[1], nn.SiLU)


def test_epoch_metrics_are_detection_evaluations_own(monkeypatch) -> None:
    """callbacks.detection.epoch_metrics accepts what DetectionEvaluation accepts (names with or
    without val/, [all], []) and refuses in its words; a metric added there is allowed."""
    from oodmix.callbacks import detection_evaluation

    for value in ([], ["all"], ["auroc", "val/f1_tuned"], sorted(detection_evaluation.ALL_METRICS)):
        check_value("callbacks.detection.epoch_metrics", value)
    allowed = (
        "a list of " + ", ".join(sorted(detection_evaluation.ALL_METRICS)) + " (each with or "
        "without val/), or [all]"
    )
    for value, text in ((["auroc", "ece"], "['auroc', 'ece']"), ("auroc", "'auroc'"), (3, "3")):
        with pytest.raises(ConfigError) as error:
            check_value("callbacks.detection.epoch_metrics", value)
        assert str(error.value) == (
            f"callbacks.detection.epoch_metrics={text} is not allowed: "
            f"callbacks.detection.epoch_metrics must be {allowed}"
        )
    # The constructor refuses in the same words.
    with pytest.raises(ValueError, match=r"must be a list of acc, .*\(each with or without val/"):
        detection_evaluation.DetectionEvaluation(0.8, epoch_metrics=["ece"])
    monkeypatch.setattr(
        detection_evaluation, "ALL_METRICS", detection_evaluation.ALL_METRICS | {"ece"}
    )
    check_value("callbacks.detection.epoch_metrics", ["ece"])


def test_a_bad_epoch_metric_in_a_sweep_is_refused_before_any_job(compose_config) -> None:
    """On the command line, every swept value; in the composed config, the value as set."""
    with pytest.raises(ConfigError, match=r"^callbacks.detection.epoch_metrics=\['ece'\] is not"):
        check_command_line(["-m", "seed=0,1", "callbacks.detection.epoch_metrics=[auroc],[ece]"])
    with pytest.raises(ConfigError, match=r"^callbacks.detection.epoch_metrics=\['ece'\] is not"):
        validate(compose_config("callbacks.detection.epoch_metrics=[ece]"))


@pytest.mark.parametrize(
    "value", ["bf16-mixed", "16-mixed", 32, "32", 64, "transformer-engine-float16", "8", 8, "fp8"]
)
def test_precisions_are_lightnings_own(value) -> None:
    """trainer.precision is allowed exactly when Lightning's own conversion accepts it."""
    from lightning.fabric.connector import _convert_precision_to_unified_args

    try:
        _convert_precision_to_unified_args(value)
        lightning_accepts = True
    except ValueError:
        lightning_accepts = False
    if lightning_accepts:
        check_value("trainer.precision", value)
        return
    with pytest.raises(ConfigError) as error:
        check_value("trainer.precision", value)
    assert str(error.value).startswith(
        f"trainer.precision={shown(value)} is not allowed: trainer.precision must be one of "
    )
    assert "bf16-mixed" in str(error.value)


def test_accelerators_are_lightnings_own() -> None:
    for name in ("auto", "gpu", "cpu", "cuda", "mps"):
        check_value("trainer.accelerator", name)
    with pytest.raises(ConfigError) as error:
        check_value("trainer.accelerator", "gpus")
    assert str(error.value).startswith(
        "trainer.accelerator='gpus' is not allowed: trainer.accelerator must be one of auto, gpu,"
    )
    assert "cuda" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.slow
def test_command_line_checks_import_neither_torch_nor_lightning() -> None:
    """A command line without a key whose list torch or Lightning owns is answered at once."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from oodmix.config.overrides import check_command_line\n"
        "check_command_line(['-m', 'loss=ce,ce_kl', 'beta=0.1,1', 'data.box=[-9,9]',"
        " 'model.hidden=[8]', 'trainer.max_epochs=2', 'delta=0.5,0.7'])\n"
        "print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


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
    for other in (tmp_path / "other", tmp_path):  # new or holding files: not the run's own
        with pytest.raises(ConfigError) as error:
            check_run_dir(other, str(ckpt))
        assert str(error.value) == (
            f"hydra.run.dir={other} is not allowed with ckpt_path={ckpt}: a resumed run goes on "
            f"in its own folder, {run.resolve()}, and hydra.run.dir cannot move it; leave "
            "hydra.run.dir out to resume there"
        )
    assert not (tmp_path / "other").exists()
    elsewhere = tmp_path / "copy.ckpt"
    elsewhere.write_bytes(b"")
    assert checkpoint_run_dir(str(elsewhere)) is None  # not in a run folder: a new run folder


def _annulus():
    from oodmix.data.geometry import Annulus

    return Annulus((1.0, 0.5), 1.5, 1.2, math.pi, 2 * math.pi)


def _two_disks():
    from oodmix.data import TwoDisksDataModule

    disks = [{"center": [-2.0, -2.0], "radius": 2.0, "n_train": 10}] * 2
    return TwoDisksDataModule(disks, near_margin=5, far_margin=4.0)


def _digits():
    from oodmix.data.digits import DigitsDataModule

    return DigitsDataModule([0, 1, 2, 3, 4], [5, 6, 7], [1, 9])


def _energy():
    from oodmix.losses import EnergyBoundedLoss

    return EnergyBoundedLoss(margin_in=0, margin_out=-2.0)


# overrides; the class built by hand with the same values; its reason (the key of a region is
# known only to the config, so the region's is named in the class's words)
SAME_REASON = {
    "ring sector": (
        ["data=moons", "data.classes.1.region.r_in=1.5"],
        _annulus,
        "data.classes[1].region.r_in=1.5 is not allowed: it must be below r_out=1.2",
        "Annulus.r_in=1.5 is not allowed: it must be below r_out=1.2",
    ),
    "shift margins": (
        ["data.near_margin=5"],
        _two_disks,
        "data.near_margin=5 is not allowed: it must be <= data.far_margin=4.0 (near OOD lies "
        "closer to the ID support than far OOD)",
        None,
    ),
    "digit classes": (
        ["data=digits", "model=mlp_digits", "data.ood_test_classes=[1,9]"],
        _digits,
        "data.ood_test_classes=[1, 9] is not allowed: digit 1 is also in data.id_classes (the "
        "three class lists must not overlap)",
        None,
    ),
    "energy margins": (
        ["loss=energy", "detector=energy", "loss.margin_in=0"],
        _energy,
        "loss.margin_in=0 is not allowed: it must be below loss.margin_out=-2.0",
        None,
    ),
}


@pytest.mark.parametrize("case", list(SAME_REASON))
def test_a_rule_a_class_states_is_refused_in_its_words_before_a_run(compose_config, case) -> None:
    """The check before a run calls the class's own rule: the same reason as the class gives
    when it is built by hand, or by the run (build_parts, which the pre-flight also runs)."""
    from oodmix.runs.parts import build_parts

    overrides, build, reason, built_reason = SAME_REASON[case]
    cfg = compose_config(*overrides)
    with pytest.raises(ConfigError) as before:
        validate(cfg)
    with pytest.raises(ValueError) as by_hand:
        build()
    with pytest.raises(ConfigError) as by_the_run:
        build_parts(cfg)
    assert str(before.value) == reason
    assert str(by_hand.value) == str(by_the_run.value) == (built_reason or reason)


@pytest.mark.parametrize(
    ("r_in", "r_out", "start", "end", "reason"),
    [
        (-0.5, 1.0, 0.0, 1.0, "r_in=-0.5 is not allowed: it must be >= 0"),
        (2.0, 2.0, 0.0, 1.0, "r_in=2.0 is not allowed: it must be below r_out=2.0"),
        (1.0, 2.0, -0.1, 1.0, "theta_start=-0.1 is not allowed: it must be >= 0"),
        (1.0, 2.0, 2.0, 1.0, "theta_start=2.0 is not allowed: it must be below theta_end=1.0"),
        (1.0, 2.0, 0.0, 7.0, "theta_end=7.0 is not allowed: it must be at most 2 pi"),
        (1.0, 2.0, 0.0, 2 * math.pi, None),
    ],
)
def test_ring_sector_rule(r_in, r_out, start, end, reason) -> None:
    from oodmix.data.geometry import ring_sector_problem

    where = "data.classes[0].region"
    expected = f"{where}.{reason}" if reason else None
    assert ring_sector_problem(r_in, r_out, start, end, where=where) == expected


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "data.disks.0.colour=1",
            "data.disks.0.colour=1 is not allowed: there is no key 'colour' in data.disks.0; "
            "its keys: center, n_train, radius. To add a new key, write +data.disks.0.colour=1",
        ),
        (
            "trainer.strategy.x=1",
            "trainer.strategy.x=1 is not allowed: trainer.strategy holds a value, not keys; set "
            "trainer.strategy=... instead",
        ),
        (
            "detector=nope",
            "detector=nope is not allowed: detector must be one of "
            + ", ".join(group_options("detector")),
        ),
    ],
)
def test_hydras_errors_are_read_from_their_attributes(override, message) -> None:
    """Unknown keys and options: the key from OmegaConf's error, the option from Hydra's."""
    from hydra import compose, initialize_config_dir

    from oodmix.config.errors import describe

    with (
        pytest.raises(Exception) as error,
        initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"),
    ):
        compose("train", overrides=[override])
    assert describe(error.value, ["-m", override, "seed=1"]) == message
