"""Many runs of one shape as one model: parameters, objectives and updates with a leading member
dimension K (one forward and backward pass per step for all members)."""

from oodmix.stacking.networks import StackedNetwork
from oodmix.stacking.objectives import StackedObjective, member_numbers
from oodmix.stacking.updates import MemberLearningRates, clip_member_gradients

__all__ = [
    "MemberLearningRates",
    "StackedNetwork",
    "StackedObjective",
    "clip_member_gradients",
    "member_numbers",
]
