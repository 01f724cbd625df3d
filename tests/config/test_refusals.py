"""Refusals before a run or a sweep writes anything: the command line (group options, missing
packages), the schema (types, enumerations, closed key sets), and the classes' own ranges,
met by building what each job builds (oodmix.config.preflight)."""

from __future__ import annotations

import math

import pytest
from hydra import compose, initialize_config_dir

from oodmix.config.errors import ConfigError, describe
from oodmix.config.overrides import check_command_line
from oodmix.config.paths import config_dir, group_options
from oodmix.config.preflight import check_job, check_sweep, sweep_jobs


def test_shipped_groups_have_the_public_options() -> None:
    """The config names the README and the issues promise exist."""
    assert {"ce", "ce_kl", "ce_kl_mixup"} <= set(group_options("loss"))
    assert {"cpu", "gpu", "auto"} <= set(group_options("trainer"))
    assert "two_disks" in group_options("data")
    assert {"paper"} <= set(group_options("experiment"))
    assert {"optuna"} <= set(group_options("hparams_search"))
    assert (config_dir() / "train.yaml").is_file()


@pytest.mark.parametrize(
    "argv",
    [
        ["loss=ce"],
        ["-m", "loss=ce,ce_kl,ce_kl_mixup", "seed=0,1,2"],
        ["-m", "loss=ce_kl_mixup", "beta=0.1,1", "mixup.alpha=0.2,1"],
        ["--cfg", "job", "loss=ce"],
        ["beta=-1"],  # a range: refused once the run's classes are built, not here
    ],
)
def test_good_command_lines_pass(argv) -> None:
    check_command_line(argv)


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


@pytest.mark.slow
def test_command_line_checks_import_neither_torch_nor_lightning() -> None:
    """The command-line check answers at once: it imports neither torch nor Lightning."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from oodmix.config.overrides import check_command_line\n"
        "check_command_line(['-m', 'loss=ce,ce_kl', 'beta=0.1,1', 'data.box=[-9,9]',"
        " 'model.hidden=[8]', 'trainer.max_epochs=2', 'delta=0.5,0.7'])\n"
        "import oodmix.config.schema\n"
        "print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# The schema (oodmix.config.schema): Hydra refuses while composing, oodmix words it.
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("seed=abc", "seed='abc' is not allowed: seed must be an integer"),
        ("seed=1.5", "seed=1.5 is not allowed: seed must be an integer"),
        ("beta=abc", "beta='abc' is not allowed: beta must be a number"),
        ("beta=true", "beta=true is not allowed: beta must be a number"),
        ("seed=null", "seed=null is not allowed: seed must be a value, not null"),
        (
            "test_ckpt=first",
            "test_ckpt='first' is not allowed: test_ckpt must be one of best, last",
        ),
        (
            "progress=fancy",
            "progress='fancy' is not allowed: progress must be one of auto, rich, tqdm, none",
        ),
        (
            "mixup.pairs=sideways",
            "mixup.pairs='sideways' is not allowed: mixup.pairs must be one of within, cross, both",
        ),
        (
            "mixup.colour=1",
            "mixup.colour=1 is not allowed: there is no key 'colour' in mixup; its keys: alpha, "
            "pairs. To add a new key, write +mixup.colour=1",
        ),
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
        ("loss=nope", "loss=nope is not allowed: loss must be one of ce, ce_kl, ce_kl_mixup, "),
        ("trainer=tpu", "trainer=tpu is not allowed: trainer must be one of auto, cpu, "),
    ],
)
def test_the_schema_refuses_while_composing_in_one_line(override, message) -> None:
    """Types, enumerations and closed key sets: Hydra's and OmegaConf's own errors, read from
    their attributes into the one line."""
    with (
        pytest.raises(Exception) as error,
        initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"),
    ):
        compose("train", overrides=[override])
    assert describe(error.value, ["-m", override, "seed=1"]).startswith(message)


def test_the_schema_types_the_root_knobs(compose_config) -> None:
    """Typed values come out as the schema says (an int beta as a float), enumerations
    compare as the words typed, and the resolved config holds plain strings."""
    from omegaconf import OmegaConf

    cfg = compose_config("beta=1", "test_ckpt=last", "mixup.pairs=cross")
    assert cfg.beta == 1.0 and isinstance(cfg.beta, float)
    assert cfg.test_ckpt == "last" and f"{cfg.test_ckpt}" == "last"
    plain = OmegaConf.to_container(cfg.mixup, resolve=True, enum_to_str=True)
    assert plain == {"alpha": 1.0, "pairs": "cross"} and type(plain["pairs"]) is str


# Ranges and cross-key rules, each stated by its class: the check builds the job.
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["beta=-1"], "beta=-1 is not allowed: beta must be a finite number >= 0"),
        (["beta=nan"], "beta=nan is not allowed: beta must be a finite number >= 0"),
        (["beta=inf"], "beta=inf is not allowed"),
        (
            ["mixup.alpha=0"],
            "mixup.alpha=0 is not allowed: mixup.alpha must be a finite number > 0",
        ),
        (["mixup.alpha=-0.5"], "mixup.alpha=-0.5 is not allowed"),
        (
            ["delta=1.5"],
            "delta=1.5 is not allowed: the scores are probabilities (max softmax), so delta must "
            "be a number strictly between 0 and 1",
        ),
        (["delta=0"], "delta=0 is not allowed"),
        (["seed=-1"], "seed=-1 is not allowed: seed must be an integer >= 0"),
        (["model.hidden=[0]"], "model.hidden=[0] is not allowed"),
        (["model.hidden=[]"], "model.hidden=[] is not allowed"),
        (["model.hidden=[32,2.5]"], "model.hidden=[32, 2.5] is not allowed"),
        (
            ["model.activation=swish"],
            "model.activation='swish' is not allowed: model.activation must be one of gelu, "
            "relu, silu, tanh",
        ),
        (["model.gradient_clip_val=0"], "model.gradient_clip_val=0 is not allowed"),
        (
            ["model.gradient_clip_val=1", "model.gradient_clip_algorithm=l1"],
            "model.gradient_clip_algorithm='l1' is not allowed: model.gradient_clip_algorithm "
            "must be one of norm, value",
        ),
        (["model.lr=-1"], "model.optimizer is not allowed: Invalid learning rate: -1"),
        (["data.batch_size=0"], "data.batch_size=0 is not allowed"),
        (["data.batch_size=2.5"], "data.batch_size=2.5 is not allowed: data.batch_size must be"),
        (["data.drop_last=maybe"], "data.drop_last='maybe' is not allowed: data.drop_last must"),
        (["data.disks.1.radius=-2"], "data.disks[1].radius=-2 is not allowed"),
        (["data.disks.0.center=[1]"], "data.disks[0].center=[1] is not allowed"),
        (["data.box=[5,-5]"], "data.box=[5, -5] is not allowed: data.box must be [low, high]"),
        (["data.box=[-3.5,3.5]"], "the box must contain the ID support, and data.disks[0] spans"),
        (["data.near_margin=5"], "data.near_margin=5 is not allowed: it must be <= "),
        (["data=rings", "data.box=[-3,3]"], "data.classes[1].region spans x in [-4, 4]"),
        (["data=moons", "data.classes.0.region.r_in=2"], "data.classes[0].region.r_in=2 is not"),
        (["loss=energy", "loss.margin_in=0"], "loss.margin_in=0 is not allowed: loss.margin_in "),
        (["detector=energy", "detector.temperature=0"], "detector.temperature=0 is not allowed"),
        (["trainer.max_epochs=0"], "trainer.max_epochs=0 is not allowed"),
        (
            ["+trainer.gradient_clip_val=1"],
            "trainer.gradient_clip_val=1 is not allowed: trainer.gradient_clip_val must be "
            "null: oodmix steps manually, set model.gradient_clip_val instead",
        ),
        (["+trainer.accumulate_grad_batches=4"], "trainer.accumulate_grad_batches=4 is not"),
        (["+trainer.precision=8"], "trainer is not allowed: Precision 8 is invalid"),
        (["trainer.accelerator=gpus"], "trainer is not allowed: You selected an invalid accel"),
        (
            ["callbacks.model_checkpoint.mode=foo"],
            "callbacks.model_checkpoint is not allowed: `mode` can be min, max but got foo",
        ),
        (
            ["callbacks.detection.epoch_metrics=[ece]"],
            "callbacks.detection.epoch_metrics=ece is not allowed: epoch_metrics must be",
        ),
        (["quiet=maybe"], "quiet='maybe' is not allowed: quiet must be auto, true or false"),
        (["optimized_metric=test/f1"], "optimized_metric='test/f1' is not allowed"),
        (["callbacks.model_checkpoint=null"], "test_ckpt=best is not allowed here"),
        (["loss.beta=${nope}"], "loss.beta: Interpolation key 'nope' not found"),
        (["data=npz"], "data.train, data.val, data.test are missing: this config needs a value"),
        (["beta=${delta}", "delta=0.5", "loss=ce_kl"], None),
        ([], None),
    ],
)
def test_a_job_is_refused_by_what_it_builds(compose_config, overrides, message) -> None:
    """Ranges, list elements and cross-key rules: the class that uses the value refuses it,
    as the job would, in one line naming the key."""
    cfg = compose_config(*overrides)
    if message is None:
        check_job(cfg)
        return
    with pytest.raises(ConfigError) as error:
        check_job(cfg)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_the_check_writes_nothing_where_the_run_will(compose_config, tmp_path) -> None:
    """The run's folder is left untouched by the check; the config Hydra runs is unchanged."""
    cfg = compose_config("logger=csv")
    before = dict(cfg)
    check_job(cfg)
    assert not (tmp_path / "run").exists() and list(tmp_path.iterdir()) == []
    assert dict(cfg) == before and cfg.output_dir == str(tmp_path / "run")


@pytest.mark.parametrize(
    ("case", "build", "reason"),
    [
        (
            ["data=moons", "data.classes.1.region.r_in=1.5"],
            lambda: _annulus(),
            "it must be below r_out=1.2",
        ),
        (["data.near_margin=5"], lambda: _two_disks(), "it must be <= data.far_margin=4.0"),
        (
            ["loss=energy", "detector=energy", "loss.margin_in=0"],
            lambda: _energy(),
            "loss.margin_in=0 is not allowed: loss.margin_in must be below loss.margin_out=-2.0",
        ),
    ],
)
def test_the_check_and_the_class_give_the_same_reason(compose_config, case, build, reason):
    """One statement: the check before a run and the class built by hand say the same."""
    with pytest.raises(ConfigError) as before:
        check_job(compose_config(*case))
    with pytest.raises(ValueError) as by_hand:
        build()
    assert reason in str(before.value) and reason in str(by_hand.value)


def _annulus():
    from oodmix.data.geometry import Annulus

    return Annulus((1.0, 0.5), 1.5, 1.2, math.pi, 2 * math.pi)


def _two_disks():
    from oodmix.data import TwoDisksDataModule

    disks = [{"center": [-2.0, -2.0], "radius": 2.0, "n_train": 10}] * 2
    return TwoDisksDataModule(disks, near_margin=5, far_margin=4.0)


def _energy():
    from oodmix.losses import EnergyBoundedLoss

    return EnergyBoundedLoss(margin_in=0, margin_out=-2.0)


def test_a_sweep_lists_its_distinct_jobs_without_the_seeds(multirun_config) -> None:
    """Config-group options are composed; the other swept values are set on each composed
    config; the seeds are listed apart."""
    cfg = multirun_config(
        "loss=ce_kl,ce_kl_mixup",
        "beta=0.1,1",
        "+trainer.max_steps=5,7",
        "seed=range(0,3)",
        "plots=false",
    )
    jobs = sweep_jobs(cfg)
    assert jobs.seeds == [0, 1, 2]
    assert jobs.composed == [["plots=false", "loss=ce_kl"], ["plots=false", "loss=ce_kl_mixup"]]
    assert jobs.values == [
        {"beta": 0.1, "+trainer.max_steps": 5},
        {"beta": 0.1, "+trainer.max_steps": 7},
        {"beta": 1, "+trainer.max_steps": 5},
        {"beta": 1, "+trainer.max_steps": 7},
    ]


def test_an_experiments_sweep_counts_and_the_command_line_wins(multirun_config) -> None:
    """experiment=paper sweeps loss and seed through the sweeper's parameters."""
    jobs = sweep_jobs(multirun_config("experiment=paper", "loss=ce_kl"))
    assert jobs.seeds == [0, 1, 2, 3, 4]
    assert jobs.composed == [["experiment=paper", "loss=ce_kl"]] and jobs.values == [{}]


def test_an_interval_is_left_to_the_trials(multirun_config) -> None:
    """Optuna's search space has no values to list: the check builds the other jobs."""
    jobs = sweep_jobs(multirun_config("loss=ce,ce_kl", "beta=interval(0.1,1)"))
    assert jobs.composed == [["loss=ce"], ["loss=ce_kl"]] and jobs.values == [{}]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["callbacks.model_checkpoint.mode=foo", "seed=0,1"], "`mode` can be min, max but got foo"),
        (["beta=0.1,-2", "seed=0,1"], "beta=-2 is not allowed"),
        (["seed=0,-1"], "seed=-1 is not allowed: seed must be an integer >= 0"),
        (["seed=0,1", "callbacks.detection.epoch_metrics=[auroc],[ece]"], "epoch_metrics=ece"),
        (["beta=0.1,abc"], "beta='abc' is not allowed: beta must be a number"),
        (["data.n_val=100,abc"], "data.n_val='abc' is not allowed: data.n_val must be an integer"),
        (["loss=ce,ce_kl", "beta=0.1,1"], "beta=0.1,1 is not allowed with loss=ce"),
        (["loss=ce,nope"], "loss=nope is not allowed: loss must be one of ce, ce_kl, "),
        (
            ["loss=ce_kl,energy", "detector=energy", "detector.temperature=0"],
            "detector.temperature=0 is not",
        ),
    ],
)
def test_a_sweep_is_refused_before_its_first_job(multirun_config, tmp_path, overrides, message):
    cfg = multirun_config(*overrides, "trainer.max_epochs=1")
    with pytest.raises(Exception) as error:
        check_sweep(cfg)
    line = describe(error.value, list(overrides))  # as the check before writing words it
    assert message in line and "\n" not in line
    assert not (tmp_path / "sweep").exists()


def test_a_good_sweep_passes(multirun_config, tmp_path) -> None:
    check_sweep(multirun_config("loss=ce_kl_mixup", "beta=0.1,1", "mixup.alpha=0.5,2", "seed=0,1"))
    assert list(tmp_path.iterdir()) == []


def test_whether_a_knob_is_used_is_judged_per_job(multirun_config) -> None:
    """model.gradient_clip_algorithm is used only where model.gradient_clip_val is set: a sweep
    that sets it in every job passes; one where no job sets it is refused."""
    check_sweep(
        multirun_config("model.gradient_clip_val=0.5,1", "model.gradient_clip_algorithm=value")
    )
    with pytest.raises(ConfigError, match=r"^model.gradient_clip_algorithm=value is not allowed"):
        check_sweep(multirun_config("seed=0,1", "model.gradient_clip_algorithm=value"))
