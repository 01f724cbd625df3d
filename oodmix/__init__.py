"""oodmix: train and evaluate out-of-distribution detectors with PyTorch Lightning and Hydra."""

__version__ = "0.1.0"
