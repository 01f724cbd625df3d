"""What a checkpoint of `oodmix-train` holds for inference, and the run's own threshold.

A checkpoint (`<run>/checkpoints/<name>.ckpt`) carries the resolved run config
(hyper_parameters["config"]: model, detector, delta, data, ...) and the network's weights (the
`net.*` entries of state_dict). It is read with torch's safe loader (weights_only=True), and
only torch modules named by the config are built from it.
"""

from __future__ import annotations

import importlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from oodmix.config.errors import one_line
from oodmix.inference.errors import InferenceError

#: The score a run used before the config named its detector (DetectionEvaluation's default).
DEFAULT_DETECTOR = {"_target_": "oodmix.detectors.MaxSoftmaxScore"}


def _one_line(error: BaseException, limit: int) -> str:
    return one_line(error, limit) or type(error).__name__


@dataclass(frozen=True)
class SavedRun:
    """One checkpoint of a training run: its path, resolved config and network weights."""

    path: Path
    config: dict[str, Any]
    net_state: dict[str, torch.Tensor]

    @property
    def run_dir(self) -> Path | None:
        """<run> for <run>/checkpoints/<name>.ckpt (where metrics.json lies), else None."""
        parent = self.path.parent
        return parent.parent if parent.name == "checkpoints" else None


def _load(path: Path, key: str = "ckpt") -> dict[str, Any]:
    if not path.exists():
        raise InferenceError(f"{key}={path}: no such file")
    if path.is_dir():
        raise InferenceError(
            f"{key}={path} is not allowed: it is a folder; give a checkpoint file such as "
            "<run>/checkpoints/last.ckpt"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # not a torch file, or one that needs unsafe unpickling
        raise InferenceError(
            f"{key}={path}: cannot be read as an oodmix checkpoint "
            f"({type(error).__name__}: {_one_line(error, 120)})"
        ) from None
    if not isinstance(checkpoint, dict):
        raise InferenceError(f"{key}={path}: not an oodmix checkpoint (holds no dict)")
    return checkpoint


def _net_state(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    state = checkpoint.get("state_dict") or {}
    return {
        name.removeprefix("net."): value
        for name, value in state.items()
        if name.startswith("net.") and isinstance(value, torch.Tensor)
    }


def read_checkpoint(path: str | Path, key: str = "ckpt") -> SavedRun:
    """The run config and network weights of an oodmix checkpoint; one-line errors otherwise
    (naming the argument `key` that gave the path)."""
    path = Path(path).expanduser()
    checkpoint = _load(path, key)
    config = (checkpoint.get("hyper_parameters") or {}).get("config")
    if not isinstance(config, dict) or not config:
        raise InferenceError(
            f"{key}={path}: holds no oodmix run config (hyper_parameters['config']); give a "
            "checkpoint written by oodmix-train"
        )
    net_state = _net_state(checkpoint)
    if not net_state:
        raise InferenceError(f"{key}={path}: holds no network weights (no net.* in state_dict)")
    return SavedRun(path, config, net_state)


def _locate(target: str) -> Any:
    """The object a dotted path names (module.Class or module.Class.Inner), importing its
    module; ImportError when there is none."""
    parts = target.split(".")
    for split in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:split])
        try:
            obj = importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name and (module + ".").startswith(error.name + "."):
                continue  # no such module: the path names an attribute deeper in
            raise  # the module exists but fails to import: say why
        try:
            for name in parts[split:]:
                obj = getattr(obj, name)
        except AttributeError:
            break
        return obj
    raise ImportError(f"no module or attribute {target!r}")


def _check_targets(node: Any, where: str, path: Path) -> None:
    """Every `_target_` under `node` must name a torch module class: a checkpoint's config
    decides what is built, and nothing but networks and scores is built from it."""
    if isinstance(node, dict):
        if "_target_" in node:
            target = node["_target_"]
            try:
                cls = _locate(str(target))
            except Exception as error:
                raise InferenceError(
                    f"ckpt={path}: {where}._target_={target} cannot be imported here "
                    f"({_one_line(error, 120)})"
                ) from None
            if not isinstance(cls, type) or not issubclass(cls, nn.Module):
                raise InferenceError(
                    f"ckpt={path}: {where}._target_={target} is not a torch module; "
                    "oodmix-predict builds only networks and detection scores"
                )
        for key, value in node.items():
            _check_targets(value, f"{where}.{key}", path)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _check_targets(value, f"{where}.{i}", path)


def _instantiate(node: dict[str, Any], where: str, path: Path, **kwargs: Any) -> nn.Module:
    from hydra.utils import instantiate

    _check_targets(node, where, path)
    try:
        return instantiate(node, **kwargs)
    except Exception as error:
        cause = error.__cause__ or error
        raise InferenceError(
            f"ckpt={path}: {where} cannot be built from the checkpoint's config "
            f"({type(cause).__name__}: {_one_line(cause, 120)})"
        ) from None


def network_sizes(net_state: dict[str, torch.Tensor]) -> tuple[int, int]:
    """(features, classes) read from the weights: the input width of the first weight matrix
    and the output width of the last (the datamodule, not the config, sets them in training)."""
    matrices = [value for name, value in net_state.items() if value.ndim == 2]
    if not matrices:
        raise InferenceError("the checkpoint's network has no weight matrix to read sizes from")
    return int(matrices[0].shape[1]), int(matrices[-1].shape[0])


def build_network(saved: SavedRun) -> tuple[nn.Module, int, int]:
    """The trained network (eval mode, on the CPU), its number of features and of classes."""
    net_config = (saved.config.get("model") or {}).get("net")
    if not isinstance(net_config, dict):
        raise InferenceError(f"ckpt={saved.path}: its config has no model.net to build")
    num_features, num_classes = network_sizes(saved.net_state)
    net = _instantiate(
        net_config, "model.net", saved.path, in_features=num_features, num_classes=num_classes
    )
    try:
        net.load_state_dict(saved.net_state)
    except RuntimeError as error:
        raise InferenceError(
            f"ckpt={saved.path}: its weights do not fit the network its config describes "
            f"({_one_line(error, 120)})"
        ) from None
    net.eval()
    with torch.no_grad():
        out = net(torch.zeros(1, num_features, dtype=next(net.parameters()).dtype))
    if tuple(out.shape) != (1, num_classes):
        raise InferenceError(
            f"ckpt={saved.path}: its network maps (1, {num_features}) to {tuple(out.shape)}, "
            f"not to (1, {num_classes}) class logits"
        )
    return net, num_features, num_classes


def build_score(saved: SavedRun) -> nn.Module:
    """The run's detection score (config `detector`; max softmax probability if absent)."""
    node = saved.config.get("detector") or DEFAULT_DETECTOR
    return _instantiate(dict(node), "detector", saved.path)


@dataclass(frozen=True)
class Threshold:
    """A decision threshold and where it comes from (or, when `value` is None, why there is
    none)."""

    value: float | None
    source: str


def _tested_checkpoint(saved: SavedRun) -> Path | None:
    """The checkpoint file whose weights the run tested (and tuned val/delta_best for):
    test_ckpt=best -> the model_checkpoint callback's file, test_ckpt=last -> last_checkpoint's.
    None when that cannot be told (no such file, or several)."""
    callbacks = saved.config.get("callbacks") or {}
    which = "last_checkpoint" if saved.config.get("test_ckpt") == "last" else "model_checkpoint"
    default = "last" if which == "last_checkpoint" else "best-{epoch:03d}"
    filename = str((callbacks.get(which) or {}).get("filename") or default)
    pattern = re.sub(r"\{[^}]*\}", "*", filename) + ".ckpt"
    found = sorted(saved.path.parent.glob(pattern))
    return found[0] if len(found) == 1 else None


def _same_weights(saved: SavedRun, other: Path) -> bool:
    if other.resolve() == saved.path.resolve():
        return True
    try:
        other_state = _net_state(_load(other))
    except InferenceError:
        return False
    return other_state.keys() == saved.net_state.keys() and all(
        torch.equal(other_state[name], value) for name, value in saved.net_state.items()
    )


def run_threshold(saved: SavedRun, score: nn.Module) -> Threshold:
    """The threshold the run itself decided with.

    A score with a fixed scale (`fixed_threshold`, the max softmax probability): the run's
    `delta`. Any other score: the threshold the run tuned on its validation set for the weights
    it tested, `val/delta_best` in <run>/metrics.json, provided these are those weights.
    """
    label = getattr(score, "label", type(score).__name__)
    if getattr(score, "fixed_threshold", False):
        delta = saved.config.get("delta")
        if isinstance(delta, (int, float)) and math.isfinite(delta):
            return Threshold(float(delta), f"the run's delta; {label}")
        return Threshold(None, f"the checkpoint's config has no delta for the {label}")
    run_dir = saved.run_dir
    if run_dir is None:
        return Threshold(
            None,
            f"the {label} has no fixed scale and the checkpoint lies outside a run's "
            "checkpoints/ folder, so the run's tuned threshold (val/delta_best) is unknown",
        )
    metrics_path = run_dir / "metrics.json"
    try:
        value = json.loads(metrics_path.read_text()).get("val/delta_best")
    except (OSError, ValueError, AttributeError):
        value = None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return Threshold(
            None,
            f"the {label} has no fixed scale and {metrics_path} holds no tuned threshold "
            "(val/delta_best)",
        )
    tested = _tested_checkpoint(saved)
    if tested is None or not _same_weights(saved, tested):
        name = tested.name if tested else "the tested checkpoint"
        return Threshold(
            None,
            f"val/delta_best in {metrics_path} was tuned for the weights the run tested "
            f"({name}), not for these",
        )
    return Threshold(float(value), f"val/delta_best of the run; {label}")
