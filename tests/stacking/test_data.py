"""A stack's data is its members' own, bit for bit: each member k's slice of every stacked tensor
equals what member k's own datamodule, iterated as a solo run iterates it, hands out."""

from __future__ import annotations

import sys
from collections import Counter
from types import SimpleNamespace

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from oodmix.data import ShapesDataModule, TwoDisksDataModule
from oodmix.data.geometry import Disk
from oodmix.data.loaders import EvalBatches, TrainBatches
from oodmix.data.mixup import MixupDraws
from oodmix.losses import ConfidenceMixupLoss, MixtureOutlierExposureLoss
from oodmix.stacking.data import MemberStackDataModule

SEEDS = (0, 1, 5)
ALPHAS = (0.2, 1.0, 2.0)
EPOCHS = 2
#: The batch parts the objectives ask for: ID x ID and OOD x OOD mixes; and all three kinds.
PARTS = {
    "ce_kl_mixup": ConfidenceMixupLoss(pairs=None).requires,
    "mixoe_both": MixtureOutlierExposureLoss(pairs="both").requires,
}
DISKS = [
    {"center": [-2.0, -2.0], "radius": 2.0, "n_train": 100},
    {"center": [2.0, 2.0], "radius": 2.0, "n_train": 100},
]


class FakeTrainer:
    """What a datamodule reads from its trainer: epoch, progress in it, process, device."""

    def __init__(self, world_size: int = 1) -> None:
        self.current_epoch = 0
        self.global_rank, self.world_size = 0, world_size
        self.strategy = SimpleNamespace(root_device=torch.device("cpu"))
        progress = SimpleNamespace(current=SimpleNamespace(completed=0))
        self.fit_loop = SimpleNamespace(epoch_loop=SimpleNamespace(batch_progress=progress))


def member(seed: int = 0, alpha: float | None = 1.0, **settings) -> TwoDisksDataModule:
    """Small two_disks: 200 ID points in steps of 32 (7 steps, the last of 8), in chunks of 3;
    60 OOD training points (fewer than an epoch needs: permutations repeated)."""
    defaults = {
        "disks": DISKS,
        "n_ood_train": 60,
        "n_val": 150,
        "n_test": 150,
        "n_shift": 40,
        "batch_size": 32,
        "eval_batch_size": 64,
        "steps_per_chunk": 3,
    }
    mixup = None if alpha is None else {"alpha": alpha}
    return TwoDisksDataModule(**{**defaults, **settings}, seed=seed, mixup=mixup)


def attached(datamodule, parts, world_size: int = 1):
    trainer = FakeTrainer(world_size)
    datamodule.trainer = trainer
    datamodule.request_parts(parts)
    datamodule.setup("fit")
    return datamodule, trainer


def epochs_of(datamodule, trainer, epochs: int = EPOCHS) -> list[list[list[dict]]]:
    """Every chunk of every epoch, after on_after_batch_transfer (mixed parts added)."""
    loader = datamodule.train_dataloader()
    out = []
    for epoch in range(epochs):
        trainer.current_epoch = epoch
        out.append([datamodule.on_after_batch_transfer(chunk, 0) for chunk in loader])
    return out


def stack_of(seeds=SEEDS, alphas=ALPHAS, parts=PARTS["mixoe_both"], **settings):
    members = [member(s, a, **settings) for s, a in zip(seeds, alphas, strict=True)]
    return attached(MemberStackDataModule(members), parts)


def solo_epochs(seeds=SEEDS, alphas=ALPHAS, parts=PARTS["mixoe_both"], **settings):
    """Each member's own solo run, computed independently of any stack."""
    return [
        epochs_of(*attached(member(s, a, **settings), parts))
        for s, a in zip(seeds, alphas, strict=True)
    ]


def tensors(value) -> list[torch.Tensor]:
    return list(value) if isinstance(value, tuple) else [value]


def assert_member_batch(stacked: dict, k: int, solo: dict) -> None:
    assert stacked.keys() == solo.keys()
    for part, value in solo.items():
        for mine, theirs in zip(tensors(stacked[part]), tensors(value), strict=True):
            assert mine.shape[0] == len(SEEDS) or mine.shape[0] == 1
            assert torch.equal(mine[k], theirs), (part, k)


def assert_members_solo(stacked_epochs, solo: list) -> None:
    for k, own in enumerate(solo):
        assert len(stacked_epochs) == len(own)
        for stacked_chunks, own_chunks in zip(stacked_epochs, own, strict=True):
            assert [len(c) for c in stacked_chunks] == [len(c) for c in own_chunks]
            for stacked_chunk, own_chunk in zip(stacked_chunks, own_chunks, strict=True):
                for stacked_step, own_step in zip(stacked_chunk, own_chunk, strict=True):
                    assert_member_batch(stacked_step, k, own_step)


# --- training batches ------------------------------------------------------------------------


@pytest.mark.parametrize("loss", sorted(PARTS))
@pytest.mark.parametrize("ood_batch_size", [None, 48])
def test_every_step_batch_is_each_members_solo_batch(loss, ood_batch_size):
    """Seeds 0, 1, 5 and alphas 0.2, 1, 2, two epochs: every part of every step, mixed parts
    included, is member k's own at [k]; the last, smaller step of each epoch too."""
    parts = PARTS[loss]
    stacked = epochs_of(*stack_of(parts=parts, ood_batch_size=ood_batch_size))
    assert_members_solo(stacked, solo_epochs(parts=parts, ood_batch_size=ood_batch_size))

    steps = [step for chunk in stacked[0] for step in chunk]
    assert [len(chunk) for chunk in stacked[0]] == [3, 3, 1]
    assert set(steps[0]) == {"id", "ood"} | (parts - {"id"})  # the mixed parts are there
    x, y = steps[-1]["id"]
    assert x.shape == (3, 8, 2) and y.shape == (3, 8)  # 200 = 6 * 32 + 8
    assert steps[-1]["ood"].shape == (3, ood_batch_size or 8, 2)
    assert steps[0]["ood"].shape == (3, ood_batch_size or 32, 2)
    # Not vacuous: the members' data, orders and draws differ, and epochs differ.
    assert not torch.equal(steps[0]["id"][0][0], steps[0]["id"][0][1])
    assert not torch.equal(steps[0]["id_mix"][1][1], steps[0]["id_mix"][1][2])
    assert not torch.equal(steps[0]["id"][0], stacked[1][0][0]["id"][0])


def test_a_stack_of_one_is_the_solo_run():
    stacked = epochs_of(*stack_of(seeds=(5,), alphas=(2.0,)))
    assert_members_solo(stacked, solo_epochs(seeds=(5,), alphas=(2.0,)))
    assert stacked[0][0][0]["id"][0].shape == (1, 32, 2)


def test_no_mixing_without_mixed_parts():
    """ce_kl's parts: ID and OOD only, no draws; still each member's own batches."""
    parts = frozenset({"id", "ood"})
    stacked = epochs_of(*stack_of(parts=parts))
    assert_members_solo(stacked, solo_epochs(parts=parts))
    assert set(stacked[0][0][0]) == {"id", "ood"}


def test_a_mid_epoch_resume_continues_with_the_same_batches():
    """A fresh loader told that one chunk of epoch 1 was trained hands out the epoch's rest."""
    stack, trainer = stack_of()
    trainer.current_epoch = 1
    whole = list(stack.train_dataloader())
    trainer.fit_loop.epoch_loop.batch_progress.current.completed = 1
    state = stack.train_dataloader().state_dict()
    assert state == {"epoch": 1, "chunks_done": 1}

    resumed = stack.train_dataloader()
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert [len(c) for c in rest] == [len(c) for c in whole[1:]] == [3, 1]
    for chunk, expected in zip(rest, whole[1:], strict=True):
        for step, expected_step in zip(chunk, expected, strict=True):
            for part in ("id", "ood"):
                for a, b in zip(tensors(step[part]), tensors(expected_step[part]), strict=True):
                    assert torch.equal(a, b)
            for part, draw in expected_step["draws"].items():
                assert torch.equal(step["draws"][part].lam, draw.lam)
                assert torch.equal(step["draws"][part].partner, draw.partner)
    # The resume point is used once: the next iteration is the whole epoch again.
    assert len(list(resumed)) == len(whole)


# --- splits and evaluation batches -----------------------------------------------------------


def test_splits_are_the_members_own_stacked():
    stack, _ = stack_of()
    assert stack.splits.id_x.shape == (3, 200, 2) and stack.splits.id_y.shape == (3, 200)
    assert stack.splits.ood_x.shape == (3, 60, 2) and stack.splits.val.x.shape == (3, 150, 2)
    for k, (seed, alpha) in enumerate(zip(SEEDS, ALPHAS, strict=True)):
        own = member(seed, alpha).generate()
        for splits in (stack.member_splits(k), stack.datamodules[k].splits):
            assert torch.equal(splits.id_x, own.id_x) and torch.equal(splits.id_y, own.id_y)
            assert torch.equal(splits.ood_x, own.ood_x)
            sets = [(splits.val, own.val), (splits.test, own.test)]
            sets += [(splits.extra_tests[n], s) for n, s in own.extra_tests.items()]
            assert list(splits.extra_tests) == list(own.extra_tests)
            for mine, theirs in sets:
                assert torch.equal(mine.x, theirs.x) and torch.equal(mine.y, theirs.y)
                assert torch.equal(mine.is_id, theirs.is_id)


def test_evaluation_batches_are_the_members_own():
    """Validation and test (150 points), test_near and test_far (80 points), cut along the
    points: 64 a batch, the last 22 or 16."""
    stack, _ = stack_of()
    solos = [attached(member(s, a), PARTS["mixoe_both"])[0] for s, a in zip(SEEDS, ALPHAS)]
    assert stack.test_set_names == solos[0].test_set_names == ["test", "test_near", "test_far"]
    loaders = [stack.val_dataloader(), *stack.test_dataloader()]
    own = [[solo.val_dataloader(), *solo.test_dataloader()] for solo in solos]
    assert len(loaders) == 4
    for i, (loader, n) in enumerate(zip(loaders, [3, 3, 2, 2], strict=True)):
        batches = list(loader)
        assert len(loader) == len(batches) == len(own[0][i]) == n
        for k, solo_loaders in enumerate(own):
            assert isinstance(solo_loaders[i], EvalBatches)
            for stacked, solo in zip(batches, solo_loaders[i], strict=True):
                assert stacked.keys() == solo.keys() == {"x", "is_id", "y"}
                assert all(torch.equal(stacked[key][k], solo[key]) for key in solo)
    assert list(loaders[0])[-1]["x"].shape == (3, 150 - 128, 2)
    assert list(loaders[2])[-1]["x"].shape == (3, 80 - 64, 2)


def test_what_the_rest_of_oodmix_reads():
    stack, _ = stack_of()
    assert stack.members == 3 and stack.num_features == 2 and stack.num_classes == 2
    assert stack.plot_box == (-10.0, 10.0) and stack.device == torch.device("cpu")
    assert stack.parts == PARTS["mixoe_both"]
    chunk = next(iter(stack.train_dataloader()))
    assert stack.transfer_batch_to_device(chunk, torch.device("cpu"), 0) is chunk
    batch = next(iter(stack.val_dataloader()))
    assert stack.on_after_batch_transfer(batch, 0) is batch  # evaluation batches: as they are
    points = torch.tensor([[-2.0, -2.0], [9.0, 0.0]])
    assert stack.in_distribution(points).tolist() == [True, False]


# --- refusals --------------------------------------------------------------------------------


def refusal(members) -> str:
    with pytest.raises(ValueError) as error:
        MemberStackDataModule(members)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_members_that_differ_in_more_than_seed_and_alpha_are_refused():
    base = member(0, 0.2)
    assert refusal([]) == "a stack needs at least one member datamodule"
    other_class = ShapesDataModule(
        classes=[{"region": Disk((-2.0, -2.0), 2.0), "n_train": 100}] * 2,
        n_ood_train=60,
        batch_size=32,
    )
    assert refusal([base, other_class]) == (
        "members of a stack must be of one class: member 1 is ShapesDataModule, member 0 "
        "TwoDisksDataModule"
    )
    only = "members of a stack may differ only in seed and mixup.alpha: member 1 has "
    assert refusal([base, member(1, 1.0, batch_size=64)]) == (
        only + "batch_size=64, member 0 batch_size=32"
    )
    assert refusal([base, member(1, None)]) == only + "mixup=null, member 0 mixup.alpha=0.2"
    three = [*DISKS, {"center": [6.0, 6.0], "radius": 1.0, "n_train": 100}]
    assert refusal([base, member(1, 1.0, disks=three)]).startswith(only + "num_classes=3,")
    for setting in ({"ood_batch_size": 16}, {"steps_per_chunk": 1}, {"n_val": 10}):
        (name, value), *_ = setting.items()
        message = refusal([base, member(1, 1.0), member(2, 1.0, **setting)])
        assert message.startswith(only.replace("member 1", "member 2") + f"{name}={value},")
    asked = member(1, 1.0)
    asked.request_parts(PARTS["ce_kl_mixup"])
    assert refusal([base, asked]).startswith(only + "parts=frozenset(")


def test_data_parallelism_is_refused():
    members = [member(s, a) for s, a in zip(SEEDS, ALPHAS)]
    with pytest.raises(ValueError, match="world_size=2 is not allowed"):
        attached(MemberStackDataModule(members), PARTS["mixoe_both"], world_size=2)


def test_request_parts_is_checked_by_every_member():
    stack = MemberStackDataModule([member(0, None), member(1, None)])
    with pytest.raises(ValueError, match="mixup=null is not allowed"):
        stack.request_parts(PARTS["ce_kl_mixup"])
    with pytest.raises(ValueError, match="unknown batch parts"):
        stack.request_parts({"id", "nope"})


# --- no Python per member on the step path ---------------------------------------------------


def test_members_plan_once_per_epoch_never_per_step(monkeypatch):
    """Two epochs of three members: each member draws its orders and opens its mixing stream
    once per epoch (six times), the draws of all members are built at once (twice), and no
    member's own plan or step loop runs."""
    calls = Counter()

    def counted(owner, name):
        original = getattr(owner, name)

        def count(*args, **kwargs):
            calls[name] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, count)

    def forbidden(self):
        raise AssertionError("a member's own plan or step loop ran")

    counted(TrainBatches, "epoch_orders")
    counted(TrainBatches, "mixup_stream")
    counted(MixupDraws, "of_runs")
    monkeypatch.setattr(TrainBatches, "epoch_plan", forbidden)
    monkeypatch.setattr(TrainBatches, "step_batches", forbidden)
    stacked = epochs_of(*stack_of())
    assert sum(len(chunk) for chunks in stacked for chunk in chunks) == 2 * 7
    assert calls == {"epoch_orders": 2 * 3, "mixup_stream": 2 * 3, "of_runs": 2}


class OpCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def step_path_work(k: int) -> list[tuple[list[str], int]]:
    """(torch ops, Python calls) of each step after an epoch's plan and of each chunk's mixing,
    for a stack of k members."""
    stack, _ = stack_of(seeds=range(k), alphas=[1.0] * k)
    steps = stack.train_dataloader().step_batches()
    first = next(steps)  # draws the epoch's plan: K calls
    work, batches = [], [first]
    calls = Counter()

    def profile(frame, event, arg):
        calls[event] += 1

    def watched(run):
        counter = OpCounter()
        calls.clear()
        sys.setprofile(profile)
        try:
            with counter:
                result = run()
        finally:
            sys.setprofile(None)
        work.append((counter.ops, calls["call"] + calls["c_call"]))
        return result

    while (batch := watched(lambda: next(steps, None))) is not None:
        batches.append(batch)
    for chunk in (batches[:3], batches[3:6], batches[6:]):
        watched(lambda chunk=chunk: stack.on_after_batch_transfer(chunk, 0))
    return work


def test_the_step_path_does_the_same_work_for_any_number_of_members():
    """Cutting a step and mixing it run the same torch ops and Python calls for 1 or 6
    members: one gather per tensor for all of them."""
    step_path_work(1)  # first calls of some torch paths do one-time work
    one, six = step_path_work(1), step_path_work(6)
    assert len(one) == len(six) == 6 + 1 + 3  # 6 steps after the first, the end, 3 chunks
    assert one == six
    assert "index" in one[0][0] and "lerp" in one[-1][0]


# --- mixing with a member dimension ----------------------------------------------------------


def test_mixing_with_leading_dimensions_mixes_each_member_with_its_own_draws():
    """x (K, B, D), y (K, B), lam (K, B, 1), partner (K, B): [k] is the single batch's mix."""
    from oodmix.data.mixup import Draw, Mixup, one_hot

    g = torch.Generator().manual_seed(0)
    k, b, m, classes = 4, 7, 5, 3
    x, x_ood = torch.randn(k, b, 2, generator=g), torch.randn(k, m, 2, generator=g)
    y = torch.randint(0, classes, (k, b), generator=g)
    lam = torch.rand(k, b, 1, generator=g)
    within = Draw(lam, torch.stack([torch.randperm(b, generator=g) for _ in range(k)]))
    cross = Draw(lam, torch.randint(0, m, (k, b), generator=g))
    mixup = Mixup(1.0)
    x_mix, soft = mixup(x, y, classes, draw=within)
    ood_mix, none = mixup(x, draw=within)
    x_cross, target = mixup.cross(x, y, x_ood, classes, draw=cross)
    assert none is None and one_hot(y, classes, torch.float32).shape == (k, b, classes)
    for i in range(k):
        own = Draw(within.lam[i], within.partner[i])
        solo = mixup(x[i], y[i], classes, draw=own)
        assert torch.equal(x_mix[i], solo[0]) and torch.equal(soft[i], solo[1])
        assert torch.equal(ood_mix[i], mixup(x[i], draw=own)[0])
        solo = mixup.cross(x[i], y[i], x_ood[i], classes, draw=Draw(lam[i], cross.partner[i]))
        assert torch.equal(x_cross[i], solo[0]) and torch.equal(target[i], solo[1])
    # Without draws (interactive use): one draw, shared by the leading dimensions.
    torch.manual_seed(0)
    shared, _ = mixup(x)
    assert shared.shape == x.shape


def test_a_lightning_trainer_drives_the_stack():
    """A real fit of two epochs: the chunks a module receives (mixed, on the module's side of
    on_after_batch_transfer) are each member's solo chunks of those epochs; validation batches
    carry every member."""
    import lightning as L

    received: list[list[dict]] = []
    evaluated: list[tuple[int, ...]] = []

    class Record(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.automatic_optimization = False
            self.weight = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, chunk, index):
            received.append(chunk)

        def validation_step(self, batch, index):
            evaluated.append(tuple(batch["x"].shape))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    stack = MemberStackDataModule([member(s, a) for s, a in zip(SEEDS, ALPHAS, strict=True)])
    stack.request_parts(PARTS["mixoe_both"])
    trainer = L.Trainer(
        max_epochs=EPOCHS,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(Record(), datamodule=stack)
    assert len(received) == EPOCHS * 3
    assert_members_solo([received[:3], received[3:]], solo_epochs())
    assert evaluated == [(3, 64, 2), (3, 64, 2), (3, 22, 2)] * EPOCHS
