"""The datamodule, objective and network of a run, built from its config."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from oodmix.config.validation import ConfigError


@contextmanager
def refusals_as_config_errors() -> Iterator[None]:
    """Turn a constructor's refusal of a value into a ConfigError (one line, exit 2).

    oodmix's classes raise ValueError (or ConfigError) naming the key and what is allowed;
    Hydra wraps those in a multi-line InstantiationException, which is unwrapped here.
    """
    try:
        yield
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, ConfigError):  # already one line, of its own kind (DataError)
            raise cause from None
        if isinstance(cause, ValueError):
            raise ConfigError(str(cause)) from None
        raise
    except ConfigError:
        raise
    except ValueError as error:
        raise ConfigError(str(error)) from None


def quiet_lightning() -> None:
    """Lightning sets its loggers to INFO when first imported (after Hydra configured
    logging); its start-up notices (accelerators present, tips) would bury the results."""
    import lightning  # noqa: F401  (imported first: its import sets the levels)

    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def build_parts(cfg: DictConfig) -> tuple[Any, Any, Any]:
    """The datamodule, objective and network of a run; a constructor's refusal as ConfigError.

    Also built before Hydra makes the run folder (oodmix.config.run_checks), so that such a
    refusal leaves nothing behind.
    """
    with refusals_as_config_errors():
        datamodule = instantiate(cfg.data)
        loss = instantiate(cfg.loss)
        datamodule.request_parts(loss.requires)  # refuses e.g. a mixup loss with mixup=null
        net = instantiate(
            cfg.model.net, in_features=datamodule.num_features, num_classes=datamodule.num_classes
        )
    return datamodule, loss, net
