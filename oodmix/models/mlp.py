"""A small multi-layer perceptron, the paper's "thin MLP"."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from torch import nn

from oodmix.allowed import is_int, is_sequence, one_of, require

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}


class MLP(nn.Sequential):
    """in_features -> hidden[0] -> ... -> hidden[-1] -> num_classes, activations in between."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden: Sequence[int] = (64, 64),
        activation: str = "relu",
    ) -> None:
        widths_ok = is_sequence(hidden) and all(is_int(w) and w >= 1 for w in hidden)
        allowed = "a non-empty list of integer widths >= 1, e.g. [32,32]"
        hidden = list(require("model.hidden", hidden, widths_ok and len(hidden) > 0, allowed))
        one_of("model.activation", activation, sorted(ACTIVATIONS))
        layers: list[nn.Module] = []
        widths = [in_features, *hidden]
        for width_in, width_out in pairwise(widths):
            layers += [nn.Linear(width_in, width_out), ACTIVATIONS[activation]()]
        layers.append(nn.Linear(widths[-1], num_classes))
        super().__init__(*layers)
