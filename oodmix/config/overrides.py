"""The command line, read as Hydra reads it: an option that needs a package not installed
is refused before Hydra composes anything, naming the extra to install, and a composed
config's own overrides are read back as typed.

Everything else is checked once the config is composed: unknown options and keys and the
types of values by Hydra against the schema, ranges by the classes that use them
(oodmix.config.preflight).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Sequence
from typing import Any

# Hydra's own command-line parser (its flags: -m, --cfg, -cd, ...), so that the overrides are
# read exactly as Hydra will read them. Hydra 1.3 exports no public one (hydra.main uses this
# internal function; the parsed overrides become public only once a config is composed, in
# HydraConfig, which is too late for a check before composing).
from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, Override
from omegaconf import OmegaConf

from oodmix.config.errors import ConfigError

_OPTUNA = ("hydra_plugins.hydra_optuna_sweeper", "Hydra's Optuna sweeper", "optuna")
_JOBLIB = ("hydra_plugins.hydra_joblib_launcher", "Hydra's joblib launcher", "joblib")
_SUBMITIT = ("hydra_plugins.hydra_submitit_launcher", "Hydra's submitit launcher", "slurm")

#: Options that need an optional package: (group, option) -> (module, what it is, pip extra).
OPTIONAL_PACKAGES = {
    ("hparams_search", "optuna"): _OPTUNA,
    ("hydra/sweeper", "optuna"): _OPTUNA,
    ("hydra/launcher", "joblib"): _JOBLIB,
    ("hydra/launcher", "submitit_slurm"): _SUBMITIT,
    ("hydra/launcher", "submitit_local"): _SUBMITIT,
    ("data", "digits"): ("sklearn", "scikit-learn", "digits"),
    ("logger", "tensorboard"): (
        "tensorboardX",
        "tensorboardX (TensorBoard event files)",
        "tensorboard",
    ),
    ("logger", "mlflow"): ("mlflow", "MLflow's tracking client", "mlflow"),
}


def _check_optional_package(key: str, value: Any) -> None:
    needed = OPTIONAL_PACKAGES.get((key, str(value)))
    if needed is None:
        return
    module, what, extra = needed
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        raise ConfigError(
            f"{key}={value} is not available: it needs {what}, "
            f"install it with: pip install 'oodmix[{extra}]' (or pip install -e '.[{extra}]')"
        )


def task_overrides(config: Any) -> list[str]:
    """A composed config's overrides as typed (hydra.overrides.task), their `${...}` left as
    text: reading them as values would resolve `loss.beta=${nope}` and fail."""
    return list(OmegaConf.to_container(config.hydra.overrides.task, resolve=False))


def override_values(override: Override) -> Iterator[Any]:
    """Every value an override gives: one, or each choice of a sweep (ranges: left to the run)."""
    value = override.value()
    if isinstance(value, ChoiceSweep):
        yield from value.list
    elif not override.is_sweep_override():
        yield value


def check_command_line(argv: Sequence[str]) -> None:
    """Raise ConfigError for a config-group option whose package is not installed (Hydra
    would report a missing plugin or module over many lines, without the fix). An unknown
    option is Hydra's to refuse while composing (oodmix.config.errors words it)."""
    try:
        args = get_args_parser().parse_args(list(argv))
        overrides = OverridesParser.create().parse_overrides(args.overrides)
    except Exception:
        return  # malformed: Hydra's own parser reports it
    for override in overrides:
        if not override.is_delete():
            for value in override_values(override):
                _check_optional_package(override.key_or_group, value)
