"""Lightning loggers as oodmix configures them (conf/logger/)."""

from oodmix.loggers.continuing_csv import ContinuingCSVLogger

__all__ = ["ContinuingCSVLogger"]
