"""The parts of a training batch: the contract between the datamodule, which produces them, and
an objective, which names those it needs (`OODLoss.requires`).

    id        -> (x, y)            ID points and their classes
    ood       -> x                 OOD training points
    id_mix    -> (x, soft y)       ID mixed with ID (mixup)
    ood_mix   -> x                 OOD mixed with OOD
    cross_mix -> (x, soft target)  ID mixed with OOD, towards lam * onehot(y) + (1 - lam) * U

Plain names, no torch: the command-line checks read them before torch is imported.
"""

from __future__ import annotations

from enum import Enum

#: Every part, in the order the module concatenates them for its one forward pass.
TRAIN_PARTS = ("id", "ood", "id_mix", "ood_mix", "cross_mix")

#: The mixed parts, in the order their mixing draws are taken from a run's stream.
MIXED_PARTS = ("id_mix", "ood_mix", "cross_mix")

#: The parts that hold OOD training points (clean or mixed).
OOD_PARTS = frozenset({"ood", "ood_mix", "cross_mix"})


class MixupPairs(str, Enum):
    """The choices of `mixup.pairs`: within (ID x ID and OOD x OOD, the paper's), cross
    (ID x OOD), both. The config's schema types mixup.pairs with it (null: the objective's
    own choice)."""

    within = "within"
    cross = "cross"
    both = "both"

    def __str__(self) -> str:  # as typed on the command line
        return self.value


#: The mixed parts of each choice of `mixup.pairs`.
PAIRS_PARTS = {
    MixupPairs.within: frozenset({"id_mix", "ood_mix"}),
    MixupPairs.cross: frozenset({"cross_mix"}),
    MixupPairs.both: frozenset(MIXED_PARTS),
}
