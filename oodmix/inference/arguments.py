"""oodmix-predict's command line: key=value arguments, checked before torch is imported."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oodmix.detectors import thresholds
from oodmix.inference.errors import InferenceError

PROG = "oodmix-predict"
DEFAULT_BATCH_SIZE = 65536

#: Every key the command takes, with what it is.
KEYS = {
    "ckpt": "a checkpoint written by oodmix-train, <run>/checkpoints/<name>.ckpt",
    "input": "the points: a CSV file with a header row, or an .npz file with an array x",
    "output": "the CSV file to write (a new file, unless overwrite=true)",
    "delta": "the threshold: OOD when score < delta (default: the run's own)",
    "batch_size": f"points per forward pass (default {DEFAULT_BATCH_SIZE})",
    "device": "cpu (default), cuda, cuda:<index> or auto (a GPU when there is one)",
    "overwrite": "true to replace an existing output file (default false)",
}
REQUIRED = ("ckpt", "input", "output")

USAGE = (
    f"usage: {PROG} ckpt=<run>/checkpoints/<name>.ckpt input=<points.csv|points.npz> "
    "output=<predictions.csv> [delta=<threshold>] [batch_size=<n>] [device=cpu|cuda|auto] "
    "[overwrite=true]"
)


def help_text() -> str:
    lines = [
        USAGE,
        "",
        "Scores every point with a trained oodmix detector and writes the input columns plus",
        "score, is_ood (1 when score < threshold) and predicted_class, in the input's order.",
        "",
    ]
    lines += [f"  {key:<11} {what}" for key, what in KEYS.items()]
    return "\n".join(lines)


def check_threshold(delta: Any, score: Any = None) -> float:
    """A finite real number, as a Python float; InferenceError otherwise. For a score with a
    fixed scale (`fixed_threshold`: the max softmax probability), in delta's range, as training
    requires (oodmix.detectors.thresholds)."""
    try:
        return thresholds.check_threshold(delta, getattr(score, "fixed_threshold", False))
    except ValueError as refused:
        raise InferenceError(str(refused)) from None


def check_device(device: Any) -> Any:
    """`device` when it names one: cpu, cuda, cuda:<index> or auto (a torch.device passes);
    InferenceError otherwise. Whether that device exists is resolve_device's question."""
    if not isinstance(device, str) and type(device).__name__ == "device":  # torch.device
        return device
    if not re.fullmatch(r"cpu|auto|cuda(:\d+)?", str(device)):
        raise InferenceError(
            f"device={device} is not allowed: device must be cpu, cuda, cuda:<index> or auto"
        )
    return device


def resolve_device(device: Any) -> Any:
    """The torch.device `device` names. `auto`: the first CUDA GPU when torch sees one, else
    the CPU; `cuda` needs a GPU. InferenceError for a name or a GPU that is not there."""
    import torch  # here: the command line is checked before torch is imported

    check_device(device)
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise InferenceError(
                f"device={device} is not allowed: torch finds no CUDA GPU here "
                f"(torch {torch.__version__}); use device=cpu or device=auto"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise InferenceError(
                f"device={device} is not allowed: there are {torch.cuda.device_count()} "
                "CUDA devices"
            )
    return resolved


def check_batch_size(batch_size: Any) -> int:
    """An integer >= 1; InferenceError otherwise."""
    if isinstance(batch_size, str) and re.fullmatch(r"\+?\d+", batch_size.strip()):
        batch_size = int(batch_size)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InferenceError(
            f"batch_size={batch_size} is not allowed: batch_size must be an integer >= 1"
        )
    return batch_size


@dataclass(frozen=True)
class Arguments:
    """One oodmix-predict command, its values checked."""

    ckpt: Path
    input: Path
    output: Path
    delta: float | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    device: str = "cpu"
    overwrite: bool = False


def _key_list() -> str:
    return ", ".join(KEYS)


def parse_args(argv: list[str]) -> Arguments:
    """key=value arguments (Hydra-like); one-line InferenceError for anything else."""
    given: dict[str, str] = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep:
            raise InferenceError(
                f"{arg!r} is not allowed: arguments are key=value; keys: {_key_list()}"
            )
        if key not in KEYS:
            close = difflib.get_close_matches(key, list(KEYS), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise InferenceError(
                f"{arg} is not allowed: there is no key {key!r}{hint}; keys: {_key_list()}"
            )
        if key in given:
            raise InferenceError(
                f"{arg} is not allowed: {key} is given twice ({key}={given[key]} and {arg})"
            )
        if not value:
            raise InferenceError(f"{key}= is not allowed: give {KEYS[key]}")
        given[key] = value
    missing = [key for key in REQUIRED if key not in given]
    if missing:
        names = [f"{key}=" for key in missing]
        listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
        raise InferenceError(f"{listed} {'is' if len(names) == 1 else 'are'} missing; {USAGE}")
    device = check_device(given.get("device", "cpu"))
    overwrite = given.get("overwrite", "false")
    if overwrite.lower() not in ("true", "false"):
        raise InferenceError(
            f"overwrite={overwrite} is not allowed: overwrite must be true or false"
        )
    return Arguments(
        ckpt=Path(given["ckpt"]).expanduser(),
        input=Path(given["input"]).expanduser(),
        output=Path(given["output"]).expanduser(),
        delta=check_threshold(given["delta"]) if "delta" in given else None,
        batch_size=check_batch_size(given.get("batch_size", str(DEFAULT_BATCH_SIZE))),
        device=device,
        overwrite=overwrite.lower() == "true",
    )


def check_paths(args: Arguments) -> None:
    """The files exist, and the output is a new CSV file that is not the input (oodmix never
    writes over results silently: an existing output needs overwrite=true)."""
    for key, path in (("ckpt", args.ckpt), ("input", args.input)):
        if not path.exists():
            raise InferenceError(f"{key}={path}: no such file")
        if not path.is_file():
            example = (
                f"a checkpoint such as {path / 'checkpoints' / 'last.ckpt'}"
                if key == "ckpt"
                else "a .csv or .npz file"
            )
            raise InferenceError(f"{key}={path} is not allowed: it is a folder; give {example}")
    output = args.output
    if output.is_dir():
        raise InferenceError(f"output={output} is not allowed: it is a folder; name a .csv file")
    if output.suffix.lower() != ".csv":
        raise InferenceError(
            f"output={output} is not allowed: predictions are written as CSV; give a file name "
            "ending in .csv"
        )
    if output.resolve() == args.input.resolve() or (
        output.exists() and output.samefile(args.input)
    ):
        raise InferenceError(
            f"output={output} is not allowed: it is the input file; write the predictions to a "
            "new file"
        )
    if output.exists() and not args.overwrite:
        raise InferenceError(
            f"output={output} is not allowed: the file exists, and oodmix never writes over "
            "results silently; choose a new name or add overwrite=true"
        )
