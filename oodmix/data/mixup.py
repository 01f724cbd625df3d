"""Mixup (Zhang et al., ICLR 2018) within one group of samples.

    x~ = lam * x_i + (1 - lam) * x_j,   y~ = lam * y_i + (1 - lam) * y_j,   lam ~ Beta(alpha, alpha)

The partner j of each sample i is a random permutation of the same batch, so ID samples are
mixed only with ID samples and OOD samples only with OOD samples (the paper's "within" pairing).
One lam is drawn per sample. Everything runs on the batch's device.
"""

from __future__ import annotations

import torch


def one_hot(y: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """(N, K) one-hot rows of integer labels y, built on y's device.

    F.one_hot checks the label range with .item() calls, which wait for the GPU on every
    training step; the labels come from the datamodule, which has already checked them.
    """
    rows = torch.zeros(y.shape[0], num_classes, dtype=dtype, device=y.device)
    return rows.scatter_(1, y[:, None], 1.0)


class Mixup:
    """Draws mixing weights lam ~ Beta(alpha, alpha) and mixes a batch with a shuffle of itself."""

    def __init__(self, alpha: float) -> None:
        if not alpha > 0:
            raise ValueError(f"mixup.alpha={alpha} is not allowed: alpha must be > 0")
        self.alpha = float(alpha)
        # Building a torch.distributions object costs more Python than a whole training step of
        # a tiny network, and the batch size rarely changes: keep one per (size, device).
        self._beta: dict[tuple[int, torch.device], torch.distributions.Beta] = {}

    def sample_lam(self, n: int, device: torch.device) -> torch.Tensor:
        """n mixing weights from Beta(alpha, alpha), shape (n, 1), on `device`."""
        key = (n, device)
        if key not in self._beta:
            concentration = torch.full((n, 1), self.alpha, device=device)
            self._beta[key] = torch.distributions.Beta(
                concentration, concentration, validate_args=False
            )
        return self._beta[key].sample()

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor | None = None, num_classes: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Mix a batch with a random permutation of itself.

        Args:
            x: inputs (N, ...).
            y: integer class labels (N,), or None for unlabelled (OOD) samples.
            num_classes: K, needed to one-hot encode y.

        Returns:
            (mixed inputs, soft labels (N, K) that sum to 1, or None when y is None).
        """
        n = x.shape[0]
        lam = self.sample_lam(n, x.device)
        partner = torch.randperm(n, device=x.device)
        x_mix = torch.lerp(x[partner], x, lam.to(x.dtype))  # lam * x + (1 - lam) * x[partner]
        if y is None:
            return x_mix, None
        if num_classes is None:
            raise ValueError("num_classes is needed to mix labelled samples")
        labels = one_hot(y, num_classes, x_mix.dtype)
        return x_mix, torch.lerp(labels[partner], labels, lam.to(x_mix.dtype))

    def cross(
        self, x_id: torch.Tensor, y: torch.Tensor, x_ood: torch.Tensor, num_classes: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix each ID sample with a random OOD sample of the batch (Mixture Outlier Exposure).

        x~ = lam * x_id + (1 - lam) * x_ood,  target = lam * onehot(y) + (1 - lam) * U.
        """
        n = x_id.shape[0]
        lam = self.sample_lam(n, x_id.device).to(x_id.dtype)
        partner = torch.randint(x_ood.shape[0], (n,), device=x_id.device)
        x_mix = torch.lerp(x_ood[partner], x_id, lam)
        labels = one_hot(y, num_classes, x_mix.dtype)
        uniform = torch.full_like(labels, 1.0 / num_classes)
        return x_mix, torch.lerp(uniform, labels, lam)
