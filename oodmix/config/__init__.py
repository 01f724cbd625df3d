"""Config location, the schema, and the checks that stop a bad value before training."""

from oodmix.config import run_dirs  # noqa: F401  (registers the run-folder resolvers)
from oodmix.config.errors import ConfigError

__all__ = ["ConfigError"]
