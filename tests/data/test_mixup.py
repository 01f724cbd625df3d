"""Mixup within one group: convex combinations, soft labels, lam ~ Beta(alpha, alpha)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from oodmix.data import Mixup, TwoDisksDataModule
from oodmix.data.mixup import MixupDraws

N_KS = 20000
KS_THRESHOLD_1PCT = 1.63  # Kolmogorov's asymptotic critical value at the 1% level


def ks_statistic(samples: torch.Tensor, cdf) -> float:
    """sup_x |F_n(x) - F(x)|, computed from the sorted samples (float64)."""
    x = samples.double().flatten().sort().values
    n = x.shape[0]
    f = cdf(x)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return max((i / n - f).max().item(), (f - (i - 1) / n).max().item())


BETA_CDFS = {
    1.0: lambda x: x,
    2.0: lambda x: 3 * x**2 - 2 * x**3,
    0.5: lambda x: (2 / math.pi) * torch.asin(x.clamp(0, 1).sqrt()),
}


def decompose_one_hot_mix(rows: torch.Tensor) -> list[tuple[int, int, float]]:
    """Read (i, j, lam) off rows lam * e_i + (1 - lam) * e_j, asserting that is their form."""
    out = []
    for row in rows.double():
        support = row.nonzero().flatten().tolist()
        assert 1 <= len(support) <= 2, f"row mixes {len(support)} points"
        assert bool((row >= 0).all()) and abs(row.sum().item() - 1) < 1e-6
        if len(support) == 1:
            out.append((support[0], support[0], 1.0))
        else:
            i, j = support
            out.append((i, j, row[i].item()))
    return out


def test_mixed_inputs_are_convex_combinations_of_two_batch_points():
    """With one-hot inputs, each mixed row is lam * x_i + (1 - lam) * x_j for rows i, j of x."""
    torch.manual_seed(0)
    n = 64
    x = torch.eye(n)
    x_mix, soft = Mixup(alpha=1.0)(x)
    assert soft is None
    assert x_mix.shape == (n, n)
    pairs = decompose_one_hot_mix(x_mix)
    # A random permutation has ~1 fixed point: most rows really mix two different points.
    assert sum(i != j for i, j, _ in pairs) > n // 2
    for _, _, lam in pairs:
        assert 0.0 <= lam <= 1.0


def test_soft_labels_use_the_same_lam_and_partner_as_inputs():
    """soft_y[r] = lam * onehot(y_i) + (1 - lam) * onehot(y_j) with the (i, j, lam) of x_mix[r]."""
    torch.manual_seed(1)
    n = 40
    x = torch.eye(n, dtype=torch.float64)
    y = torch.randperm(n)  # a label per point, all distinct, not equal to the row index
    x_mix, soft = Mixup(alpha=0.7)(x, y, num_classes=n)
    assert soft.shape == (n, n)
    # Map each x coordinate k (point k) to its label y[k]: the soft label must be x_mix relabelled.
    expected = torch.zeros(n, n, dtype=torch.float64)
    expected[:, y] = x_mix.double()
    torch.testing.assert_close(soft.double(), expected, rtol=0, atol=1e-6)


def test_soft_labels_sum_to_one_and_lie_in_unit_interval():
    """Mixed soft labels are probability vectors."""
    torch.manual_seed(2)
    x = torch.randn(500, 2)
    y = torch.randint(0, 3, (500,))
    x_mix, soft = Mixup(alpha=0.4)(x, y, num_classes=3)
    assert x_mix.shape == (500, 2)
    assert soft.shape == (500, 3)
    assert bool((soft >= 0).all()) and bool((soft <= 1).all())
    torch.testing.assert_close(soft.sum(dim=1), torch.ones(500), rtol=0, atol=1e-6)


def test_mixing_labelled_samples_needs_num_classes():
    """Labels without num_classes cannot be one-hot encoded: ValueError."""
    with pytest.raises(ValueError, match="num_classes"):
        Mixup(alpha=1.0)(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long))


def test_sample_lam_shape_and_range():
    """n weights of shape (n, 1), each in [0, 1]."""
    torch.manual_seed(3)
    for alpha in (0.1, 1.0, 10.0):
        lam = Mixup(alpha).sample_lam(1000)
        assert lam.shape == (1000, 1)
        assert bool((lam >= 0).all()) and bool((lam <= 1).all())


@pytest.mark.parametrize("alpha", sorted(BETA_CDFS))
def test_lam_follows_beta_distribution(alpha):
    """Kolmogorov–Smirnov against the analytic Beta(alpha, alpha) CDF, 1% level, n = 20000."""
    torch.manual_seed(4)
    lam = Mixup(alpha).sample_lam(N_KS)
    assert ks_statistic(lam, BETA_CDFS[alpha]) < KS_THRESHOLD_1PCT / math.sqrt(N_KS)


def test_ks_check_rejects_the_wrong_alpha():
    """The KS check has power: Beta(2, 2) draws fail against the uniform CDF."""
    torch.manual_seed(5)
    lam = Mixup(2.0).sample_lam(N_KS)
    assert ks_statistic(lam, BETA_CDFS[1.0]) > KS_THRESHOLD_1PCT / math.sqrt(N_KS)


def test_lam_used_by_call_follows_beta():
    """The lam that __call__ mixes with is Beta(alpha, alpha).

    Read off one-hot mixes, lam and 1 - lam cannot be told apart, so test m = min(lam, 1 - lam):
    by symmetry of Beta(a, a), P(m <= t) = 2 F(t) on [0, 1/2]. Rows whose partner is themselves
    carry no lam and are skipped.
    """
    torch.manual_seed(6)
    n = 2000
    alpha = 2.0
    x_mix, _ = Mixup(alpha)(torch.eye(n))
    lams = torch.tensor([lam for i, j, lam in decompose_one_hot_mix(x_mix) if i != j])
    folded = torch.minimum(lams, 1 - lams)
    stat = ks_statistic(folded, lambda t: 2 * BETA_CDFS[alpha](t))
    assert stat < KS_THRESHOLD_1PCT / math.sqrt(folded.shape[0])


def test_lam_variance_depends_on_alpha():
    """Var(lam) = 1 / (4 (2 alpha + 1)): alpha = 0.2 and 5 differ clearly, each as predicted.

    Tolerance: 5 standard errors of the sample variance, using the exact fourth moment
    mu4 = sigma^4 (3 - 6 / (2 alpha + 3)) of a symmetric Beta.
    """
    torch.manual_seed(7)
    variances = {}
    for alpha in (0.2, 5.0):
        lam = Mixup(alpha).sample_lam(N_KS).double()
        var = 1 / (4 * (2 * alpha + 1))
        mu4 = var**2 * (3 - 6 / (2 * alpha + 3))
        se = math.sqrt((mu4 - var**2) / N_KS)
        variances[alpha] = lam.var().item()
        assert abs(variances[alpha] - var) < 5 * se
    assert variances[0.2] > 5 * variances[5.0]


@pytest.mark.parametrize("alpha", [0.0, -1.0, float("nan")])
def test_nonpositive_alpha_rejected(alpha):
    """alpha must be > 0; the error names the config key."""
    with pytest.raises(ValueError, match=r"mixup\.alpha"):
        Mixup(alpha)


# --- the datamodule's on_after_batch_transfer -------------------------------------------------


def make_datamodule(mixup: dict | None = None) -> TwoDisksDataModule:
    return TwoDisksDataModule(
        disks=[
            {"center": [-2.0, -2.0], "radius": 2.0, "n_train": 100},
            {"center": [2.0, 2.0], "radius": 2.0, "n_train": 100},
        ],
        n_ood_train=100,
        n_val=10,
        n_test=10,
        batch_size=32,
        seed=0,
        mixup=mixup,
    )


def with_draws(dm: TwoDisksDataModule, batch: dict, seed: int = 0) -> dict:
    """The batch with the mixing draws its loader would attach (one step, stream `seed`)."""
    sizes = [(batch["id"][0].shape[0], batch["ood"].shape[0])]
    draws = MixupDraws(dm.mixup, dm.parts, sizes, np.random.default_rng(seed), torch.device("cpu"))
    return {**batch, "draws": draws.step(0)}


def separated_batch(n_id: int = 32, n_ood: int = 32) -> dict:
    """ID points in [101, 110] x [0, 1], OOD points in [-110, -101] x [0, 1]."""
    g = torch.Generator().manual_seed(8)
    id_x = torch.rand(n_id, 2, generator=g) * torch.tensor([9.0, 1.0]) + torch.tensor([101.0, 0])
    id_y = torch.randint(0, 2, (n_id,), generator=g)
    ood_x = torch.rand(n_ood, 2, generator=g) * torch.tensor([9.0, 1.0]) - torch.tensor([110.0, 0])
    return {"id": (id_x, id_y), "ood": ood_x}


def in_region(x: torch.Tensor, low: float, high: float) -> bool:
    """All points inside [low, high] x [0, 1] (the convex hull of a group lies in it)."""
    eps = 1e-4
    first_ok = (x[:, 0] >= low - eps) & (x[:, 0] <= high + eps)
    second_ok = (x[:, 1] >= -eps) & (x[:, 1] <= 1 + eps)
    return bool((first_ok & second_ok).all())


def test_no_mixed_parts_unless_requested():
    """By default (parts id, ood) the batch passes through unchanged."""
    dm = make_datamodule(mixup={"alpha": 1.0})
    batch = separated_batch()
    out = dm.on_after_batch_transfer([dict(batch)], 0)[0]
    assert set(out) == {"id", "ood"}
    assert torch.equal(out["ood"], batch["ood"])


@pytest.mark.parametrize(
    "parts",
    [
        {"id", "ood", "id_mix"},
        {"id", "ood", "ood_mix"},
        {"id", "ood", "id_mix", "ood_mix"},
    ],
)
def test_only_requested_mixed_parts_added(parts):
    """request_parts decides which of id_mix / ood_mix appear."""
    torch.manual_seed(9)
    dm = make_datamodule(mixup={"alpha": 1.0})
    dm.request_parts(parts)
    out = dm.on_after_batch_transfer([with_draws(dm, separated_batch())], 0)[0]
    assert set(out) == {"id", "ood"} | (parts & {"id_mix", "ood_mix"})


def test_mixed_parts_stay_within_their_group():
    """id_mix stays in the ID region and ood_mix in the OOD region: ID never meets OOD."""
    torch.manual_seed(10)
    dm = make_datamodule(mixup={"alpha": 0.5})
    dm.request_parts({"id", "ood", "id_mix", "ood_mix"})
    for seed in range(20):
        out = dm.on_after_batch_transfer([with_draws(dm, separated_batch(), seed)], 0)[0]
        x_mix, soft = out["id_mix"]
        assert in_region(x_mix, 101.0, 110.0)
        assert in_region(out["ood_mix"], -110.0, -101.0)
        assert soft.shape == (32, 2)
        torch.testing.assert_close(soft.sum(dim=1), torch.ones(32), rtol=0, atol=1e-6)


def test_mixed_batches_have_the_id_batch_size():
    """With the default equal sizes, both mixed parts have the ID batch's size."""
    torch.manual_seed(11)
    dm = make_datamodule(mixup={"alpha": 1.0})
    dm.request_parts({"id", "ood", "id_mix", "ood_mix"})
    out = dm.on_after_batch_transfer([with_draws(dm, separated_batch(n_id=32, n_ood=32))], 0)[0]
    assert out["id_mix"][0].shape == (32, 2)
    assert out["id_mix"][1].shape == (32, 2)
    assert out["ood_mix"].shape == (32, 2)


def test_mixed_parts_follow_their_source_sizes():
    """With a different OOD batch size, each mixed part has the size of the group it mixes."""
    torch.manual_seed(12)
    dm = make_datamodule(mixup={"alpha": 1.0})
    dm.request_parts({"id", "ood", "id_mix", "ood_mix"})
    out = dm.on_after_batch_transfer([with_draws(dm, separated_batch(n_id=20, n_ood=48))], 0)[0]
    assert out["id_mix"][0].shape == (20, 2)
    assert out["ood_mix"].shape == (48, 2)


def test_eval_batches_are_not_mixed():
    """Evaluation batches ({"x", "is_id", "y"}) pass through even when mixing is requested."""
    dm = make_datamodule(mixup={"alpha": 1.0})
    dm.request_parts({"id", "ood", "id_mix", "ood_mix"})
    batch = {"x": torch.zeros(3, 2), "is_id": torch.ones(3, dtype=torch.bool), "y": torch.zeros(3)}
    assert set(dm.on_after_batch_transfer(dict(batch), 0)) == {"x", "is_id", "y"}


def test_request_parts_validation():
    """Unknown parts, or mixed parts without a mixup config, raise ValueError."""
    with pytest.raises(ValueError, match="unknown"):
        make_datamodule(mixup={"alpha": 1.0}).request_parts({"id", "foo"})
    with pytest.raises(ValueError, match="mixup"):
        make_datamodule(mixup=None).request_parts({"id", "ood", "id_mix"})


def test_mixup_on_real_training_batches():
    """End to end: a loader batch of the datamodule gets mixed parts of the matching sizes."""
    torch.manual_seed(13)
    dm = make_datamodule(mixup={"alpha": 1.0})
    dm.request_parts({"id", "ood", "id_mix", "ood_mix"})
    dm.setup("fit")
    chunk = next(iter(dm.train_dataloader()))
    for out in dm.on_after_batch_transfer(chunk, 0):  # every step batch of the chunk
        assert out["id_mix"][0].shape == out["id"][0].shape
        assert out["ood_mix"].shape == out["ood"].shape
