"""Many runs of one shape as one model: parameters and objectives with a leading member
dimension K (one forward and backward pass per step for all members). The members' optimiser
updates are the module's own (oodmix.models.member_updates)."""

from oodmix.stacking.networks import StackedNetwork
from oodmix.stacking.objectives import StackedObjective, member_numbers

__all__ = [
    "StackedNetwork",
    "StackedObjective",
    "member_numbers",
]
