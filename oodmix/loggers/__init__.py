"""Lightning loggers as oodmix configures them (conf/logger/)."""

from oodmix.loggers.continuing_csv import ContinuingCSVLogger
from oodmix.loggers.mlflow import MLFlowLogger
from oodmix.loggers.tensorboard import TensorBoardLogger

__all__ = ["ContinuingCSVLogger", "MLFlowLogger", "TensorBoardLogger"]
