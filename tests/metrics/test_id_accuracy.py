"""IDAccuracy: torchmetrics' micro accuracy with OOD points (-1) ignored, for one run, and each
member's own for a stack of runs."""

from __future__ import annotations

import torch
from torchmetrics.classification import MulticlassAccuracy

from oodmix.metrics import IDAccuracy


def batches(seed: int, members: tuple[int, ...] = ()) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    out = []
    for n in (7, 13, 1):
        logits = torch.randn(*members, n, 3, generator=generator)
        labels = torch.randint(-1, 3, (*members, n), generator=generator)
        out.append((logits, labels))
    return out


def test_one_run_is_torchmetrics_micro_accuracy_without_the_ood_points() -> None:
    ours, reference = IDAccuracy(), MulticlassAccuracy(3, average="micro", ignore_index=-1)
    for logits, labels in batches(0):
        ours.update(logits, labels)
        reference.update(logits, labels)
    assert ours.compute().dtype == torch.float32
    assert ours.compute().item() == reference.compute().item()


def test_each_member_counts_its_own_points_over_every_batch() -> None:
    stacked = IDAccuracy()
    data = batches(1, members=(4,))
    for logits, labels in data:
        stacked.update(logits, labels)
    values = stacked.compute()
    assert values.shape == (4,)
    for k in range(4):
        right = sum(int(((lg[k].argmax(-1) == lb[k]) & (lb[k] >= 0)).sum()) for lg, lb in data)
        total = sum(int((lb[k] >= 0).sum()) for _, lb in data)
        assert values[k].item() == torch.tensor(right / total, dtype=torch.float32).item()


def test_no_id_point_gives_zero() -> None:
    metric = IDAccuracy()
    metric.update(torch.randn(2, 5, 3), torch.full((2, 5), -1))
    assert metric.compute().tolist() == [0.0, 0.0]
