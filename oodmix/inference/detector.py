"""A trained network and its detection score, with the run's decision rule, for new points.

    logits     = net(x)                      (the weights of one checkpoint)
    score      = detector(logits)            (the run's score: max softmax probability, ...)
    is_ood     = not (score >= threshold)    (= score < threshold for every real score)
    predicted  = argmax_k logits_k           (the ID class the classifier predicts)

Precision. Points are taken as float32, what the network was trained on; the network then
runs in float64 (its float32 weights, exactly) and the score is rounded to float32, the
precision in which the run recorded and compared its scores. In float32 arithmetic a score
would depend in its last bit on how many points share a forward pass (matrix-product kernels
sum in different orders); computed in float64 and rounded, it does not: the same points give
the same scores with any batch size. The scores agree with a float32 forward pass within
float32 rounding (about 1e-7).

Decision. The float32 score is compared with the threshold as a Python float, exactly as the
run's own metrics decide (oodmix.metrics.threshold_counts): ID when score >= threshold, so a
score equal to the threshold is ID.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch
from torch import nn

from oodmix.inference.arguments import (
    DEFAULT_BATCH_SIZE,
    check_batch_size,
    check_threshold,
    resolve_device,
)
from oodmix.inference.checkpoint import build_network, build_score, read_checkpoint, run_threshold
from oodmix.inference.errors import InferenceError

#: Points are read as the network's training inputs were; scores are kept as the run kept them.
INPUT_DTYPE = torch.float32
SCORE_DTYPE = torch.float32

Array = TypeVar("Array", np.ndarray, torch.Tensor)


class Detection(NamedTuple):
    """Per point: the detection score, the OOD decision and the predicted ID class."""

    score: Any  # (N,) float32
    is_ood: Any  # (N,) bool
    predicted_class: Any  # (N,) int64


class TrainedDetector:
    """The network of one oodmix checkpoint and its run's detection score and threshold.

    Build it with `TrainedDetector.from_checkpoint(path)` (or `oodmix.load_detector(path)`).
    Every method takes points `x` of shape (N, num_features), as a numpy array (or anything
    numpy can make one of) or a torch tensor, and returns the same kind: numpy arrays, or
    tensors on x's device. Points go through the network in batches of `batch_size` on
    `device`; inputs with NaN or inf, or a wrong number of features, are refused.

        scores(x)             detection score per point; higher means more in-distribution
        is_ood(x, delta=None) True where score < threshold (`delta` if given, else .threshold)
        predict(x)            the predicted ID class, argmax of the logits
        detect(x, delta=None) all three from one pass: Detection(score, is_ood, predicted_class)

    `.threshold` is the run's own: its `delta` for a score with a fixed scale (max softmax
    probability), else the threshold the run tuned on validation data (val/delta_best in
    <run>/metrics.json, when this checkpoint holds the weights the run tested), else None
    (`is_ood` then needs `delta=`); `.threshold_source` says which, or why there is none.
    """

    def __init__(
        self,
        net: nn.Module,
        score: nn.Module,
        *,
        num_features: int,
        num_classes: int,
        threshold: float | None,
        threshold_source: str,
        config: dict[str, Any] | None = None,
        checkpoint: Path | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        """Usually built by `from_checkpoint`. `net` and `score` are converted to float64 in
        place (see the module docstring; float32 weights convert exactly)."""
        self.net = net.to(torch.float64).eval()
        self.score = score.to(torch.float64).eval()
        self.num_features = int(num_features)
        self.num_classes = int(num_classes)
        self.threshold = None if threshold is None else check_threshold(threshold)
        self.threshold_source = threshold_source
        self.config: dict[str, Any] = config or {}
        self.checkpoint = checkpoint
        self.batch_size = batch_size

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        *,
        delta: float | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> TrainedDetector:
        """Load a checkpoint written by oodmix-train (`<run>/checkpoints/<name>.ckpt`).

        `delta` replaces the run's threshold; `device` is "cpu", "cuda", "cuda:<i>" or "auto".
        Raises InferenceError (one line) for a missing or unreadable checkpoint.
        """
        batch_size = check_batch_size(batch_size)
        target = resolve_device(device)
        saved = read_checkpoint(path)
        net, num_features, num_classes = build_network(saved)
        score = build_score(saved)
        if delta is not None:
            threshold, source = check_threshold(delta, score), "given"
        else:
            found = run_threshold(saved, score)
            threshold, source = found.value, found.source
        detector = cls(
            net,
            score,
            num_features=num_features,
            num_classes=num_classes,
            threshold=threshold,
            threshold_source=source,
            config=saved.config,
            checkpoint=saved.path,
            batch_size=batch_size,
        )
        return detector.to(target)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def score_name(self) -> str:
        """The score's human-readable name, e.g. "max softmax probability"."""
        return str(getattr(self.score, "label", type(self.score).__name__))

    def to(self, device: str | torch.device) -> TrainedDetector:
        """Move the network and score to `device` ("cpu", "cuda", "cuda:<i>", "auto");
        returns self."""
        target = resolve_device(device)
        self.net.to(target)
        self.score.to(target)
        return self

    def __repr__(self) -> str:
        return (
            f"TrainedDetector(checkpoint={self.checkpoint}, score={self.score_name!r}, "
            f"threshold={self.threshold}, num_features={self.num_features}, "
            f"num_classes={self.num_classes}, device={self.device})"
        )

    # The one path every method takes: check, batch, forward, score.

    def _checked(self, x: Any) -> tuple[np.ndarray | torch.Tensor, torch.device | None]:
        """x as a 2-D numpy array or tensor of real numbers; the device results go back to
        (None: numpy)."""
        if isinstance(x, torch.Tensor):
            if x.is_complex():
                raise InferenceError(f"x must hold real numbers, got dtype {x.dtype}")
            out_device: torch.device | None = x.device
        else:
            x = np.asarray(x)
            if x.dtype.kind not in "biuf":
                raise InferenceError(f"x must hold real numbers, got dtype {x.dtype}")
            out_device = None
        if x.ndim != 2:
            raise InferenceError(
                f"x must be 2-D (points x features), got shape {tuple(x.shape)}; "
                "one point is x[None]"
            )
        if x.shape[1] != self.num_features:
            raise InferenceError(
                f"x has {x.shape[1]} features per point, the model takes {self.num_features}"
            )
        return x, out_device

    def _batch(self, x: np.ndarray | torch.Tensor, start: int) -> torch.Tensor:
        part = x[start : start + self.batch_size]
        if isinstance(part, np.ndarray):
            part = torch.from_numpy(np.ascontiguousarray(part))
        part = part.to(self.device, dtype=INPUT_DTYPE)
        # One flat reduction (a per-row one over two features is ~50x slower on the CPU).
        if not bool(torch.isfinite(part.reshape(-1)).all()):
            bad = (~torch.isfinite(part).all(dim=1)).nonzero()[:, 0]
            raise InferenceError(
                f"x has NaN or inf (as float32, the network's inputs) in row "
                f"{start + int(bad[0])}" + (f" and {len(bad) - 1} more" if len(bad) > 1 else "")
            )
        return part.to(torch.float64)

    def _score_and_class(self, x: Any) -> tuple[torch.Tensor, torch.Tensor, torch.device | None]:
        x, out_device = self._checked(x)
        back = out_device if out_device is not None else torch.device("cpu")
        scores, classes = [], []
        with torch.no_grad():
            for start in range(0, x.shape[0], self.batch_size):
                logits = self.net(self._batch(x, start))
                scores.append(self.score(logits).to(back, dtype=SCORE_DTYPE))
                classes.append(logits.argmax(dim=-1).to(back))
        if not scores:  # no points
            empty = torch.empty(0, device=back)
            return empty.float(), empty.long(), out_device
        return torch.cat(scores), torch.cat(classes), out_device

    def _threshold(self, delta: float | None) -> float:
        if delta is not None:
            return check_threshold(delta, self.score)
        if self.threshold is None:
            raise InferenceError(
                f"no threshold: {self.threshold_source}; give one, e.g. is_ood(x, delta=...)"
            )
        return self.threshold

    @staticmethod
    def _out(value: torch.Tensor, out_device: torch.device | None) -> Any:
        return value.numpy() if out_device is None else value

    # Public methods.

    def detect(self, x: Array, delta: float | None = None) -> Detection:
        """Score, OOD decision and predicted class of every point, from one forward pass."""
        threshold = self._threshold(delta)
        score, predicted, out_device = self._score_and_class(x)
        # The run's rule, in the score's precision: ID when score >= threshold.
        is_ood = ~(score >= threshold)
        return Detection(*(self._out(v, out_device) for v in (score, is_ood, predicted)))

    def scores(self, x: Array) -> Array:
        """The detection score of every point (N,), float32; higher means more ID."""
        score, _, out_device = self._score_and_class(x)
        return self._out(score, out_device)

    def is_ood(self, x: Array, delta: float | None = None) -> Array:
        """(N,) bool: True where score < threshold (`delta` if given, else `.threshold`)."""
        return self.detect(x, delta).is_ood

    def predict(self, x: Array) -> Array:
        """(N,) int64: the in-distribution class the classifier predicts for every point
        (whether or not the point is called OOD)."""
        _, predicted, out_device = self._score_and_class(x)
        return self._out(predicted, out_device)


def load_detector(
    path: str | Path,
    *,
    delta: float | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> TrainedDetector:
    """`TrainedDetector.from_checkpoint(path, ...)`: the trained detector of an oodmix run."""
    return TrainedDetector.from_checkpoint(path, delta=delta, device=device, batch_size=batch_size)
