"""Outlier Exposure, energy-bounded learning, MixOE and cross pairs, against direct formulas."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from oodmix.data import Mixup, TwoDisksDataModule
from oodmix.data.mixup import MixupDraws
from oodmix.losses import (
    ConfidenceLoss,
    ConfidenceMixupLoss,
    EnergyBoundedLoss,
    MixtureOutlierExposureLoss,
    OutlierExposureLoss,
)
from oodmix.losses.functional import free_energy, uniform_cross_entropy
from oodmix.runs.job import train

LN2, LN3 = math.log(2.0), math.log(3.0)


def close(actual: torch.Tensor, expected: float | torch.Tensor, tol: float = 1e-6) -> None:
    assert abs(float(actual) - float(expected)) < tol, (float(actual), float(expected))


def direct_soft_ce(logits: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """mean_n -sum_k q_k log p_k with p = exp(z) / sum exp(z), in float64."""
    z = logits.double()
    p = z.exp() / z.exp().sum(dim=1, keepdim=True)
    return -(q.double() * p.log()).sum(dim=1).mean()


def direct_kl_uniform(logits: torch.Tensor) -> torch.Tensor:
    """mean_n sum_k (1/K) log((1/K) / p_k), in float64."""
    z = logits.double()
    p = z.exp() / z.exp().sum(dim=1, keepdim=True)
    k = z.shape[1]
    return ((1.0 / k) * ((1.0 / k) / p).log()).sum(dim=1).mean()


def random_batch(seed: int, n: int = 8, k: int = 3) -> tuple[dict, dict]:
    """Logits of every part and a batch with integer labels and soft targets (rows sum to 1)."""
    g = torch.Generator().manual_seed(seed)
    parts = ("id", "ood", "id_mix", "ood_mix", "cross_mix")
    logits = {part: torch.randn(n, k, generator=g) * 2 for part in parts}
    y = torch.randint(0, k, (n,), generator=g)
    soft = torch.rand(n, k, generator=g)
    soft = soft / soft.sum(dim=1, keepdim=True)
    lam = torch.rand(n, 1, generator=g)
    cross_target = lam * F.one_hot(y, k) + (1 - lam) / k
    batch = {
        "id": (torch.zeros(n, 2), y),
        "ood": torch.zeros(n, 2),
        "id_mix": (torch.zeros(n, 2), soft),
        "ood_mix": torch.zeros(n, 2),
        "cross_mix": (torch.zeros(n, 2), cross_target),
    }
    return logits, batch


# --- functional ---------------------------------------------------------------------------------


def test_uniform_cross_entropy_hand_values():
    """p = [1/4, 3/4] gives -(ln 1/4 + ln 3/4) / 2; a uniform row gives ln K; batch mean."""
    close(uniform_cross_entropy(torch.tensor([[0.0, LN3]])), -(math.log(0.25) + math.log(0.75)) / 2)
    close(uniform_cross_entropy(torch.full((1, 5), 3.0)), math.log(5))
    logits = torch.tensor([[0.0, LN3], [2.0, 2.0]])
    expected = (-(math.log(0.25) + math.log(0.75)) / 2 + LN2) / 2
    close(uniform_cross_entropy(logits), expected)


def test_free_energy_hand_values():
    """E = -log sum_k exp f_k, per sample: [0, ln 3] -> -ln 4, [1, 2, 3] -> -ln(e + e^2 + e^3)."""
    energy = free_energy(torch.tensor([[0.0, LN3]]))
    assert energy.shape == (1,)
    close(energy[0], -math.log(4))
    energies = free_energy(torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]))
    assert energies.shape == (2,)
    close(energies[0], -math.log(math.exp(1) + math.exp(2) + math.exp(3)), 1e-5)
    close(energies[1], -LN3)


# --- Outlier Exposure ---------------------------------------------------------------------------


def test_outlier_exposure_hand_computed():
    """ID [0, ln 3] label 1, OOD [0, ln 3], lam = 0.5: -ln(3/4) + 0.5 * (-(ln 1/4 + ln 3/4) / 2)."""
    logits = {"id": torch.tensor([[0.0, LN3]]), "ood": torch.tensor([[0.0, LN3]])}
    batch = {"id": (None, torch.tensor([1])), "ood": None}
    out = OutlierExposureLoss(lam=0.5)(logits, batch)
    assert set(out) == {"loss", "ce", "oe"}
    oe = -(math.log(0.25) + math.log(0.75)) / 2
    close(out["ce"], -math.log(0.75))
    close(out["oe"], oe)
    close(out["loss"], -math.log(0.75) + 0.5 * oe)
    assert OutlierExposureLoss.requires == {"id", "ood"}


@pytest.mark.parametrize("lam", [0.0, 0.5, 1.7])
def test_outlier_exposure_is_ce_kl_plus_lam_log_k(lam):
    """OE(lam) = ConfidenceLoss(beta=lam) + lam * log K on random logits (K = 3)."""
    logits, batch = random_batch(0)
    oe = OutlierExposureLoss(lam=lam)(logits, batch)
    ce_kl = ConfidenceLoss(beta=lam)(logits, batch)
    close(oe["loss"], ce_kl["loss"] + lam * LN3, 1e-5)
    close(oe["oe"], direct_kl_uniform(logits["ood"]) + LN3, 1e-5)
    ce = direct_soft_ce(logits["id"], F.one_hot(batch["id"][1], 3))
    close(oe["loss"], ce + lam * (direct_kl_uniform(logits["ood"]) + LN3), 1e-5)


def test_outlier_exposure_gradients_equal_ce_kl():
    """OE and ce_kl differ by a constant: identical gradients w.r.t. the ID and OOD logits."""
    logits, batch = random_batch(1, n=6, k=4)
    inputs = [logits["id"].double().requires_grad_(), logits["ood"].double().requires_grad_()]
    parts = {"id": inputs[0], "ood": inputs[1]}
    grad_oe = torch.autograd.grad(OutlierExposureLoss(lam=0.7)(parts, batch)["loss"], inputs)
    grad_kl = torch.autograd.grad(ConfidenceLoss(beta=0.7)(parts, batch)["loss"], inputs)
    for a, b in zip(grad_oe, grad_kl):
        assert bool(a.abs().sum() > 0)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("lam", [-0.5, float("inf"), float("nan")])
def test_outlier_exposure_bad_lam_rejected(lam):
    """lam must be a finite number >= 0; the error names loss.lam."""
    with pytest.raises(ValueError, match=r"loss\.lam"):
        OutlierExposureLoss(lam=lam)


# --- energy-bounded learning --------------------------------------------------------------------


def test_energy_bounded_hand_computed():
    """m_in=-3, m_out=-1, w=0.5: one ID energy above m_in, two OOD energies below m_out."""
    # ID energies: -ln 2 (hinge 3 - ln 2) and -5 - ln 2 (hinge 0).
    # OOD energies: -ln 2 (hinge 0), -2 - ln 2 (hinge 1 + ln 2), -ln 4 (hinge ln 4 - 1).
    logits = {
        "id": torch.tensor([[0.0, 0.0], [5.0, 5.0]]),
        "ood": torch.tensor([[0.0, 0.0], [2.0, 2.0], [LN3, 0.0]]),
    }
    batch = {"id": (None, torch.tensor([0, 1])), "ood": None}
    out = EnergyBoundedLoss(weight=0.5, margin_in=-3.0, margin_out=-1.0)(logits, batch)
    assert set(out) == {"loss", "ce", "energy_id", "energy_ood"}
    ce = LN2  # every ID row has p = [1/2, 1/2]
    energy_id = ((3.0 - LN2) ** 2 + 0.0) / 2
    energy_ood = (0.0 + (1.0 + LN2) ** 2 + (math.log(4) - 1.0) ** 2) / 3
    close(out["ce"], ce)
    close(out["energy_id"], energy_id, 1e-5)
    close(out["energy_ood"], energy_ood, 1e-5)
    close(out["loss"], ce + 0.5 * (energy_id + energy_ood), 1e-5)
    assert EnergyBoundedLoss.requires == {"id", "ood"}


def test_energy_bounded_zero_hinges_when_margins_hold():
    """ID energy below m_in and OOD energy above m_out: both hinges 0, the loss is the CE."""
    logits = {"id": torch.tensor([[10.0, 10.0], [9.0, 12.0]]), "ood": torch.tensor([[0.0, 0.0]])}
    batch = {"id": (None, torch.tensor([0, 1])), "ood": None}
    out = EnergyBoundedLoss(weight=3.0, margin_in=-6.0, margin_out=-2.0)(logits, batch)
    ce = (LN2 + math.log(1 + math.exp(-3.0))) / 2
    assert float(out["energy_id"]) == 0.0 and float(out["energy_ood"]) == 0.0
    close(out["loss"], ce)


@pytest.mark.parametrize(("m_in", "m_out"), [(-2.0, -2.0), (-1.0, -5.0)])
def test_energy_bounded_margins_must_be_ordered(m_in, m_out):
    """margin_in >= margin_out is refused, naming loss.margin_in."""
    with pytest.raises(ValueError, match=r"loss\.margin_in"):
        EnergyBoundedLoss(margin_in=m_in, margin_out=m_out)


def test_energy_bounded_negative_weight_rejected():
    """A negative weight is refused, naming loss.weight."""
    with pytest.raises(ValueError, match=r"loss\.weight"):
        EnergyBoundedLoss(weight=-0.1)


# --- Mixture Outlier Exposure and cross pairs ---------------------------------------------------


@pytest.mark.parametrize("beta", [0.0, 0.4, 2.0])
def test_mixoe_cross_total(beta):
    """pairs=cross: loss = CE(id) + beta * CE(lam onehot + (1 - lam) U, p(cross_mix))."""
    logits, batch = random_batch(2)
    used = {part: logits[part] for part in ("id", "cross_mix")}
    loss = MixtureOutlierExposureLoss(beta=beta, pairs="cross")
    assert loss.requires == {"id", "cross_mix"}
    out = loss(used, batch)
    assert set(out) == {"loss", "ce", "ce_cross"}
    ce = direct_soft_ce(logits["id"], F.one_hot(batch["id"][1], 3))
    ce_cross = direct_soft_ce(logits["cross_mix"], batch["cross_mix"][1])
    close(out["ce"], ce, 1e-5)
    close(out["ce_cross"], ce_cross, 1e-5)
    close(out["loss"], ce + beta * ce_cross, 1e-5)


def test_mixoe_both_adds_within_terms():
    """pairs=both adds ce_mix (weight 1) and beta * kl_mix to the cross objective."""
    logits, batch = random_batch(3)
    loss = MixtureOutlierExposureLoss(beta=0.6, pairs="both")
    assert loss.requires == {"id", "id_mix", "ood_mix", "cross_mix"}
    out = loss({part: logits[part] for part in loss.requires}, batch)
    assert set(out) == {"loss", "ce", "ce_cross", "ce_mix", "kl_mix"}
    ce = direct_soft_ce(logits["id"], F.one_hot(batch["id"][1], 3))
    ce_cross = direct_soft_ce(logits["cross_mix"], batch["cross_mix"][1])
    ce_mix = direct_soft_ce(logits["id_mix"], batch["id_mix"][1])
    kl_mix = direct_kl_uniform(logits["ood_mix"])
    close(out["ce_mix"], ce_mix, 1e-5)
    close(out["kl_mix"], kl_mix, 1e-5)
    close(out["loss"], ce + 0.6 * ce_cross + ce_mix + 0.6 * kl_mix, 1e-5)


@pytest.mark.parametrize("loss_cls", [MixtureOutlierExposureLoss, ConfidenceMixupLoss])
def test_unknown_pairs_rejected(loss_cls):
    """pairs outside within / cross / both raises ValueError naming mixup.pairs."""
    with pytest.raises(ValueError, match=r"mixup\.pairs"):
        loss_cls(pairs="sideways")


def test_confidence_mixup_cross_total():
    """ce_kl_mixup with pairs=cross: ce + beta kl + beta ce_cross, no within terms."""
    logits, batch = random_batch(4)
    loss = ConfidenceMixupLoss(beta=0.8, pairs="cross")
    out = loss({part: logits[part] for part in loss.requires}, batch)
    assert set(out) == {"loss", "ce", "kl", "ce_cross"}
    ce = direct_soft_ce(logits["id"], F.one_hot(batch["id"][1], 3))
    kl = direct_kl_uniform(logits["ood"])
    ce_cross = direct_soft_ce(logits["cross_mix"], batch["cross_mix"][1])
    close(out["ce_cross"], ce_cross, 1e-5)
    close(out["loss"], ce + 0.8 * kl + 0.8 * ce_cross, 1e-5)


def test_confidence_mixup_both_total():
    """ce_kl_mixup with pairs=both: ce + beta kl + ce_mix + beta kl_mix + beta ce_cross."""
    logits, batch = random_batch(5)
    loss = ConfidenceMixupLoss(beta=1.5, pairs="both")
    out = loss({part: logits[part] for part in loss.requires}, batch)
    assert set(out) == {"loss", "ce", "kl", "ce_mix", "kl_mix", "ce_cross"}
    ce = direct_soft_ce(logits["id"], F.one_hot(batch["id"][1], 3))
    kl = direct_kl_uniform(logits["ood"])
    ce_mix = direct_soft_ce(logits["id_mix"], batch["id_mix"][1])
    kl_mix = direct_kl_uniform(logits["ood_mix"])
    ce_cross = direct_soft_ce(logits["cross_mix"], batch["cross_mix"][1])
    close(out["loss"], ce + 1.5 * kl + ce_mix + 1.5 * kl_mix + 1.5 * ce_cross, 1e-5)


# --- Mixup.cross and the datamodule ---------------------------------------------------------------


def test_mixup_cross_mixes_each_id_row_with_an_ood_row():
    """ID rows e_i, OOD rows -e_(n_id + j): mixed row r is lam e_r - (1 - lam) e_(n_id + j)."""
    torch.manual_seed(0)
    n_id, n_ood, k = 24, 7, 4
    dim = n_id + n_ood
    x_id = torch.eye(dim, dtype=torch.float64)[:n_id]
    x_ood = -torch.eye(dim, dtype=torch.float64)[n_id:]
    y = torch.arange(n_id) % k
    x_mix, target = Mixup(alpha=1.0).cross(x_id, y, x_ood, k)
    assert x_mix.shape == (n_id, dim) and target.shape == (n_id, k)
    partners = set()
    for r in range(n_id):
        lam = float(x_mix[r, r])
        assert 0.0 <= lam <= 1.0
        ood_part = x_mix[r, n_id:]
        j = int(ood_part.argmin())
        partners.add(j)
        expected = torch.zeros(dim, dtype=torch.float64)
        expected[r] = lam
        expected[n_id + j] = -(1 - lam)
        torch.testing.assert_close(x_mix[r], expected, rtol=0, atol=1e-6)
        soft = torch.full((k,), (1 - lam) / k, dtype=torch.float64)
        soft[int(y[r])] += lam
        torch.testing.assert_close(target[r].double(), soft, rtol=0, atol=1e-6)
    torch.testing.assert_close(target.sum(dim=1).double(), torch.ones(n_id, dtype=torch.float64))
    assert len(partners) > 1  # partners are drawn, not one fixed OOD row


def make_datamodule() -> TwoDisksDataModule:
    return TwoDisksDataModule(
        disks=[
            {"center": [-2.0, -2.0], "radius": 2.0, "n_train": 50},
            {"center": [2.0, 2.0], "radius": 2.0, "n_train": 50},
        ],
        n_ood_train=60,
        n_val=10,
        n_test=10,
        n_shift=10,
        batch_size=32,
        seed=0,
        mixup={"alpha": 1.0},
    )


def test_cross_mix_only_when_requested():
    """Parts {id, ood} or {id, ood, id_mix}: no cross_mix; {id, cross_mix}: cross_mix only."""
    g = torch.Generator().manual_seed(1)
    batch = {"id": (torch.randn(8, 2, generator=g), torch.zeros(8, dtype=torch.long))}
    batch["ood"] = torch.randn(8, 2, generator=g)
    dm = make_datamodule()

    def mixed(parts):
        dm.request_parts(parts)
        rng = np.random.default_rng(0)
        draws = MixupDraws(dm.mixup, dm.parts, [(8, 8)], rng, torch.device("cpu")).step(0)
        step = {**batch, "draws": draws} if draws else dict(batch)  # as TrainBatches attaches
        return set(dm.on_after_batch_transfer([step], 0)[0])

    assert mixed({"id", "ood"}) == {"id", "ood"}
    assert mixed({"id", "ood", "id_mix"}) == {"id", "ood", "id_mix"}
    assert mixed(MixtureOutlierExposureLoss().requires) == {"id", "ood", "cross_mix"}


def test_mixoe_datamodule_draws_ood_and_mixes_id_with_it():
    """mixoe requires id + cross_mix only, yet batches carry OOD points and the mix uses them."""
    torch.manual_seed(2)
    dm = make_datamodule()
    dm.request_parts(MixtureOutlierExposureLoss().requires)
    dm.setup("fit")
    batch = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)[0]
    assert set(batch) == {"id", "ood", "cross_mix"}
    x_id, y = batch["id"]
    x_mix, target = batch["cross_mix"]
    assert batch["ood"].shape == x_id.shape == x_mix.shape
    k = 2
    for r in range(x_id.shape[0]):
        # target[y] = lam + (1 - lam) / K  =>  lam = (target[y] - 1/K) / (1 - 1/K)
        lam = (float(target[r, int(y[r])]) - 1 / k) / (1 - 1 / k)
        if lam > 0.9:
            continue
        partner = (x_mix[r].double() - lam * x_id[r].double()) / (1 - lam)
        gaps = (batch["ood"].double() - partner).norm(dim=1)
        assert float(gaps.min()) < 1e-3, r
    only_id = make_datamodule()
    only_id.request_parts({"id"})
    only_id.setup("fit")
    assert set(next(iter(only_id.train_dataloader()))[0]) == {"id"}


# --- end to end ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "terms"),
    [
        (["loss=oe"], {"ce", "oe"}),
        (["loss=energy", "detector=energy"], {"ce", "energy_id", "energy_ood"}),
        (["loss=mixoe"], {"ce", "ce_cross"}),
        (["loss=ce_kl_mixup", "mixup.pairs=both"], {"ce", "kl", "ce_mix", "kl_mix", "ce_cross"}),
        (["loss=mixoe", "mixup.pairs=both"], {"ce", "ce_cross", "ce_mix", "kl_mix"}),
    ],
)
def test_new_objectives_train_end_to_end(compose_config, overrides, terms):
    """Two epochs write test/f1, test/auroc, test/fpr95 and the loss's train/<term> columns."""
    cfg = compose_config(*overrides, "trainer.max_epochs=2", "plots=false")
    train(cfg)
    run = Path(cfg.output_dir)
    written = json.loads((run / "metrics.json").read_text())
    for key in ("test/f1", "test/auroc", "test/fpr95"):
        assert 0.0 <= written[key] <= 1.0, key
    with open(run / "csv" / "metrics.csv") as handle:
        columns = set(next(csv.reader(handle)))
    assert {f"train/{t}" for t in terms} <= columns


@pytest.mark.parametrize(
    ("loss", "pairs", "parts"),
    [
        ("ce_kl_mixup", None, {"id_mix", "ood_mix"}),
        ("mixoe", None, {"cross_mix"}),
        ("mixoe", "both", {"id_mix", "ood_mix", "cross_mix"}),
        ("mixoe", "within", {"id_mix", "ood_mix"}),
        ("ce_kl_mixup", "cross", {"cross_mix"}),
    ],
)
def test_mixup_pairs_is_honoured_by_every_mixing_objective(compose_config, loss, pairs, parts):
    """mixup.pairs=null (the default) is each objective's own pairing; any other value is what
    the objective trains on, MixOE included (its config once fixed cross and ignored the knob)."""
    overrides = [f"loss={loss}"] + ([f"mixup.pairs={pairs}"] if pairs else [])
    built = instantiate(compose_config(*overrides).loss)
    assert built.requires & {"id_mix", "ood_mix", "cross_mix"} == parts


def test_unknown_pairs_refused_by_the_schema(compose_config):
    """mixup.pairs=sideways is refused by Hydra while composing (the schema's enumeration),
    in one line naming mixup.pairs and its choices."""
    from oodmix.config.errors import describe

    with pytest.raises(Exception) as error:
        compose_config("mixup.pairs=sideways")
    assert describe(error.value, []) == (
        "mixup.pairs='sideways' is not allowed: mixup.pairs must be one of within, cross, both"
    )
    assert compose_config("mixup.pairs=cross").mixup.pairs == "cross"  # an allowed value
