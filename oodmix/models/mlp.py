"""A small multi-layer perceptron, the paper's "thin MLP"."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from torch import nn

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
        hidden = list(hidden)
        if not hidden or any(int(w) != w or w < 1 for w in hidden):
            raise ValueError(
                f"model.hidden={hidden} is not allowed: give a non-empty list of widths >= 1"
            )
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"model.activation={activation!r} is not allowed: "
                f"choose one of {', '.join(sorted(ACTIVATIONS))}"
            )
        layers: list[nn.Module] = []
        widths = [in_features, *hidden]
        for width_in, width_out in pairwise(widths):
            layers += [nn.Linear(width_in, width_out), ACTIVATIONS[activation]()]
        layers.append(nn.Linear(widths[-1], num_classes))
        super().__init__(*layers)
