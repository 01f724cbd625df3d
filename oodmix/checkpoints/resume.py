"""Resuming a run: the checkpoint's settings must be the run's settings.

A checkpoint holds the resolved config of the run that wrote it, and the new run's config is
compared with it value by value. A difference is named by what the user sets, never by a key
they did not choose:

- a value that interpolates another is named by the key it comes from
  (`callbacks.confidence_map.enabled: ${plots}` by `plots`, `data.mixup.alpha` by
  `mixup.alpha`);
- a value a config group sets is named by the group's choice (`loss._target_` by `loss=ce_kl`,
  read from the run's own `.hydra/hydra.yaml` when the checkpoint lies in its run folder);
- values built from Hydra's run folder or the clock (`output_dir`, `callbacks.*.dirpath`,
  `trainer.default_root_dir`, `logger.save_dir`) are left out: they are no settings, and a
  resumed run goes on in its own folder anyway (oodmix.config.run_dirs refuses to move it).

The check runs before Hydra makes or writes the run folder (oodmix.config.hydra_callback), and
again in the job, for runs that had no such check (a job of a multirun, `train(cfg)` in Python).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from oodmix.allowed import shown
from oodmix.config.errors import ConfigError
from oodmix.config.job import job_config, references
from oodmix.config.run_dirs import checkpoint_run_dir

#: Keys a resumed run may change: where it resumes from, how long it trains, what it prints.
MAY_DIFFER = ("ckpt_path", "trainer.max_epochs", "trainer.max_steps", "progress", "quiet")

#: The origin of a value that Hydra's run folder or the clock gives (`${hydra:runtime...}`,
#: `${now:...}`): no setting, left out of the comparison.
NOT_A_SETTING = "<run folder or clock>"

_CHOICE = "hydra:runtime.choices."
_ABSENT = object()


def saved_config(ckpt_path: str) -> dict[str, Any]:
    """The resolved run config stored in an oodmix checkpoint (read with weights_only=True)."""
    from oodmix.inference.checkpoint import read_checkpoint

    return read_checkpoint(ckpt_path, key="ckpt_path").config


def saved_choices(ckpt_path: str) -> dict[str, str] | None:
    """The config-group choices of the run that wrote a checkpoint, from its run folder's
    `.hydra/hydra.yaml`; None for a checkpoint outside a run folder."""
    run = checkpoint_run_dir(ckpt_path)
    record = run / ".hydra" / "hydra.yaml" if run is not None else None
    if record is None or not record.is_file():
        return None
    try:
        choices = OmegaConf.load(record).hydra.runtime.choices
    except Exception:  # an unreadable record: compare the values alone
        return None
    return {str(group): str(option) for group, option in choices.items()}


def _group_option(group: str) -> str:
    """How an origin names a config group's choice ("loss=")."""
    return f"{group}="


def origins(raw: Mapping[str, Any], key: str, _depth: int = 0) -> set[str]:
    """What gives the value at `key` (dotted; no list indices) in an unresolved config `raw`:
    {key} itself when the config sets it; for an interpolation, the keys it refers to, "group="
    for Hydra's choice of a config group, NOT_A_SETTING for Hydra's run folder and the clock."""
    parts = key.split(".")
    node: Any = raw
    for i, part in enumerate(parts):
        if not isinstance(node, Mapping) or part not in node:
            return {key}
        node = node[part]
        if not (isinstance(node, str) and "${" in node):
            continue
        found: set[str] = set()
        for reference in references(node):
            if reference.startswith(_CHOICE):
                found.add(_group_option(reference.removeprefix(_CHOICE)))
            elif reference.startswith(("hydra:", "now:")):
                found.add(NOT_A_SETTING)
            elif ":" in reference or reference.startswith(".") or _depth > 20:
                found.add(key)  # another resolver or a relative key: name the key itself
            else:
                found |= origins(raw, ".".join([reference, *parts[i + 1 :]]), _depth + 1)
        return found
    return {key}


def _at(tree: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(tree, Mapping) or part not in tree:
            return _ABSENT
        tree = tree[part]
    return tree


def _differences(before: Any, now: Any, prefix: str = "") -> Iterator[str]:
    """The keys where two resolved configs differ: at the deepest level both hold sections,
    so `mixup=null` against `mixup: {alpha: 1.0, ...}` differs at `mixup`."""
    if isinstance(before, Mapping) and isinstance(now, Mapping):
        for name in sorted(set(before) | set(now), key=str):
            key = f"{prefix}.{name}" if prefix else str(name)
            yield from _differences(before.get(name, _ABSENT), now.get(name, _ABSENT), key)
    elif before != now:  # 1 == 1.0: a number typed without its decimal point is the same
        yield prefix


@dataclass(frozen=True)
class _Run:
    """The new run's config: resolved values, unresolved text (None: only values known) and its
    config-group choices (None: not composed by Hydra)."""

    values: Mapping[str, Any]
    raw: Mapping[str, Any] | None
    choices: Mapping[str, str] | None


def _resolved(config: DictConfig) -> dict[str, Any]:
    """The run config without Hydra's section, resolved. Before Hydra makes the run folder its
    runtime.output_dir is not set: the values built from it resolve to "" here (they are left out
    of the comparison), against a copy of the config registered as Hydra's for the moment."""
    from hydra.core.hydra_config import HydraConfig

    job = job_config(config)
    if "hydra" not in config:  # a job's config: HydraConfig already holds its run
        return OmegaConf.to_container(job, resolve=True, enum_to_str=True)
    composed = copy.deepcopy(config)
    with read_write(composed.hydra.runtime), open_dict(composed.hydra.runtime):
        if OmegaConf.is_missing(composed.hydra.runtime, "output_dir"):
            composed.hydra.runtime.output_dir = ""
    hydra = HydraConfig.instance()
    previous = hydra.cfg
    hydra.set_config(composed)
    try:
        return OmegaConf.to_container(job, resolve=True, enum_to_str=True)
    finally:
        hydra.cfg = previous


def _this_run(config: DictConfig | Mapping[str, Any]) -> _Run:
    if not isinstance(config, DictConfig):
        return _Run(config, None, None)
    from hydra.core.hydra_config import HydraConfig

    raw = OmegaConf.to_container(config, resolve=False)
    choices = None
    if "hydra" in config:
        choices = OmegaConf.to_container(config.hydra.runtime.choices)
    elif HydraConfig.initialized():
        choices = OmegaConf.to_container(HydraConfig.get().runtime.choices)
    choices = {str(g): str(o) for g, o in choices.items()} if choices is not None else None
    return _Run(_resolved(config), raw, choices)


def _setting(key: str, value: Any) -> str:
    """How a refusal names a setting: "with beta=0.5", "with loss=ce_kl" (a group's choice),
    "without callbacks.extra" (a key that one of the two configs lacks)."""
    if value is _ABSENT:
        return f"without {key}"
    return f"with {key}={value if isinstance(value, _Choice) else shown(value)}"


class _Choice(str):
    """A config group's option, shown as typed (loss=ce_kl, not loss='ce_kl')."""


@dataclass(frozen=True)
class RefusalWords:
    """How a refusal to resume names what is refused: a run resumed with ckpt_path (the
    default) or, in other words, a stopped sweep continued (oodmix.stacking.continuing)."""

    refused: str  # what is not allowed: "ckpt_path=<file>"
    checkpoint: str = "the checkpoint"  # what was trained with other settings
    resume: str = "resume"  # what to do with the same settings
    start: str = "run"  # or start a new one of these


def _refusal(words: RefusalWords, now: str, before: str) -> ConfigError:
    """The one line: `now` and `before` say "with key=value" (see _setting)."""
    return ConfigError(
        f"{words.refused} is not allowed {now}: {words.checkpoint} was trained {before}; "
        f"{words.resume} with the same settings (only {', '.join(MAY_DIFFER[1:])} may change) "
        f"or start a new {words.start}"
    )


def check_same_settings(
    ckpt_path: str, config: DictConfig | Mapping[str, Any], words: RefusalWords | None = None
) -> None:
    """Refuse to resume with settings other than those the checkpoint was trained with.

    `config` is the run's composed config (a DictConfig: differences are named as the user
    sets them, see the module's docstring) or its resolved values (a plain mapping: named by
    the key where they differ). `words`: how the refusal names what is refused (default: a
    run resumed with ckpt_path=<ckpt_path>)."""
    words = words or RefusalWords(refused=f"ckpt_path={ckpt_path}")
    before = saved_config(ckpt_path)
    run = _this_run(config)
    now_choices = run.choices or {}
    earlier_choices = saved_choices(ckpt_path) if run.choices is not None else None

    def group_changed(group: str) -> bool:
        return earlier_choices is not None and earlier_choices.get(group) != now_choices[group]

    def refuse_group(group: str) -> ConfigError:
        now = _setting(group, _Choice(now_choices[group]))
        if earlier_choices is None:  # no record of the earlier choice: name the class it built
            return _refusal(
                words, now, f"with another {group} ({_at(before, group + '._target_')})"
            )
        was = earlier_choices.get(group)
        return _refusal(words, now, _setting(group, _ABSENT if was is None else _Choice(was)))

    def refuse_key(key: str) -> ConfigError:
        return _refusal(words, _setting(key, _at(run.values, key)), _setting(key, _at(before, key)))

    changed = {key for key in _differences(before, run.values) if key not in MAY_DIFFER}
    derived: list[tuple[str, set[str]]] = []
    for key in sorted(changed):  # a section's _target_ sorts before its other keys
        sources = origins(run.raw, key) if run.raw is not None else {key}
        if NOT_A_SETTING in sources or sources <= set(MAY_DIFFER):
            continue
        group = key.split(".")[0]
        if group in now_choices and (
            group_changed(group) or (earlier_choices is None and key == f"{group}._target_")
        ):
            raise refuse_group(group)
        if sources == {key}:  # set directly, by the user or a config file
            raise refuse_key(key)
        derived.append((key, sources))
    for key, sources in derived:
        for source in sorted(s for s in sources if s.endswith("=")):  # a group's choice
            if source[:-1] in now_choices and group_changed(source[:-1]):
                raise refuse_group(source[:-1])
        if not sources & changed:
            # Its sources agree, so one of the two runs set this value by hand: name it.
            raise refuse_key(key)
