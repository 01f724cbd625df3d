"""The MLP, the LightningModule's training step and the max-softmax detector."""

from __future__ import annotations

import functools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from oodmix.detectors import MaxSoftmaxScore
from oodmix.losses import ConfidenceLoss, ConfidenceMixupLoss, CrossEntropyLoss
from oodmix.models import MLP, OODClassifier

# --- MLP ----------------------------------------------------------------------------------------


def test_mlp_layer_widths():
    """hidden = [8, 4]: Linear 2->8, act, Linear 8->4, act, Linear 4->3."""
    net = MLP(2, 3, hidden=[8, 4], activation="relu")
    layers = list(net)
    assert [type(layer) for layer in layers] == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    linear = [layer for layer in layers if isinstance(layer, nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in linear] == [(2, 8), (8, 4), (4, 3)]
    torch.manual_seed(0)
    assert net(torch.randn(5, 2)).shape == (5, 3)


def test_mlp_activation_choice():
    """activation picks the nonlinearity between layers."""
    net = MLP(2, 2, hidden=[4], activation="tanh")
    assert isinstance(net[1], nn.Tanh)


@pytest.mark.parametrize("hidden", [[0], [], [1.5], [8, -1]])
def test_mlp_bad_hidden_rejected(hidden):
    """Widths must be a non-empty list of integers >= 1; the error names model.hidden."""
    with pytest.raises(ValueError, match=r"model\.hidden"):
        MLP(2, 2, hidden=hidden)


def test_mlp_unknown_activation_rejected():
    """An unknown activation name raises ValueError naming model.activation."""
    with pytest.raises(ValueError, match=r"model\.activation"):
        MLP(2, 2, hidden=[4], activation="swishy")


# --- OODClassifier.step_terms --------------------------------------------------------------------


def make_module(loss) -> OODClassifier:
    torch.manual_seed(1)
    net = MLP(2, 2, hidden=[8], activation="tanh")
    return OODClassifier(net, loss, functools.partial(torch.optim.SGD, lr=0.1))


def make_batch(n: int = 6, n_ood: int = 6, seed: int = 2) -> dict:
    g = torch.Generator().manual_seed(seed)
    soft = torch.rand(n, 2, generator=g)
    return {
        "id": (torch.randn(n, 2, generator=g), torch.randint(0, 2, (n,), generator=g)),
        "ood": torch.randn(n_ood, 2, generator=g) * 5,
        "id_mix": (torch.randn(n, 2, generator=g), soft / soft.sum(dim=1, keepdim=True)),
        "ood_mix": torch.randn(n_ood, 2, generator=g) * 5,
    }


def log_softmax_direct(logits: torch.Tensor) -> torch.Tensor:
    z = logits.double()
    return z - z.exp().sum(dim=1, keepdim=True).log()


def kl_uniform_direct(logits: torch.Tensor) -> torch.Tensor:
    k = logits.shape[1]
    return (-math.log(k) - log_softmax_direct(logits).mean(dim=1)).mean()


@pytest.mark.parametrize("missing", ["ood", "id_mix", "ood_mix"])
def test_step_terms_names_the_missing_part(missing):
    """A batch without a part the loss needs fails with a RuntimeError naming that part."""
    module = make_module(ConfidenceMixupLoss(beta=1.0))
    batch = make_batch()
    del batch[missing]
    with pytest.raises(RuntimeError, match=f"missing.*'{missing}'"):
        module.step_terms(batch)["loss"]


def test_step_terms_confidence_loss_missing_ood():
    """ConfidenceLoss on an ID-only batch names "ood" as missing."""
    module = make_module(ConfidenceLoss(beta=1.0))
    with pytest.raises(RuntimeError, match="ood"):
        module.step_terms({"id": make_batch()["id"]})


def test_step_terms_mixup_loss_matches_direct_computation():
    """The returned scalar equals the objective computed from net(x) on each part separately."""
    beta = 0.7
    module = make_module(ConfidenceMixupLoss(beta=beta))
    batch = make_batch(n=6, n_ood=10)  # groups of different sizes
    loss = module.step_terms(batch)["loss"]
    assert loss.dim() == 0 and loss.requires_grad
    with torch.no_grad():
        net = module.net
        x, y = batch["id"]
        ce = -log_softmax_direct(net(x))[torch.arange(6), y].mean()
        kl = kl_uniform_direct(net(batch["ood"]))
        x_mix, soft = batch["id_mix"]
        ce_mix = -(soft.double() * log_softmax_direct(net(x_mix))).sum(dim=1).mean()
        kl_mix = kl_uniform_direct(net(batch["ood_mix"]))
    expected = ce + beta * kl + ce_mix + beta * kl_mix
    assert abs(loss.item() - expected.item()) < 1e-5


def test_step_terms_ce_ignores_unneeded_parts():
    """Cross-entropy uses only the ID part, even when the batch carries OOD points."""
    module = make_module(CrossEntropyLoss())
    batch = make_batch()
    loss = module.step_terms(batch)["loss"]
    x, y = batch["id"]
    with torch.no_grad():
        expected = -log_softmax_direct(module.net(x))[torch.arange(x.shape[0]), y].mean()
    assert loss.dim() == 0
    assert abs(loss.item() - expected.item()) < 1e-5


def test_step_terms_gradients_reach_the_network():
    """Backpropagating the returned loss gives nonzero gradients for every layer."""
    module = make_module(ConfidenceMixupLoss(beta=1.0))
    module.step_terms(make_batch())["loss"].backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in module.parameters())


def test_configure_optimizers_uses_factory():
    """The optimiser factory receives the module's parameters."""
    module = make_module(CrossEntropyLoss())
    optimizer = module.configure_optimizers()
    assert isinstance(optimizer, torch.optim.SGD)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    assert len(params) == len(list(module.parameters()))


# --- MaxSoftmaxScore ------------------------------------------------------------------------------


def test_max_softmax_hand_values():
    """[0, ln 3] -> 3/4; [0, 0, ln 2] -> 1/2; equal logits -> 1/K."""
    score = MaxSoftmaxScore()
    torch.testing.assert_close(score(torch.tensor([[0.0, math.log(3)]])), torch.tensor([0.75]))
    torch.testing.assert_close(score(torch.tensor([[0.0, 0.0, math.log(2)]])), torch.tensor([0.5]))
    torch.testing.assert_close(score(torch.full((2, 4), 3.0)), torch.tensor([0.25, 0.25]))


def test_max_softmax_matches_formula():
    """s(x) = exp(max_k z_k) / sum_k exp(z_k) on random logits."""
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(50, 5, generator=g, dtype=torch.float64) * 3
    expected = logits.max(dim=1).values.exp() / logits.exp().sum(dim=1)
    torch.testing.assert_close(MaxSoftmaxScore()(logits), expected)
    torch.testing.assert_close(
        MaxSoftmaxScore()(logits), F.softmax(logits, dim=1).max(dim=1).values, rtol=1e-15, atol=0
    )


def test_max_softmax_float32_within_rounding_of_softmax():
    """In float32, on 20,000 random 2- and 10-class logits (scales 0.01 to 100), the score is
    softmax's largest probability up to one or two units in the last place."""
    g = torch.Generator().manual_seed(4)
    for classes in (2, 10):
        for scale in (0.01, 1.0, 100.0):
            logits = torch.randn(20_000, classes, generator=g) * scale
            reference = F.softmax(logits.double(), dim=1).max(dim=1).values
            score = MaxSoftmaxScore()(logits)
            assert score.dtype == torch.float32
            assert ((score.double() - reference).abs() <= 2.5e-7 * reference).all()


def test_max_softmax_infinite_and_nan_logits():
    """A logit of -inf contributes nothing; +inf (inf - inf) and NaN give NaN, as softmax does,
    so that evaluation refuses them."""
    inf, nan = float("inf"), float("nan")
    logits = torch.tensor([[-inf, 0.0], [-inf, -inf], [inf, 1.0], [nan, 1.0], [1000.0, 0.0]])
    score = MaxSoftmaxScore()(logits)
    expected = F.softmax(logits, dim=1).max(dim=1).values
    torch.testing.assert_close(score, expected, equal_nan=True)
    assert score[0] == 1.0 and score[4] == 1.0 and score[1:4].isnan().all()
