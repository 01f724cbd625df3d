"""Energy-bounded learning (Liu, Wang, Owens and Li, NeurIPS 2020)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from oodmix.allowed import finite_number, require
from oodmix.losses.base import OODLoss, check_weight
from oodmix.losses.functional import free_energy


class EnergyBoundedLoss(OODLoss):
    """L = CE(id) + w * ( E_in[relu(E(x) - m_in)^2] + E_out[relu(m_out - E(x))^2] ),
    E(x) = -logsumexp_k f_k(x).

    "Energy-based Out-of-distribution Detection": squared hinges push the free energy of ID
    inputs below m_in and that of OOD inputs above m_out. The paper's CIFAR margins (-25, -7)
    suit 10 classes and large logits; the defaults here (conf/loss/energy.yaml: m_in = -6,
    m_out = -2, w = 0.1) suit two classes and a small MLP. Pair with detector=energy.
    Terms: `ce`, `energy_id`, `energy_ood` (the two hinge means).
    """

    requires: ClassVar[frozenset[str]] = frozenset({"id", "ood"})

    def __init__(self, weight: float = 0.1, margin_in: float = -6.0, margin_out: float = -2.0):
        super().__init__()
        self.weight = check_weight("loss.weight", weight)
        margin_out = finite_number("loss.margin_out", margin_out)
        # The hinges push ID energies below margin_in and OOD ones above margin_out.
        require(
            "loss.margin_in",
            finite_number("loss.margin_in", margin_in),
            margin_in < margin_out,
            f"below loss.margin_out={margin_out}",
        )
        self.margin_in, self.margin_out = float(margin_in), float(margin_out)

    def forward(
        self, logits: Mapping[str, torch.Tensor], batch: Mapping[str, Any]
    ) -> dict[str, torch.Tensor]:
        ce = F.cross_entropy(logits["id"], batch["id"][1])
        energy_id = F.relu(free_energy(logits["id"]) - self.margin_in).pow(2).mean()
        energy_ood = F.relu(self.margin_out - free_energy(logits["ood"])).pow(2).mean()
        loss = ce + self.weight * (energy_id + energy_ood)
        return {"loss": loss, "ce": ce, "energy_id": energy_id, "energy_ood": energy_ood}
