"""logger=tensorboard: event files and hparams.yaml in <run>/tensorboard/, read back."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from tensorboardX.proto import event_pb2, plugin_hparams_pb2

from oodmix.loggers import TensorBoardLogger


def records(path: Path) -> Iterator[bytes]:
    """The records of a TFRecord file: length (8 bytes), its CRC (4), data, data CRC (4)."""
    with open(path, "rb") as handle:
        while header := handle.read(8):
            (length,) = struct.unpack("<Q", header)
            handle.read(4)
            yield handle.read(length)
            handle.read(4)


def read_events(folder: Path) -> tuple[dict[str, list[tuple[int, float]]], list[dict]]:
    """Every scalar, tag -> [(step, value)] in the order written, and the hyperparameters of
    every HParams session start (name -> value) in the event files of `folder`."""
    written: list[tuple[float, int, str, int, float]] = []
    sessions: list[dict[str, Any]] = []
    for path in folder.glob("events.out.tfevents.*"):
        for order, record in enumerate(records(path)):
            event = event_pb2.Event.FromString(record)
            for value in event.summary.value:
                plugin = value.metadata.plugin_data
                if plugin.plugin_name != "hparams":
                    written.append(
                        (event.wall_time, order, value.tag, event.step, value.simple_value)
                    )
                    continue
                data = plugin_hparams_pb2.HParamsPluginData.FromString(plugin.content)
                if data.HasField("session_start_info"):
                    hparams = data.session_start_info.hparams
                    sessions.append(
                        {k: getattr(v, v.WhichOneof("kind")) for k, v in hparams.items()}
                    )
    scalars: dict[str, list[tuple[int, float]]] = {}
    for _, _, tag, step, value in sorted(written, key=lambda w: w[:2]):
        scalars.setdefault(tag, []).append((step, value))
    return scalars, sessions


def test_tensorboard_logger_writes_the_hyperparameters_and_every_metric(logged_run) -> None:
    run, metrics = logged_run("tensorboard")
    assert json.loads((run / "metrics.json").read_text()) == metrics
    folder = run / "tensorboard"
    hparams = yaml.safe_load((folder / "hparams.yaml").read_text())
    assert hparams["config"]["beta"] == 0.5 and hparams["config"]["seed"] == 3
    scalars, sessions = read_events(folder)
    # TensorBoard's HParams tab: the flattened config, from every stage's file.
    assert sessions and all(s["config/beta"] == 0.5 and s["config/seed"] == 3 for s in sessions)
    assert "hp_metric" not in scalars  # no placeholder metric
    assert [step for step, _ in scalars["train/loss"]] == [16, 32]  # once per epoch
    # Every validation and test metric: the last value is metrics.json's (float32 in both).
    logged = [name for name in metrics if name.startswith(("val/", "test"))]
    assert {"val/f1", "test/f1", "test_near/auroc", "test_far/auroc"} <= set(logged)
    for name in logged:
        assert scalars[name][-1][1] == metrics[name], name
    # 2 epochs, then the validation of the tested weights, whose file a same-second test
    # stage used to replace.
    assert [step for step, _ in scalars["val/f1"]] == [16, 32, 32]


def test_each_stage_writes_a_file_of_its_own(tmp_path: Path) -> None:
    """Lightning closes the writer after each stage; the next writer, opened within the same
    second, must not take (and truncate) the closed writer's file."""
    logger = TensorBoardLogger(save_dir=str(tmp_path))
    for step, stage in enumerate(["fit", "validate", "test"]):
        logger.log_metrics({f"{stage}/x": float(step)}, step=step)
        logger.finalize("success")
    assert len(list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))) == 3
    scalars, _ = read_events(tmp_path / "tensorboard")
    assert scalars == {"fit/x": [(0, 0.0)], "validate/x": [(1, 1.0)], "test/x": [(2, 2.0)]}


def test_hparams_summary_lists_the_configured_metrics(tmp_path: Path) -> None:
    """The HParams tab reads these metrics' values from the scalars of the same names."""
    logger = TensorBoardLogger(save_dir=str(tmp_path), hparams_metrics=["val/f1", "test/auroc"])
    logger.log_hyperparams({"config": {"beta": 0.5, "model": {"hidden": [8, 8]}}})
    logger.finalize("success")
    experiments = []
    for path in (tmp_path / "tensorboard").glob("events.out.tfevents.*"):
        for record in records(path):
            for value in event_pb2.Event.FromString(record).summary.value:
                if value.tag == "_hparams_/experiment":
                    content = value.metadata.plugin_data.content
                    experiments.append(plugin_hparams_pb2.HParamsPluginData.FromString(content))
    [data] = experiments
    assert [m.name.tag for m in data.experiment.metric_infos] == ["val/f1", "test/auroc"]
    assert {h.name for h in data.experiment.hparam_infos} == {"config/beta", "config/model/hidden"}
