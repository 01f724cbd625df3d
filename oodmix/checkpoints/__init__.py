"""Checkpoint files: written atomically, read with torch's safe loader, resumed exactly."""

from oodmix.checkpoints.atomic_io import AtomicCheckpointIO
from oodmix.checkpoints.interrupts import InterruptCheckpoint, stop_gracefully_on_signals

__all__ = ["AtomicCheckpointIO", "InterruptCheckpoint", "stop_gracefully_on_signals"]
