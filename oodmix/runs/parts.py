"""The datamodule, objective and network of a run, built from its config."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from oodmix.config.errors import ConfigError, describe, one_line


@contextmanager
def refusals_as_config_errors(section: str | None = None) -> Iterator[None]:
    """Turn a constructor's refusal of its arguments into a ConfigError (one line, exit 2).

    oodmix's classes raise ValueError naming the key and what is allowed (oodmix.allowed). A
    library's class (Lightning's ModelCheckpoint and Trainer, torch's optimisers) names only
    its argument, so its message is put after the config `section` that built it. Hydra wraps
    either in a multi-line InstantiationException, which is unwrapped here.
    """
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        yield
    except ConfigError:
        raise
    except Exception as error:
        cause = error
        if isinstance(error, InstantiationException):
            cause = error.__cause__ or error  # none: a _target_ that does not import
        if isinstance(cause, ConfigError):  # already one line, of its own kind (DataError)
            raise cause from None
        if isinstance(cause, OmegaConfBaseException):  # names its key: loss.beta: ...
            raise ConfigError(describe(cause, []) or one_line(cause)) from None
        refused = (ValueError, TypeError, MisconfigurationException, InstantiationException)
        if not isinstance(cause, refused):
            raise
        message = one_line(cause)
        if section and " is not allowed" not in message:
            message = f"{section} is not allowed: {message}"
        raise ConfigError(message) from None


def quiet_lightning() -> None:
    """Lightning sets its loggers to INFO when first imported (after Hydra configured
    logging); its start-up notices (accelerators present, tips) would bury the results."""
    import lightning  # noqa: F401  (imported first: its import sets the levels)

    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def build_parts(cfg: DictConfig) -> tuple[Any, Any, Any]:
    """The datamodule, objective and network of a run; a constructor's refusal as ConfigError."""
    with refusals_as_config_errors("data"):
        # Not recursive: the data module builds its regions itself, naming each by its key.
        datamodule = instantiate(cfg.data, _recursive_=False)
    with refusals_as_config_errors("loss"):
        loss = instantiate(cfg.loss)
        datamodule.request_parts(loss.requires)  # refuses e.g. a mixup loss with mixup=null
    with refusals_as_config_errors("model.net"):
        net = instantiate(
            cfg.model.net, in_features=datamodule.num_features, num_classes=datamodule.num_classes
        )
    return datamodule, loss, net
