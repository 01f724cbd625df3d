"""The objectives and their terms, against hand-computed values and direct formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from oodmix.losses import ConfidenceLoss, ConfidenceMixupLoss, CrossEntropyLoss
from oodmix.losses.functional import kl_uniform, soft_cross_entropy

LN3 = math.log(3.0)


def direct_kl_uniform(logits: torch.Tensor) -> torch.Tensor:
    """mean_n sum_k (1/K) log((1/K) / p_k), with p = exp(z) / sum exp(z), in float64."""
    z = logits.double()
    p = z.exp() / z.exp().sum(dim=1, keepdim=True)
    k = z.shape[1]
    return ((1.0 / k) * ((1.0 / k) / p).log()).sum(dim=1).mean()


def direct_soft_ce(logits: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """mean_n -sum_k q_k log p_k, in float64."""
    z = logits.double()
    p = z.exp() / z.exp().sum(dim=1, keepdim=True)
    return -(q.double() * p.log()).sum(dim=1).mean()


def close(actual: torch.Tensor, expected: float | torch.Tensor, tol: float = 1e-6) -> None:
    assert abs(float(actual) - float(expected)) < tol, (float(actual), float(expected))


# --- functional ---------------------------------------------------------------------------------


def test_soft_cross_entropy_hand_computed():
    """Logits [0, ln 3] give p = [1/4, 3/4]; CE with q = [1/2, 1/2] is -(ln(1/4) + ln(3/4)) / 2."""
    logits = torch.tensor([[0.0, LN3]])
    q = torch.tensor([[0.5, 0.5]])
    close(soft_cross_entropy(logits, q), -(math.log(0.25) + math.log(0.75)) / 2)


def test_soft_cross_entropy_is_batch_mean():
    """Two rows: CE([1, 0], [1/4, 3/4]) = ln 4 and CE([0, 1], [1/2, 1/2]) = ln 2; mean of both."""
    logits = torch.tensor([[0.0, LN3], [0.0, 0.0]])
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    close(soft_cross_entropy(logits, q), (math.log(4) + math.log(2)) / 2)


def test_soft_cross_entropy_one_hot_equals_cross_entropy():
    """With one-hot targets the soft CE is the ordinary cross-entropy."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 5, generator=g)
    y = torch.randint(0, 5, (16,), generator=g)
    close(soft_cross_entropy(logits, F.one_hot(y, 5).float()), F.cross_entropy(logits, y), 1e-5)


def test_kl_uniform_hand_computed_two_classes():
    """p = [1/4, 3/4]: KL(U || p) = (1/2) ln(2) + (1/2) ln(2/3) = (1/2) ln(4/3)."""
    close(kl_uniform(torch.tensor([[0.0, LN3]])), 0.5 * math.log(4 / 3))


def test_kl_uniform_hand_computed_three_classes_batch_mean():
    """p = [1/4, 1/4, 1/2] gives (1/3)(2 ln(4/3) + ln(2/3)); a uniform row gives 0; mean of both."""
    logits = torch.tensor([[0.0, 0.0, math.log(2)], [5.0, 5.0, 5.0]])
    row0 = (2 * math.log(4 / 3) + math.log(2 / 3)) / 3
    close(kl_uniform(logits), row0 / 2)


def test_kl_uniform_equals_ce_to_uniform_minus_log_k():
    """KL(U || p) = CE(U, p) - log K on random logits."""
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(32, 4, generator=g) * 3
    uniform = torch.full((32, 4), 0.25)
    close(kl_uniform(logits), direct_soft_ce(logits, uniform) - math.log(4), 1e-5)
    close(kl_uniform(logits), direct_kl_uniform(logits), 1e-5)


def test_kl_uniform_zero_for_uniform_positive_otherwise():
    """Equal logits (any value) give KL = 0; any non-constant row gives KL > 0."""
    close(kl_uniform(torch.full((3, 4), 7.5)), 0.0)
    g = torch.Generator().manual_seed(2)
    for _ in range(10):
        logits = torch.randn(1, 3, generator=g)
        assert kl_uniform(logits).item() > 0
    assert kl_uniform(torch.tensor([[0.0, 1e-2]])).item() > 0


# --- objectives ---------------------------------------------------------------------------------


def random_batch(seed: int = 0, n: int = 8, k: int = 3):
    """Logits for each part and a matching batch (integer labels, soft labels)."""
    g = torch.Generator().manual_seed(seed)
    logits = {
        part: torch.randn(n, k, generator=g) * 2 for part in ("id", "ood", "id_mix", "ood_mix")
    }
    y = torch.randint(0, k, (n,), generator=g)
    soft = torch.rand(n, k, generator=g)
    soft = soft / soft.sum(dim=1, keepdim=True)
    batch = {
        "id": (torch.zeros(n, 2), y),
        "ood": torch.zeros(n, 2),
        "id_mix": (torch.zeros(n, 2), soft),
        "ood_mix": torch.zeros(n, 2),
    }
    return logits, batch


def test_requires_sets():
    """Each objective declares exactly the batch parts it reads."""
    assert CrossEntropyLoss.requires == {"id"}
    assert ConfidenceLoss.requires == {"id", "ood"}
    assert ConfidenceMixupLoss().requires == {"id", "ood", "id_mix", "ood_mix"}
    assert ConfidenceMixupLoss(pairs="cross").requires == {"id", "ood", "cross_mix"}
    assert ConfidenceMixupLoss(pairs="both").requires == {
        "id", "ood", "id_mix", "ood_mix", "cross_mix"
    }  # fmt: skip


def test_cross_entropy_loss_matches_torch_and_hand_value():
    """CrossEntropyLoss is F.cross_entropy; on [0, ln 3] with label 1 it is -ln(3/4)."""
    logits, batch = random_batch(3)
    out = CrossEntropyLoss()(logits, batch)
    assert set(out) == {"loss", "ce"}
    close(out["loss"], F.cross_entropy(logits["id"], batch["id"][1]))
    close(out["ce"], out["loss"])
    hand = CrossEntropyLoss()({"id": torch.tensor([[0.0, LN3]])}, {"id": (None, torch.tensor([1]))})
    close(hand["loss"], -math.log(0.75))


def test_confidence_loss_beta_zero_is_cross_entropy():
    """beta = 0 gives plain cross-entropy (the KL is still reported)."""
    logits, batch = random_batch(4)
    out = ConfidenceLoss(beta=0.0)(logits, batch)
    close(out["loss"], F.cross_entropy(logits["id"], batch["id"][1]))
    close(out["kl"], direct_kl_uniform(logits["ood"]), 1e-5)


def test_confidence_loss_hand_computed():
    """ID logits [0, ln 3] label 1 and OOD logits [0, ln 3], beta = 0.5:
    loss = -ln(3/4) + 0.5 * (1/2) ln(4/3)."""
    logits = {"id": torch.tensor([[0.0, LN3]]), "ood": torch.tensor([[0.0, LN3]])}
    batch = {"id": (None, torch.tensor([1])), "ood": None}
    out = ConfidenceLoss(beta=0.5)(logits, batch)
    close(out["ce"], -math.log(0.75))
    close(out["kl"], 0.5 * math.log(4 / 3))
    close(out["loss"], -math.log(0.75) + 0.25 * math.log(4 / 3))


def test_confidence_loss_random_matches_formula():
    """loss = CE + beta * KL with both terms computed directly."""
    logits, batch = random_batch(5)
    out = ConfidenceLoss(beta=0.5)(logits, batch)
    ce = direct_soft_ce(logits["id"], F.one_hot(batch["id"][1], 3))
    kl = direct_kl_uniform(logits["ood"])
    close(out["ce"], ce, 1e-5)
    close(out["kl"], kl, 1e-5)
    close(out["loss"], ce + 0.5 * kl, 1e-5)


@pytest.mark.parametrize("beta", [0.0, 0.3, 2.0])
def test_confidence_mixup_loss_terms_and_total(beta):
    """total = ce + beta * kl + ce_mix + beta * kl_mix, each term from its own direct formula."""
    logits, batch = random_batch(6)
    out = ConfidenceMixupLoss(beta=beta)(logits, batch)
    assert set(out) == {"loss", "ce", "kl", "ce_mix", "kl_mix"}
    ce = direct_soft_ce(logits["id"], F.one_hot(batch["id"][1], 3))
    kl = direct_kl_uniform(logits["ood"])
    ce_mix = direct_soft_ce(logits["id_mix"], batch["id_mix"][1])
    kl_mix = direct_kl_uniform(logits["ood_mix"])
    close(out["ce"], ce, 1e-5)
    close(out["kl"], kl, 1e-5)
    close(out["ce_mix"], ce_mix, 1e-5)
    close(out["kl_mix"], kl_mix, 1e-5)
    close(out["loss"], ce + beta * kl + ce_mix + beta * kl_mix, 1e-5)


def test_losses_are_differentiable():
    """The total backpropagates to every logits part it uses."""
    logits, batch = random_batch(7)
    logits = {k: v.requires_grad_() for k, v in logits.items()}
    ConfidenceMixupLoss(beta=1.0)(logits, batch)["loss"].backward()
    for part in ("id", "ood", "id_mix", "ood_mix"):
        assert logits[part].grad is not None and bool(logits[part].grad.abs().sum() > 0)


@pytest.mark.parametrize("loss_cls", [ConfidenceLoss, ConfidenceMixupLoss])
@pytest.mark.parametrize("beta", [-0.1, float("inf"), float("-inf"), float("nan")])
def test_invalid_beta_rejected(loss_cls, beta):
    """beta must be a finite number >= 0; the error names "beta"."""
    with pytest.raises(ValueError, match="beta"):
        loss_cls(beta=beta)
