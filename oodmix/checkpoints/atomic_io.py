"""Lightning's checkpoint IO with a temporary file beside the target and a rename."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from oodmix.files import atomic_open


class AtomicCheckpointIO(TorchCheckpointIO):
    """Saves through oodmix.files.atomic_open: a checkpoint is the old file or the whole new
    one, even when the process is killed mid-write (Lightning's own save goes through an
    fsspec transaction whose temporary file may lie on another filesystem, and is then copied).

    Loads with torch's safe unpickler (weights_only=True) unless a caller asks otherwise:
    oodmix's checkpoints hold only tensors and plain Python values.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        with atomic_open(Path(path), "wb") as handle:
            torch.save(checkpoint, handle)

    def load_checkpoint(
        self, path: Any, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        if map_location is None:
            map_location = "cpu"
        return super().load_checkpoint(
            path,
            map_location=map_location,
            weights_only=True if weights_only is None else weights_only,
        )
