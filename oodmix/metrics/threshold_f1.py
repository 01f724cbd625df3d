"""The rule "predicted ID when score >= delta", its counts, and F1 from counts.

Every F1 oodmix reports at a threshold goes through this file: the streaming metric of an
evaluation pass (oodmix.metrics.threshold_detection), the tuned threshold
(oodmix.metrics.ranking), and the F1-against-delta curves of a sweep (oodmix.plots.sweeps).
One counting rule (`counts_at_thresholds`) and one F1 formula (`f1_from_counts`) serve them all.
Only torch is imported here: the sweep report uses it without torchmetrics or Lightning.
"""

from __future__ import annotations

from typing import Literal

import torch

Positive = Literal["id", "ood"]


#: Up to this many thresholds, each is compared with every score (O(n m), and fast for one
#: threshold); beyond, the scores are sorted once and each threshold bisects them.
DIRECT_COMPARISONS = 8


def counts_at_thresholds(
    scores: torch.Tensor, is_id: torch.Tensor, deltas: torch.Tensor | float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(tp, fp, fn, tn), ID positive, of the rule "predicted ID when score >= delta", for every
    delta at once; each count has the shape of `deltas`:

        tp = #{ID points with score >= delta}     fp = #{OOD points with score >= delta}
        fn = #{ID points} - tp                    tn = #{OOD points} - fp

    The comparison is made in the scores' precision: delta is rounded to the scores' dtype,
    as `scores >= delta` with a Python float does in torch (and as oodmix's inference API
    decides), so a float32 score printed as 0.7 is ID at delta = 0.7. A NaN score is never
    >= delta (predicted OOD); evaluation refuses such scores before counting anyway
    (oodmix.metrics.non_finite).

    For a few thresholds every score is compared with each; for many (a sweep over every
    distinct score) the scores are sorted once and bisected, O((n + m) log n). Neither uses
    boolean indexing, so nothing waits for the device.
    """
    scores, is_id = scores.reshape(-1), is_id.reshape(-1).bool()
    if not scores.is_floating_point():
        scores = scores.double()
    if scores.shape != is_id.shape:
        raise ValueError(
            f"scores {tuple(scores.shape)} and is_id {tuple(is_id.shape)} differ in size"
        )
    deltas = torch.as_tensor(deltas, dtype=scores.dtype, device=scores.device)
    n_id = is_id.sum()
    n_ood = is_id.numel() - n_id
    if deltas.numel() <= DIRECT_COMPARISONS:
        accepted = scores >= deltas.reshape(-1, 1)  # (m, n): predicted ID
        tp = (accepted & is_id).sum(dim=1)
        fp = accepted.sum(dim=1) - tp
    else:
        order = scores.argsort()  # ascending; NaN sorts last, as if above every threshold
        # id_below[j]: how many of the j lowest scores are ID (j = 0 .. n).
        id_below = torch.cat([n_id.new_zeros(1), is_id[order].long().cumsum(0)])
        below = torch.searchsorted(scores[order], deltas.reshape(-1), side="left")
        id_at_or_above = n_id - id_below[below]
        nan = scores.isnan()  # counted above by the sort, but NaN >= delta is false
        tp = id_at_or_above - (nan & is_id).sum()
        fp = (scores.numel() - below) - id_at_or_above - (nan & ~is_id).sum()
    tp, fp = tp.reshape(deltas.shape), fp.reshape(deltas.shape)
    return tp, fp, n_id - tp, n_ood - fp


def threshold_counts(
    scores: torch.Tensor,
    is_id: torch.Tensor,
    delta: float | torch.Tensor,
    positive: Positive = "id",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(tp, fp, fn, tn) of "predicted ID when score >= delta" at one delta, for the chosen
    positive class. With OOD positive the roles swap: tp_ood = tn, fp_ood = fn, fn_ood = fp.

    One run: scores and is_id (n,), one delta, scalar counts. A stack of K runs (members):
    scores and is_id (K, n), delta one number or one per member (K,), counts (K,): member k's
    counts are exactly those of threshold_counts(scores[k], is_id[k], delta[k]), taken for all
    members in one batched call (torch.vmap, no loop over members).
    """
    if scores.dim() > 1:  # members
        dtype = scores.dtype if scores.is_floating_point() else torch.float64
        # Each member's delta rounded to the scores' dtype, as counts_at_thresholds rounds one.
        deltas = torch.as_tensor(delta, dtype=torch.float64).to(dtype).to(scores.device)
        deltas = deltas.expand(scores.shape[:-1])
        tp, fp, fn, tn = torch.vmap(counts_at_thresholds)(scores, is_id.bool(), deltas)
    else:
        tp, fp, fn, tn = counts_at_thresholds(scores, is_id, delta)
    if positive == "ood":
        return tn, fn, fp, tp
    return tp, fp, fn, tn


def ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """numerator / denominator in float64, and 0 where the denominator is 0 (torchmetrics'
    zero_division=0 convention)."""
    numerator, denominator = numerator.double(), denominator.double()
    return torch.where(
        denominator > 0, numerator / denominator.clamp(min=1), torch.zeros_like(numerator)
    )


def f1_from_counts(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor) -> torch.Tensor:
    """F1 = 2 tp / (2 tp + fp + fn), float64; 0 when nothing is predicted positive and nothing
    is positive (2 tp + fp + fn = 0). The one F1 formula of oodmix."""
    return ratio(2 * tp, 2 * tp + fp + fn)


def precision_recall_f1(
    tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor
) -> dict[str, torch.Tensor]:
    """precision = tp / (tp + fp), recall = tp / (tp + fn), F1 = 2 tp / (2 tp + fp + fn), each 0
    when its denominator is 0; computed in float64, returned as float32 (what is logged)."""
    return {
        "precision": ratio(tp, tp + fp).float(),
        "recall": ratio(tp, tp + fn).float(),
        "f1": f1_from_counts(tp, fp, fn).float(),
    }


def f1_at_thresholds(
    scores: torch.Tensor, is_id: torch.Tensor, deltas: torch.Tensor | float
) -> torch.Tensor:
    """F1 (ID positive) of "predicted ID when score >= delta" for every delta, in float64 (so
    that equal F1 values compare equal): counts_at_thresholds, then f1_from_counts."""
    tp, fp, fn, _ = counts_at_thresholds(scores, is_id, deltas)
    return f1_from_counts(tp, fp, fn)
