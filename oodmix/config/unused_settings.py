"""Settings that would change nothing: refused, so that no value a user sets is silently ignored.

Some knobs matter only in some combinations: `beta` only to objectives with a term it weighs,
`mixup.*` only to objectives that train on mixed samples, `delta` only to a detector whose
score is a probability (the others' threshold is tuned on validation data), and so on
(`USES`). A knob the user chose (on the command line, or as a sweep's parameter) is refused,
before anything is written, when

- no run of the command uses it: the value would be ignored; or
- it is swept over several values and some run does not use it: that run would be trained
  once per value, identically (e.g. `-m loss=ce,ce_kl beta=0.1,1` trains plain CE twice).

Defaults are never refused: a shipped config may well set a knob that one objective ignores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from oodmix.batch_parts import MIXED_PARTS, OOD_PARTS
from oodmix.config.errors import ConfigError
from oodmix.config.job import refers_to
from oodmix.config.overrides import task_overrides


@dataclass(frozen=True)
class Use:
    """Whether a run (its composed config) uses a knob; `needs` says when it does."""

    uses: Callable[[DictConfig], bool]
    needs: Callable[[], str]  # when the knob is used, for the message (may read conf/loss/)
    #: The config-group choice the knob depends on (named in the message), or None.
    group: str | None


def _loss_requires(cfg: DictConfig) -> frozenset[str]:
    from hydra.utils import instantiate

    return frozenset(instantiate(cfg.loss).requires)


def _interpolates(node: Any, key: str) -> bool:
    """Whether a config node, unresolved, refers to the root key `key` (`${beta}`,
    `${mixup.pairs}`, `${oc.select:mixup.pairs,null}`)."""
    return refers_to(str(OmegaConf.to_container(node, resolve=False)), key)


def _fixed_threshold(cfg: DictConfig) -> bool:
    from hydra.utils import get_class

    return bool(getattr(get_class(cfg.detector._target_), "fixed_threshold", False))


def _losses_referring_to(key: str) -> str:
    """The shipped objectives (conf/loss/) whose config refers to the root key `key`."""
    from oodmix.config.paths import config_dir, group_options

    names = [
        name
        for name in group_options("loss")
        if _interpolates(OmegaConf.load(config_dir() / "loss" / f"{name}.yaml"), key)
    ]
    return ", ".join(names)


USES: dict[str, Use] = {
    "beta": Use(
        lambda cfg: _interpolates(cfg.loss, "beta"),
        lambda: f"an objective with a term weighted by beta ({_losses_referring_to('beta')})",
        "loss",
    ),
    "mixup.alpha": Use(
        lambda cfg: not _loss_requires(cfg).isdisjoint(MIXED_PARTS),
        lambda: f"an objective that trains on mixed samples ({_losses_referring_to('mixup')})",
        "loss",
    ),
    "mixup.pairs": Use(
        lambda cfg: not _loss_requires(cfg).isdisjoint(MIXED_PARTS),
        lambda: f"an objective that trains on mixed samples ({_losses_referring_to('mixup')})",
        "loss",
    ),
    "data.ood_batch_size": Use(
        lambda cfg: not _loss_requires(cfg).isdisjoint(OOD_PARTS),
        lambda: "an objective that trains on OOD samples",
        "loss",
    ),
    "delta": Use(
        _fixed_threshold,
        lambda: (
            "detector=msp, whose score is a probability; the other scores' threshold is tuned on "
            "the validation set (val/delta_best)"
        ),
        "detector",
    ),
    "model.gradient_clip_algorithm": Use(
        lambda cfg: cfg.model.get("gradient_clip_val") is not None,
        lambda: "model.gradient_clip_val=<c> (without it nothing is clipped)",
        None,
    ),
}


@dataclass(frozen=True)
class Choice:
    """A knob the user chose: its key, the values given, and whether it was swept."""

    key: str
    shown: str  # as the user (or the sweeper's parameters) wrote it: beta=0.1,1
    swept: bool
    searched: bool = False  # given by the sweeper's own parameters (hydra.sweeper.params)


def chosen(overrides: Iterable[str], searched: Iterable[str] = ()) -> list[Choice]:
    """The knobs of USES that `overrides` (Hydra override strings) set, with their values.

    A range or an interval (Optuna's search space) counts as swept; `searched` are the keys
    that come from the sweeper's parameters rather than the command line."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep

    found = []
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group.lstrip("+")
        if key not in USES or override.is_delete():
            continue
        value = override.value()
        swept = override.is_sweep_override()
        if isinstance(value, ChoiceSweep):
            swept = len(value.list) > 1
        found.append(Choice(key, override.input_line.lstrip("+"), swept, key in searched))
    return found


def refusal(choice: Choice, runs: Sequence[tuple[str, bool]]) -> str | None:
    """The one-line reason to refuse `choice`, given for each run of the command (labelled by
    its group choice, e.g. "loss=ce") whether it uses the knob; None when it is fine."""
    key, needs = choice.key, USES[choice.key].needs()
    ignoring = list(dict.fromkeys(label for label, uses in runs if not uses))
    if not ignoring:
        return None
    where = f" with {', '.join(ignoring)}" if ignoring[0] else ""
    if choice.searched:
        leave_out = "search a space without it (hydra.sweeper.params)"
    else:
        leave_out = "leave it out"
    if not any(uses for _, uses in runs):
        return (
            f"{choice.shown} is not allowed{where}: it would change nothing, since {key} "
            f"applies only to {needs}; {leave_out} or change that choice"
        )
    if choice.swept:
        return (
            f"{choice.shown} is not allowed{where}: {' and '.join(ignoring)} does not use {key} "
            f"({key} applies only to {needs}), so those runs would be trained once per value, "
            "identically; sweep them in a command of their own"
        )
    return None


def check_settings_used(
    runs: Sequence[tuple[str, DictConfig]], overrides: Iterable[str], searched: Iterable[str] = ()
) -> None:
    """Raise ConfigError for the first knob in `overrides` that changes nothing.

    `runs` are the distinct configurations of the command (one for a single run; one per
    combination of swept group options in a multirun), each labelled by its group choices."""
    for choice in chosen(overrides, searched):
        use = USES[choice.key]
        verdicts = [(_label(label, use.group), use.uses(cfg)) for label, cfg in runs]
        reason = refusal(choice, verdicts)
        if reason:
            raise ConfigError(reason)


def _label(label: str, group: str | None) -> str:
    """The part of a run's label ("loss=ce detector=msp") that names `group`."""
    if group is None:
        return ""
    return next((p for p in label.split() if p.startswith(f"{group}=")), "")


#: The config groups whose choice decides whether a knob is used (see USES).
GROUPS = ("loss", "detector")


def run_label(choices: Any) -> str:
    """A run's label by its choices of GROUPS, e.g. "loss=ce detector=msp"."""
    return " ".join(f"{g}={choices[g]}" for g in GROUPS if choices and choices.get(g))


def check_run(config: DictConfig) -> None:
    """A single run: refuse a knob given on its command line that the run does not use."""
    hydra_cfg = config.hydra
    label = run_label(hydra_cfg.runtime.choices)
    check_settings_used([(label, config)], task_overrides(config))


def sweeper_params(config: DictConfig) -> dict[str, str]:
    """The sweeper's own parameters (an experiment's sweep, Optuna's search space)."""
    return dict(OmegaConf.select(config, "hydra.sweeper.params") or {})
