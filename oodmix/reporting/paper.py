"""The paper's Table 1 beside ours, and the hyperparameters we chose where it says nothing."""

from __future__ import annotations

import math
from pathlib import Path

from omegaconf import OmegaConf

from oodmix.reporting.aggregate import Group
from oodmix.reporting.tables import mean_std

#: Kim and Chung, Table 1: F1 at delta = 0.8 (one run each).
PAPER_F1 = {"ce": 0.134, "ce_kl": 0.480, "ce_kl_mixup": 0.531}
#: The relative gains the paper quotes: (objective, baseline, gain as printed).
PAPER_GAINS = (
    ("ce_kl", "ce", "+258%"),
    ("ce_kl_mixup", "ce", "+296%"),
    ("ce_kl_mixup", "ce_kl", "+10.6%"),
)
OBJECTIVE_NAMES = {
    "ce": "cross-entropy only",
    "ce_kl": "+ confidence loss (KL to uniform)",
    "ce_kl_mixup": "+ confidence loss + mixup",
}


def relative_gain(new: float, old: float) -> str:
    """(new / old - 1) as a signed percentage."""
    if math.isnan(new) or math.isnan(old) or old == 0:
        return "–"
    return f"{100 * (new / old - 1):+.1f}%"


def comparison(groups: list[Group], metric: str = "test/f1") -> str:
    """Markdown: our F1 per objective beside the paper's, then the gains the paper quotes."""
    by_loss = {g.settings.get("loss"): g for g in groups}
    lines = [
        "| objective | | F1 ours (mean ± std) | seeds | F1 paper |",
        "|---|---|---|---|---|",
    ]
    for loss, paper_f1 in PAPER_F1.items():
        group = by_loss.get(loss)
        ours = mean_std(group.mean(metric), group.std(metric)) if group else "not run"
        seeds = str(len(group.finished)) if group else "0"
        lines.append(f"| {OBJECTIVE_NAMES[loss]} | `{loss}` | {ours} | {seeds} | {paper_f1:.3f} |")
    lines += ["", "| gain in F1 | ours (from the means) | paper (quoted) |", "|---|---|---|"]
    for new, old, quoted in PAPER_GAINS:
        ours = "–"
        if new in by_loss and old in by_loss:
            ours = relative_gain(by_loss[new].mean(metric), by_loss[old].mean(metric))
        lines.append(f"| `{new}` over `{old}` | {ours} | {quoted} |")
    return "\n".join(lines)


def our_choices(job_config: Path) -> str:
    """Markdown list of the settings the paper leaves unstated, read from a job's config."""
    cfg = OmegaConf.load(job_config)
    optimizer = str(cfg.model.optimizer._target_).rsplit(".", 1)[-1]
    ood_batch = cfg.data.ood_batch_size or "same as the ID batch"
    return "\n".join(
        [
            f"- network: MLP {cfg.model.hidden} hidden widths, {cfg.model.activation}",
            f"- optimiser: {optimizer}, lr {cfg.model.lr}, weight decay {cfg.model.weight_decay}",
            f"- training: {cfg.trainer.max_epochs} epochs, ID batch {cfg.data.batch_size}, "
            f"OOD batch {ood_batch}",
            f"- beta = {cfg.beta}; mixup alpha = {cfg.mixup.alpha} (one lam per sample, "
            "ID mixed with ID, OOD with OOD, mixed samples added to the clean ones)",
            f"- detector: max softmax probability, predicted ID when >= delta = {cfg.delta}",
            f"- weights tested: the {cfg.test_ckpt} checkpoint (best = highest val/f1)",
        ]
    )
