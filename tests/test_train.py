"""End-to-end runs through Hydra compose + train(): what a run writes and what it reports."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from oodmix.config.errors import ConfigError
from oodmix.data import TwoDisksDataModule
from oodmix.models import MLP
from oodmix.runs.job import train

METRIC_KEYS = {
    "test/f1",
    "test/precision",
    "test/recall",
    "test/f1_ood",
    "test/precision_ood",
    "test/recall_ood",
    "test/acc",
}
TERMS = {
    "ce": {"loss", "ce"},
    "ce_kl": {"loss", "ce", "kl"},
    "ce_kl_mixup": {"loss", "ce", "kl", "ce_mix", "kl_mix"},
}


def direct_detection_counts(cfg, checkpoint: Path) -> dict[str, float]:
    """Recompute test F1/precision/recall from the checkpoint's weights with plain tensor maths."""
    datamodule = TwoDisksDataModule(
        disks=cfg.data.disks, box=cfg.data.box, n_test=cfg.data.n_test, seed=cfg.seed
    )
    test = datamodule.generate().test
    net = MLP(2, 2, hidden=list(cfg.model.hidden))
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    net.load_state_dict(
        {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
    )
    with torch.no_grad():
        confidence = net(test.x).softmax(-1).max(-1).values
    predicted_id = [c >= cfg.delta for c in confidence.tolist()]
    truly_id = [bool(t) for t in test.is_id.tolist()]
    tp = sum(p and t for p, t in zip(predicted_id, truly_id))
    fp = sum(p and not t for p, t in zip(predicted_id, truly_id))
    fn = sum(t and not p for p, t in zip(predicted_id, truly_id))
    tn = sum(not p and not t for p, t in zip(predicted_id, truly_id))
    return {
        "test/precision": tp / (tp + fp) if tp + fp else 0.0,
        "test/recall": tp / (tp + fn) if tp + fn else 0.0,
        "test/f1": 2 * tp / (2 * tp + fp + fn),
        "test/f1_ood": 2 * tn / (2 * tn + fn + fp),
    }


@pytest.mark.parametrize("loss", ["ce", "ce_kl", "ce_kl_mixup"])
def test_each_loss_trains_and_writes_metrics(compose_config, loss: str) -> None:
    """Every objective runs end to end and writes a flat metrics.json with the logged names."""
    cfg = compose_config(f"loss={loss}", "seed=3")
    metrics = train(cfg)
    run = Path(cfg.output_dir)
    written = json.loads((run / "metrics.json").read_text())
    assert written == metrics
    assert METRIC_KEYS <= set(written)
    assert written["loss"] == loss and written["seed"] == 3
    assert all(0.0 <= written[k] <= 1.0 for k in METRIC_KEYS)
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert len(list((run / "checkpoints").glob("best-*.ckpt"))) == 1
    # The loss terms are logged under train/<name>, once per epoch.
    with open(run / "csv" / "metrics.csv") as handle:
        columns = set(next(csv.reader(handle)))
    assert {f"train/{t}" for t in TERMS[loss]} <= columns
    assert not {f"train/{t}" for t in TERMS["ce_kl_mixup"] - TERMS[loss]} & columns


def test_reported_metrics_match_a_direct_count_on_the_best_checkpoint(compose_config) -> None:
    """test/* equal a recount of decisions (max softmax >= delta) made by the best checkpoint."""
    cfg = compose_config("loss=ce_kl", "trainer.max_epochs=4", "delta=0.7")
    metrics = train(cfg)
    best = next((Path(cfg.output_dir) / "checkpoints").glob("best-*.ckpt"))
    expected = direct_detection_counts(cfg, best)
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-6), key


def test_best_checkpoint_is_chosen_on_validation_f1(compose_config) -> None:
    """The tested weights are those of the epoch with the highest val/f1 (never the test set)."""
    cfg = compose_config("loss=ce_kl", "trainer.max_epochs=5")
    train(cfg)
    run = Path(cfg.output_dir)
    with open(run / "csv" / "metrics.csv") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("val/f1")]
    val_f1 = [float(r["val/f1"]) for r in rows]
    best_epoch = int(next((run / "checkpoints").glob("best-*.ckpt")).stem.split("=")[-1])
    assert val_f1[best_epoch] == max(val_f1)
    checkpoint = torch.load(
        next((run / "checkpoints").glob("best-*.ckpt")), map_location="cpu", weights_only=False
    )
    assert checkpoint["epoch"] == best_epoch


@pytest.mark.slow
def test_same_seed_same_metrics_and_other_seed_differs(compose_config) -> None:
    """A run is a function of its config: one seed twice gives the same numbers."""
    first = train(compose_config("seed=5", "trainer.max_epochs=2", run="a"))
    second = train(compose_config("seed=5", "trainer.max_epochs=2", run="b"))
    other = train(compose_config("seed=6", "trainer.max_epochs=2", run="c"))
    assert first == second
    assert {k: v for k, v in first.items() if k != "seed"} != {
        k: v for k, v in other.items() if k != "seed"
    }


def test_ce_never_draws_ood_or_mixed_batches(compose_config) -> None:
    """Plain CE asks only for the ID part, so the datamodule builds nothing else."""
    from hydra.utils import instantiate

    cfg = compose_config("loss=ce")
    loss = instantiate(cfg.loss)
    datamodule = instantiate(cfg.data)
    datamodule.request_parts(loss.requires)
    datamodule.setup("fit")
    chunk = datamodule.on_after_batch_transfer(next(iter(datamodule.train_dataloader())), 0)
    assert chunk and all(set(batch) == {"id"} for batch in chunk)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("beta=-1", "beta"),
        ("mixup.alpha=0", "mixup.alpha"),
        ("delta=1.5", "delta"),
        ("model.hidden=[0]", "model.hidden"),
        ("data.batch_size=0", "data.batch_size"),
    ],
)
def test_bad_values_stop_before_anything_is_written(compose_config, override, key) -> None:
    """A value outside its range raises ConfigError naming key, value and the allowed range."""
    cfg = compose_config(override)
    with pytest.raises(ConfigError) as error:
        train(cfg)
    message = str(error.value)
    assert message.startswith(f"{key}={override.split('=', 1)[1]} is not allowed")
    assert "must be" in message and "\n" not in message
    assert not Path(cfg.output_dir).exists()


def test_best_needs_the_monitoring_checkpoint(compose_config) -> None:
    """Without the val/f1 checkpoint there is no "best": say so before training."""
    cfg = compose_config("callbacks.model_checkpoint=null")
    with pytest.raises(ConfigError, match=r"^test_ckpt=best is not allowed here"):
        train(cfg)
    assert not (Path(cfg.output_dir) / "metrics.json").exists()


def test_last_tests_the_final_epoch(compose_config) -> None:
    """test_ckpt=last tests the final weights, which last.ckpt also holds."""
    cfg = compose_config("callbacks.model_checkpoint=null", "test_ckpt=last", "seed=2")
    metrics = train(cfg)
    last = Path(cfg.output_dir) / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=False)["epoch"] == 2
    assert metrics == pytest.approx({**metrics, **direct_detection_counts(cfg, last)}, abs=1e-6)


def test_mixup_loss_without_mixup_config_is_one_line(compose_config) -> None:
    """A loss that needs mixed batches with mixup=null: a ConfigError, not a traceback."""
    with pytest.raises(ConfigError, match="needs mixed batches"):
        train(compose_config("loss=mixoe", "mixup=null"))


def test_trainer_choices_compose(compose_config) -> None:
    """trainer=cpu|gpu|auto pick the accelerator; everything else is shared."""
    accelerators = {
        name: compose_config(f"trainer={name}").trainer.accelerator
        for name in ("cpu", "gpu", "auto")
    }
    assert accelerators == {"cpu": "cpu", "gpu": "gpu", "auto": "auto"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: trainer=gpu is valid")
def test_trainer_gpu_without_a_gpu_is_one_clear_error(compose_config) -> None:
    """Asking for a GPU where torch sees none stops before training, naming the way out."""
    cfg = compose_config("trainer=gpu")
    with pytest.raises(ConfigError, match=r"^trainer\.accelerator=gpu is not allowed here: no GPU"):
        train(cfg)
    assert not Path(cfg.output_dir).exists()


def test_trainer_auto_runs_on_this_machine(compose_config) -> None:
    """trainer=auto trains on whatever is present (the CPU in CI)."""
    metrics = train(compose_config("trainer=auto", "loss=ce", "trainer.max_epochs=1"))
    assert "test/f1" in metrics
