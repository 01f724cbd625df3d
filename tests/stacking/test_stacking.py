"""Stacked members compute, and are updated, as each would be alone (within float rounding)."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from oodmix.config.paths import config_dir, group_options
from oodmix.losses import ConfidenceMixupLoss, OutlierExposureLoss
from oodmix.models import MLP
from oodmix.models.member_updates import MemberLearningRates, clip_member_gradients
from oodmix.stacking import StackedNetwork, StackedObjective, member_numbers

K = 3


def networks(k: int = K) -> list[MLP]:
    nets = []
    for seed in range(k):
        torch.manual_seed(seed)
        nets.append(MLP(2, 2, [8, 8]))
    return nets


def test_each_member_computes_its_own_network() -> None:
    nets = networks()
    stack = StackedNetwork(nets)
    x = torch.randn(K, 5, 2)
    out = stack(x)
    out.pow(2).sum().backward()
    for k, net in enumerate(nets):
        torch.testing.assert_close(out[k], net(x[k]), rtol=0, atol=1e-6)
        net(x[k]).pow(2).sum().backward()
        for name, param in net.named_parameters():
            stacked = dict(stack.layout.named_parameters())[name]
            torch.testing.assert_close(stacked.grad[k], param.grad, rtol=0, atol=1e-6)


def test_a_member_state_dict_is_the_single_networks() -> None:
    nets = networks()
    stack = StackedNetwork(nets)
    for k, net in enumerate(nets):
        own = stack.member_state_dict(k)
        assert own.keys() == net.state_dict().keys()
        for name, value in net.state_dict().items():
            assert torch.equal(own[name], value)
    stack.load_member_state_dict(0, nets[2].state_dict())
    assert torch.equal(stack.member_state_dict(0)["0.weight"], nets[2].state_dict()["0.weight"])


def test_networks_of_other_shapes_or_inputs_for_other_members_are_refused() -> None:
    with pytest.raises(ValueError, match="one architecture"):
        StackedNetwork([MLP(2, 2, [8]), MLP(2, 2, [16])])
    with pytest.raises(ValueError, match="2 members given to a stack of 3"):
        StackedNetwork(networks())(torch.randn(2, 5, 2))


def member_inputs(parts: frozenset[str], k: int = K) -> tuple[dict, dict]:
    generator = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=generator)

    full = {
        "id": (randn(k, 6, 2), torch.randint(0, 2, (k, 6), generator=generator)),
        "ood": randn(k, 6, 2),
        "id_mix": (randn(k, 6, 2), randn(k, 6, 2).softmax(-1)),
        "ood_mix": randn(k, 6, 2),
        "cross_mix": (randn(k, 6, 2), randn(k, 6, 2).softmax(-1)),
    }
    batch = {p: full[p] for p in parts}
    logits = {p: randn(k, 6, 2) * 3 for p in parts}
    return logits, batch


def member(tree, k: int):
    return torch.utils._pytree.tree_map(lambda t: t[k], tree)


FLOAT32_STEPS = 2 * torch.finfo(torch.float32).eps  # a relative tolerance of two rounding steps

NUMBERS = {"beta": [0.1, 1.0, 3.0], "lam": [0.1, 0.5, 2.0], "weight": [0.05, 0.1, 1.0],
           "margin_in": [-7.0, -6.0, -5.0], "margin_out": [-3.0, -2.0, -1.0]}  # fmt: skip


@pytest.mark.parametrize("name", group_options("loss"))
def test_every_shipped_objective_stacks_with_its_own_numbers(name: str) -> None:
    """Each objective of conf/loss/, built per member with other weights and margins: the
    stacked terms are each member's own terms."""
    config = OmegaConf.load(config_dir() / "loss" / f"{name}.yaml")
    objectives = []
    for k in range(K):
        values = {key: NUMBERS[key][k] for key in config if key in NUMBERS}
        if "pairs" in config:
            values["pairs"] = "both"
        objectives.append(instantiate(config, **values))
    stacked = StackedObjective(objectives)
    logits, batch = member_inputs(stacked.requires)
    terms = stacked(logits, batch)
    for k, objective in enumerate(objectives):
        alone = objective(member(logits, k), member(batch, k))
        assert terms.keys() == alone.keys()
        for term, value in alone.items():
            # Within float rounding: 1e-6, or 2 float32 steps of the value where that is more
            # (mixoe's total is about 18, where one step is 1.9e-6; batched and single kernels
            # have been seen to differ by that step in some test processes, not in others).
            torch.testing.assert_close(terms[term][k], value, rtol=FLOAT32_STEPS, atol=1e-6)


def test_a_stack_of_one_skips_vmap_and_gives_the_same_terms() -> None:
    objective = ConfidenceMixupLoss(beta=0.7)
    logits, batch = member_inputs(objective.requires, k=1)
    terms = StackedObjective([objective])(logits, batch)
    alone = objective(member(logits, 0), member(batch, 0))
    assert all(torch.equal(terms[t][0], alone[t]) for t in alone)


def test_objectives_that_differ_in_more_than_numbers_do_not_stack() -> None:
    assert member_numbers([ConfidenceMixupLoss(0.1), ConfidenceMixupLoss(0.1)]) == {}
    assert member_numbers([ConfidenceMixupLoss(0.1), ConfidenceMixupLoss(2.0)]) == {
        "beta": [0.1, 2.0]
    }
    with pytest.raises(ValueError, match="cannot be stacked"):
        member_numbers([ConfidenceMixupLoss(1.0, "within"), ConfidenceMixupLoss(1.0, "both")])
    with pytest.raises(ValueError, match="cannot be stacked"):
        member_numbers([ConfidenceMixupLoss(1.0), OutlierExposureLoss(1.0)])


@pytest.mark.parametrize(
    "make",
    [
        lambda params, lr: torch.optim.Adam(params, lr=lr),
        lambda params, lr: torch.optim.AdamW(params, lr=lr, weight_decay=0.1),
        lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
    ],
)
def test_each_member_takes_the_step_of_its_own_learning_rate(make) -> None:
    """Five steps of members with learning rates 0.01, 0.003 and 0.05 on one optimiser equal
    five steps of three optimisers."""
    rates = [0.01, 0.003, 0.05]
    nets = networks()
    stack = StackedNetwork(nets)
    params = list(stack.parameters())
    optimizer = make(params, rates[0])
    lrs = MemberLearningRates(rates)
    alone = [make(net.parameters(), lr) for net, lr in zip(nets, rates)]
    x = torch.randn(K, 16, 2)
    for _ in range(5):
        optimizer.zero_grad()
        stack(x).pow(2).sum().backward()
        lrs.step(optimizer, params)
        for k, (net, opt) in enumerate(zip(nets, alone)):
            opt.zero_grad()
            net(x[k]).pow(2).sum().backward()
            opt.step()
    for k, net in enumerate(nets):
        for name, value in net.state_dict().items():
            torch.testing.assert_close(stack.member_state_dict(k)[name], value, rtol=0, atol=1e-6)


def test_equal_learning_rates_take_the_plain_step() -> None:
    assert not MemberLearningRates([0.01, 0.01]).needed
    assert MemberLearningRates([0.01, 0.02]).needed


@pytest.mark.parametrize("max_norm", [0.05, 1e6])
def test_clipping_by_norm_is_per_member(max_norm: float) -> None:
    """Each member's gradients scaled as clip_grad_norm_ scales that network's alone (a large
    max_norm clips nothing)."""
    nets = networks()
    stack = StackedNetwork(nets)
    x = torch.randn(K, 16, 2) * torch.tensor([1.0, 10.0, 100.0])[:, None, None]
    stack(x).pow(2).sum().backward()
    clip_member_gradients(list(stack.parameters()), max_norm)
    for k, net in enumerate(nets):
        net(x[k]).pow(2).sum().backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm)
        for name, param in net.named_parameters():
            stacked = dict(stack.layout.named_parameters())[name]
            torch.testing.assert_close(stacked.grad[k], param.grad, rtol=1e-5, atol=1e-7)


def test_clipping_by_value_clamps_each_entry() -> None:
    stack = StackedNetwork(networks())
    (stack(torch.randn(K, 16, 2) * 50).pow(2).sum()).backward()
    clip_member_gradients(list(stack.parameters()), 0.5, algorithm="value")
    assert max(p.grad.abs().max().item() for p in stack.parameters()) <= 0.5
