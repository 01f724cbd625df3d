"""Training and evaluation batches as index slices of device-resident tensors."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from oodmix.batch_parts import PAIRS_PARTS as PAIRS
from oodmix.data.loaders import EpochPlan, EvalBatches, TrainBatches, shard
from oodmix.data.mixup import Mixup


def identity_data(n_id: int = 1000, n_ood: int = 3000):
    """Inputs that encode their own index: id_x[i] = (i, i), id_y = i % 2, ood_x[k] = -(k + 1)."""
    idx = torch.arange(n_id, dtype=torch.float32)
    id_x = torch.stack([idx, idx], dim=1)
    id_y = torch.arange(n_id) % 2
    ood_x = -(torch.arange(n_ood, dtype=torch.float32) + 1).unsqueeze(1).repeat(1, 2)
    return id_x, id_y, ood_x


def make_train(epoch: int = 0, **kwargs) -> TrainBatches:
    id_x, id_y, ood_x = identity_data(kwargs.pop("n_id", 1000), kwargs.pop("n_ood", 3000))
    defaults = {"batch_size": 128, "ood_batch_size": 128, "seed": 0}
    defaults.update(kwargs)
    return TrainBatches(id_x, id_y, ood_x, epoch=lambda: epoch, **defaults)


def step_batches(batches):
    """The step batches of a loader (its chunks flattened), or a list of them as it is."""
    return batches.step_batches() if isinstance(batches, TrainBatches) else batches


def id_indices(batches) -> list[int]:
    return [int(v) for batch in step_batches(batches) for v in batch["id"][0][:, 0].tolist()]


def ood_indices(batches) -> list[int]:
    return [int(-v) - 1 for batch in step_batches(batches) for v in batch["ood"][:, 0].tolist()]


def test_batch_structure_and_sizes():
    """Dicts with "id" -> (x, y) and "ood" -> x; 7 full batches of 128, then the 104 left over."""
    loader = make_train()
    batches = list(loader.step_batches())
    assert loader.steps == len(batches) == 8
    for batch in batches:
        assert set(batch) == {"id", "ood"}
        x, y = batch["id"]
        assert x.shape[1] == 2 and y.shape == (x.shape[0],)
        # Inputs and labels stay paired: y = index % 2.
        assert torch.equal(y, x[:, 0].long() % 2)
    sizes = [batch["id"][0].shape[0] for batch in batches]
    assert sizes == [128] * 7 + [1000 - 7 * 128]


def test_drop_last_drops_the_partial_batch():
    """drop_last keeps only the 7 full batches."""
    loader = make_train(drop_last=True)
    batches = list(loader.step_batches())
    assert loader.steps == len(batches) == 7
    assert all(batch["id"][0].shape[0] == 128 for batch in batches)


def test_epoch_covers_every_id_index_once():
    """Across one epoch, each ID point appears exactly once, in a shuffled order."""
    order = id_indices(make_train())
    assert sorted(order) == list(range(1000))
    assert order != list(range(1000))


def test_order_depends_on_seed_and_epoch_only():
    """Same (seed, epoch): same order, even from a new loader; other epoch or seed: other order."""
    base = id_indices(make_train(epoch=3, seed=7))
    assert id_indices(make_train(epoch=3, seed=7)) == base
    assert id_indices(make_train(epoch=4, seed=7)) != base
    assert id_indices(make_train(epoch=3, seed=8)) != base


def test_orders_are_drawn_on_the_cpu_whatever_the_datas_device():
    """The orders are torch.randperm from a CPU generator seeded with seed * 1_000_003 + epoch
    (ID order, then as many OOD permutations as the epoch needs), and only then moved to the
    data's device: a run's batches are the same on every device. Data on the `meta` device
    stands for a GPU here: the orders come back there, and the CPU draw is the same as for
    data on the CPU."""
    seed, epoch, n_id, n_ood = 7, 3, 1000, 300
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    expected_id = torch.randperm(n_id, generator=generator)
    # 8 steps of 128 OOD points need 1,024 indices: four permutations of the 300 OOD points.
    expected_ood = torch.cat([torch.randperm(n_ood, generator=generator) for _ in range(4)])
    on_cpu = make_train(epoch=epoch, seed=seed, n_ood=n_ood)
    on_meta = TrainBatches(
        *(t.to("meta") for t in identity_data(n_id, n_ood)), 128, 128, seed=seed, epoch=lambda: 3
    )
    for loader in (on_cpu, on_meta):
        order, ood_order = loader.epoch_orders(torch.device("cpu"))
        assert torch.equal(order, expected_id) and torch.equal(ood_order, expected_ood)
    order, ood_order = on_meta.epoch_orders()
    assert order.device.type == "meta" and ood_order.device.type == "meta"
    assert order.shape == (n_id,) and ood_order.shape == (4 * n_ood,)


def test_epoch_callable_is_read_each_iteration():
    """One loader follows the epoch counter: iterating after the epoch changes reshuffles."""
    epoch = {"value": 0}
    id_x, id_y, ood_x = identity_data()
    loader = TrainBatches(id_x, id_y, ood_x, 128, 128, seed=0, epoch=lambda: epoch["value"])
    first = id_indices(loader)
    assert id_indices(loader) == first
    epoch["value"] = 1
    assert id_indices(loader) != first


def test_ood_batches_have_ood_batch_size():
    """Every step, including the last short ID step, gets ood_batch_size OOD points."""
    batches = list(make_train(ood_batch_size=50).step_batches())
    assert [batch["ood"].shape[0] for batch in batches] == [50] * 8
    assert all(batch["ood"].shape[1] == 2 for batch in batches)


def test_ood_batches_follow_the_id_batch_by_default():
    """ood_batch_size=None: each OOD batch as large as its ID batch, the short last one too."""
    batches = list(make_train(ood_batch_size=None).step_batches())
    assert [batch["ood"].shape[0] for batch in batches] == [128] * 7 + [104]
    assert [batch["id"][0].shape[0] for batch in batches] == [128] * 7 + [104]
    assert len(set(ood_indices(batches))) == 1000  # no OOD point twice within the epoch


def test_ood_points_are_drawn_evenly_when_the_set_is_small():
    """An OOD set smaller than an epoch needs is reused evenly: counts differ by at most one."""
    # 8 steps * 30 = 240 draws
    batches = list(make_train(n_ood=100, ood_batch_size=30).step_batches())
    counts = Counter(ood_indices(batches))
    assert sum(counts.values()) == 240
    assert set(counts) == set(range(100))
    assert max(counts.values()) - min(counts.values()) <= 1


def test_no_ood_part_without_ood_data():
    """ood_x=None gives ID-only batches."""
    id_x, id_y, _ = identity_data()
    loader = TrainBatches(id_x, id_y, None, 128, 128, seed=0, epoch=lambda: 0)
    assert all(set(batch) == {"id"} for batch in loader.step_batches())


@pytest.mark.parametrize("n_id", [1000, 1001])
def test_ddp_shards_are_disjoint_with_equal_steps(n_id):
    """world_size=2: ranks see disjoint ID (and OOD) points and run the same number of steps."""
    loaders = [make_train(n_id=n_id, world_size=2, rank=rank) for rank in (0, 1)]
    batches = [list(loader.step_batches()) for loader in loaders]
    assert len(loaders[0]) == len(loaders[1]) == len(batches[0]) == len(batches[1])
    ids = [id_indices(b) for b in batches]
    assert len(ids[0]) == len(ids[1]) == n_id // 2
    for rank_ids in ids:
        assert len(set(rank_ids)) == len(rank_ids)
    assert not set(ids[0]) & set(ids[1])
    # Per step, both ranks have the same batch size (no rank waits on the other).
    sizes = [[batch["id"][0].shape[0] for batch in b] for b in batches]
    assert sizes[0] == sizes[1]
    # The OOD set (3000) exceeds what one epoch needs on both ranks: no point is shared.
    assert not set(ood_indices(batches[0])) & set(ood_indices(batches[1]))


def test_ddp_single_rank_matches_plain_loader():
    """world_size=1 is the plain loader."""
    assert id_indices(make_train(world_size=1, rank=0)) == id_indices(make_train())


@pytest.mark.parametrize("world_size", [1, 2, 3, 4, 7])
def test_shard_covers_every_item_once(world_size):
    """Shards partition range(n) into contiguous pieces whose sizes differ by at most one."""
    for n in [*range(23), 1001]:
        slices = [shard(n, rank, world_size) for rank in range(world_size)]
        covered = [i for s in slices for i in range(n)[s]]
        assert covered == list(range(n)), (n, world_size)
        sizes = [len(range(n)[s]) for s in slices]
        assert max(sizes) - min(sizes) <= 1, (n, world_size)


def test_eval_batches_every_point_exactly_once_across_ranks():
    """n = 1001 over 2 ranks: 501 + 500 points, no padding, labels kept aligned."""
    n = 1001
    x = torch.arange(n, dtype=torch.float32).unsqueeze(1).repeat(1, 2)
    is_id = torch.arange(n) % 3 == 0
    y = torch.where(is_id, torch.arange(n) % 2, -1)
    seen: list[int] = []
    per_rank = []
    for rank in (0, 1):
        loader = EvalBatches(x, is_id, y, batch_size=128, rank=rank, world_size=2)
        batches = list(loader)
        assert len(loader) == len(batches)
        count = 0
        for batch in batches:
            assert set(batch) == {"x", "is_id", "y"}
            index = batch["x"][:, 0].long()
            assert torch.equal(batch["is_id"], index % 3 == 0)
            assert torch.equal(batch["y"], torch.where(index % 3 == 0, index % 2, -1))
            seen += index.tolist()
            count += index.shape[0]
        per_rank.append(count)
    assert sorted(seen) == list(range(n))
    assert sorted(per_rank) == [500, 501]


def test_eval_batches_single_process_in_order():
    """One process: sequential batches of batch_size, the last one shorter."""
    x = torch.arange(10, dtype=torch.float32).unsqueeze(1)
    batches = list(EvalBatches(x, torch.ones(10, dtype=torch.bool), torch.zeros(10), 4))
    assert [b["x"].flatten().tolist() for b in batches] == [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9],
    ]


# --- mixing draws: the run's own stream ---------------------------------------------------------


def mixing_loader(seed: int = 0, epoch: int = 0, **kwargs) -> TrainBatches:
    parts = {"id", "ood", "id_mix", "ood_mix", "cross_mix"}
    return make_train(epoch=epoch, seed=seed, mixup=Mixup(0.5), parts=parts, **kwargs)


def all_draws(loader: TrainBatches) -> list[torch.Tensor]:
    return [
        torch.cat([d.lam.flatten(), d.partner.float()])
        for batch in loader.step_batches()
        for d in batch["draws"].values()
    ]


def test_mixing_draws_follow_seed_and_epoch_not_torchs_global_generator():
    """The same (seed, epoch) gives the same draws whatever torch's global generator holds;
    another seed or epoch gives others."""
    torch.manual_seed(0)
    base = all_draws(mixing_loader(seed=3, epoch=2))
    torch.manual_seed(123)
    torch.rand(1000)  # anything else drawing random numbers in the process
    again = all_draws(mixing_loader(seed=3, epoch=2))
    assert all(torch.equal(a, b) for a, b in zip(base, again, strict=True))
    for other in (mixing_loader(seed=4, epoch=2), mixing_loader(seed=3, epoch=3)):
        assert not all(torch.equal(a, b) for a, b in zip(base, all_draws(other), strict=True))


def test_each_step_gets_draws_of_its_own_sizes():
    """8 steps of 128 ID points (the last 104) and 96 OOD points: id_mix permutes the ID batch,
    ood_mix the OOD batch, cross_mix pairs each ID point with one of the OOD batch."""
    batches = list(mixing_loader(ood_batch_size=96).step_batches())
    assert len(batches) == 8
    for batch in batches:
        b, m = batch["id"][0].shape[0], batch["ood"].shape[0]
        draws = batch["draws"]
        assert sorted(draws["id_mix"].partner.tolist()) == list(range(b))
        assert sorted(draws["ood_mix"].partner.tolist()) == list(range(m))
        assert draws["cross_mix"].partner.shape == (b,) and draws["cross_mix"].partner.max() < m
        assert draws["id_mix"].lam.shape == (b, 1) and draws["ood_mix"].lam.shape == (m, 1)
        assert all(bool(((d.lam >= 0) & (d.lam <= 1)).all()) for d in draws.values())
    assert batches[-1]["id"][0].shape[0] == 1000 - 7 * 128


def test_no_draws_without_mixed_parts():
    loader = make_train()
    assert all("draws" not in batch for batch in loader.step_batches())


# --- mixing draws: exactly those drawn step by step ------------------------------------------


def per_step_draws(seed, epoch, rank, alpha, parts, sizes) -> list[dict]:
    """The draws as a run defines them, computed the plain way: from the stream
    default_rng([seed, epoch, rank]), per step (ID batch b, OOD batch m) and per mixed part in the
    order id_mix, ood_mix, cross_mix, numpy's beta(alpha, alpha) then a permutation of the part's
    batch (cross_mix: uniform partners in the step's OOD batch); lam as float32 (n, 1)."""
    rng = np.random.default_rng([seed, epoch, rank])
    steps = []
    for b, m in sizes:
        step = {}
        for part in ("id_mix", "ood_mix", "cross_mix"):
            if part in parts:
                n = m if part == "ood_mix" else b
                lam = rng.beta(alpha, alpha, size=n)
                partner = rng.integers(m, size=n) if part == "cross_mix" else rng.permutation(n)
                step[part] = (torch.from_numpy(lam).float()[:, None], torch.from_numpy(partner))
        steps.append(step)
    return steps


def assert_draws(got: dict, expected: dict, k: int | None = None) -> None:
    """A step's draws (of run k of a stack, or of one run) equal the expected ones bit for bit."""
    assert got.keys() == expected.keys()
    for part, (lam, partner) in expected.items():
        mine = (got[part].lam, got[part].partner)
        for value, want in zip(mine if k is None else (t[k] for t in mine), (lam, partner)):
            assert value.dtype == want.dtype and value.shape == want.shape, part
            assert torch.equal(value, want), part


# (seed, epoch, rank, world_size, alpha, ood_batch_size, drop_last): Johnk's algorithm (alpha
# <= 1) and the gamma one (alpha > 1); OOD batches equal to, smaller and larger than the ID ones.
RUNS = [
    (0, 0, 0, 1, 1.0, None, False),
    (3, 7, 1, 2, 0.2, None, False),
    (5, 2, 0, 2, 2.0, 48, False),
    (1, 11, 0, 1, 0.5, 200, True),
]


@pytest.mark.parametrize("pairs", sorted(PAIRS))
def test_an_epochs_draws_are_those_drawn_step_by_step(pairs):
    """Each mixup pairing the objectives use (within, cross, both): every step's draws of a
    run's epoch, and of every run of a stack's epoch (EpochPlan.of_runs, all runs' draws built
    at once), are the plain per-step draws of that run's stream, bit for bit."""
    parts = PAIRS[pairs] | {"id", "ood"}
    for seed, epoch, rank, world_size, alpha, ood_batch_size, drop_last in RUNS:
        loader = make_train(
            epoch=epoch,
            seed=seed,
            rank=rank,
            world_size=world_size,
            ood_batch_size=ood_batch_size,
            drop_last=drop_last,
            mixup=Mixup(alpha),
            parts=parts,
        )
        batches = list(loader.step_batches())
        sizes = [(batch["id"][0].shape[0], batch["ood"].shape[0]) for batch in batches]
        expected = per_step_draws(seed, epoch, rank, alpha, parts, sizes)
        assert len(batches) == len(expected) == loader.steps
        for batch, want in zip(batches, expected, strict=True):
            assert_draws(batch["draws"], want)

    # A stack of runs of one config (the same step sizes): the first run and three others.
    seed, epoch, rank, world_size, _, ood_batch_size, drop_last = RUNS[2]
    stack = [
        make_train(
            epoch=epoch,
            seed=seed + k,
            rank=rank,
            world_size=world_size,
            ood_batch_size=ood_batch_size,
            drop_last=drop_last,
            mixup=Mixup(alpha),
            parts=parts,
        )
        for k, alpha in enumerate((2.0, 0.2, 1.0, 2.0))
    ]
    plan = EpochPlan.of_runs(stack, torch.device("cpu"))
    sizes = plan.sizes
    assert sizes[0] == (128, 48) and sizes[-1] == (500 - 3 * 128, 48)
    for k, loader in enumerate(stack):
        expected = per_step_draws(loader.seed, epoch, rank, loader.mixup.alpha, parts, sizes)
        own = loader.epoch_plan()
        assert torch.equal(plan.order[k], own.order)
        assert torch.equal(plan.ood_order[k], own.ood_order)
        for step, want in enumerate(expected):
            assert_draws(plan.draws.step(step), want, k)
    # Not vacuous: the runs' draws differ.
    first = plan.draws.step(0)[sorted(PAIRS[pairs])[0]]
    assert not torch.equal(first.lam[0], first.lam[3])
