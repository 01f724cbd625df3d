"""logger=mlflow: a local file store, read back with MLflow's own client."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import open_dict, read_write

from oodmix.loggers import MLFlowLogger
from oodmix.loggers.mlflow import RUN_DIR_TAG, default_tracking_uri, sweep_folder


@pytest.fixture(autouse=True)
def _no_mlflow_settings_from_outside(monkeypatch) -> None:
    """Each test starts without them; whatever the logger sets is undone afterwards."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)


def mlflow_client(tracking_uri: str):
    """MLflow's client of a store (imported here: MLflow takes a second to import, which every
    test process would pay at collection)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri)


def only_run(store: Path, experiment: str):
    client = mlflow_client(f"file:{store}")
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r} in {store}"
    [run] = client.search_runs([found.experiment_id])
    return client, run


def test_mlflow_logger_writes_the_hyperparameters_and_every_metric(logged_run) -> None:
    run_dir, metrics = logged_run("mlflow")
    assert json.loads((run_dir / "metrics.json").read_text()) == metrics
    # A single run: the store is in its folder; the experiment is the dataset.
    client, run = only_run(run_dir / "mlruns", "two_disks")
    assert run.info.run_name == "ce_kl_mixup seed=3"
    assert run.info.status == "FINISHED"
    assert run.data.tags[RUN_DIR_TAG] == str(run_dir.resolve())
    params = run.data.params  # the resolved config, flattened; MLflow keeps strings
    assert params["config/beta"] == "0.5" and params["config/seed"] == "3"
    assert params["config/loss/_target_"] == "oodmix.losses.ConfidenceMixupLoss"

    def history(name: str) -> list[tuple[int, float]]:
        return [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, name)]

    assert [step for step, _ in history("train/loss")] == [16, 32]  # once per epoch
    logged = [name for name in metrics if name.startswith(("val/", "test"))]
    assert {"val/f1", "test/f1", "test_near/auroc", "test_far/auroc"} <= set(logged)
    for name in logged:  # the last value is metrics.json's (the tested weights)
        assert history(name)[-1][1] == metrics[name], name
    assert [step for step, _ in history("val/f1")] == [16, 32, 32]


def test_the_store_is_the_sweep_folder_in_a_multirun(compose_config, tmp_path: Path) -> None:
    """Every job of a sweep logs into <sweep>/mlruns; a single run into <run>/mlruns."""
    cfg = compose_config("logger=mlflow", run="sweep/7")
    assert sweep_folder(cfg.output_dir) is None
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.mode = RunMode.MULTIRUN
    HydraConfig.instance().set_config(cfg)
    assert sweep_folder(cfg.output_dir) == (tmp_path / "sweep").resolve()
    assert default_tracking_uri(tmp_path / "run", None) == f"file:{tmp_path.resolve()}/run/mlruns"
    store = (tmp_path / "sweep" / "mlruns").resolve()
    assert default_tracking_uri(tmp_path / "sweep" / "7", tmp_path / "sweep") == f"file:{store}"


def test_jobs_of_a_sweep_are_runs_of_one_experiment(tmp_path: Path) -> None:
    store = f"file:{tmp_path / 'mlruns'}"
    for job in ("0", "1"):
        logger = MLFlowLogger(str(tmp_path / job), "two_disks", f"job {job}", tracking_uri=store)
        logger.log_metrics({"val/f1": float(job)}, step=16)
        logger.finalize("success")
    client = mlflow_client(store)
    [experiment] = client.search_experiments(filter_string="name = 'two_disks'")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["job 0", "job 1"]


def test_a_later_process_continues_the_run_of_its_folder(tmp_path: Path) -> None:
    """A resumed run (or a later stage in a fresh process) continues its MLflow run; params
    already logged keep their value (MLflow refuses to change one): ckpt_path here."""
    store = f"file:{tmp_path / 'mlruns'}"
    first = MLFlowLogger(str(tmp_path / "run"), "two_disks", "r", tracking_uri=store)
    first.log_hyperparams({"config": {"beta": 0.5, "ckpt_path": None}})
    first.log_metrics({"train/loss": 1.0}, step=16)
    first.finalize("success")
    later = MLFlowLogger(str(tmp_path / "run"), "two_disks", "r", tracking_uri=store)
    later.log_hyperparams({"config": {"beta": 0.5, "ckpt_path": "run/last.ckpt", "new": 1}})
    later.log_metrics({"train/loss": 0.5}, step=32)
    later.finalize("success")
    assert later.run_id == first.run_id and later.continued and not first.continued
    client, run = only_run(tmp_path / "mlruns", "two_disks")
    assert run.data.params == {"config/beta": "0.5", "config/ckpt_path": "None", "config/new": "1"}
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [(m.step, m.value) for m in history] == [(16, 1.0), (32, 0.5)]


def test_the_tracking_uri_from_the_environment_wins_over_the_default(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"file:{tmp_path / 'team'}")
    logger = MLFlowLogger(str(tmp_path / "run"), "two_disks")
    logger.log_metrics({"val/f1": 0.5}, step=16)
    logger.finalize("success")
    assert (tmp_path / "team").is_dir() and not (tmp_path / "run" / "mlruns").exists()
    # MLflow 3 refuses a file store unless this is set; the logger sets it for its own.
    assert os.environ["MLFLOW_ALLOW_FILE_STORE"] == "true"
