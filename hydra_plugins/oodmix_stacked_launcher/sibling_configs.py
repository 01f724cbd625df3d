"""A sweep's job configs, each derived from a sibling's where Hydra would compose it again.

Hydra composes every job of a sweep from scratch (`ConfigLoader.load_sweep_config`): it builds
the defaults tree, reads and merges every YAML file, then applies the job's overrides, about
0.1 s a job here. Jobs of one sweep mostly differ in values alone (seed=0,1,2 beta=0.1,0.3):
their defaults trees are the same, and only the overrides applied last differ. Such a job is
derived from the composed config of a sibling with the same overrides but for those values:

    job config = sibling's config (a copy), with the job's differing overrides applied by
                 Hydra's own step (ConfigLoaderImpl._apply_overrides_to_config), and Hydra's
                 record of the job's overrides (hydra.overrides.task,
                 hydra.job.override_dirname) set as its composition sets them

which is what composing it gives (tests/stacking/test_sibling_configs.py compares the two for
every kind of sweep oodmix ships), at the cost of a copy (a few milliseconds).

An override is derived only when it plainly sets a value: `key=value` with a single value of
a plain type, on a key that is not a config group (`loss=ce_kl` chooses another file, so it
needs its own composition), not under `hydra.`, not `+key=`, `++key=` or `~key`, and set once
in the job's overrides. Any other difference, and the first job of each kind, is composed by
Hydra as usual.
"""

import copy
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from omegaconf import DictConfig, OmegaConf

#: The values a derived override may set (what a command-line number, word or flag parses to).
PLAIN = (bool, int, float, str, type(None))


class SiblingConfigs:
    """Hydra's config loader, deriving a sweep job's config from a sibling's where it can (see
    the module's docstring); everything else is passed to Hydra's loader."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self._parser = OverridesParser.create()
        # The kind of a job (its overrides, with the values of derivable ones left out) ->
        # the parsed overrides and an untouched copy of the first such job's composed config.
        self._composed: dict[tuple, tuple[list[Override], DictConfig]] = {}
        self.composed = 0  # jobs composed by Hydra
        self.derived = 0  # jobs derived from a sibling

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> Any:
        parsed = self._parser.parse_overrides(overrides=list(sweep_overrides))
        kind = self._kind(master_config, parsed)
        sibling = self._composed.get(kind) if kind is not None else None
        if sibling is not None:
            self.derived += 1
            return self._derive(master_config, *sibling, parsed)
        cfg = self.loader.load_sweep_config(master_config, list(sweep_overrides))
        self.composed += 1
        if kind is not None:
            self._composed[kind] = (parsed, copy.deepcopy(cfg))
        return cfg

    def _kind(self, master_config: DictConfig, parsed: list[Override]) -> tuple | None:
        """What a sibling must share: the master config and every override, except the values
        of derivable ones; None when a key is set twice (its last value wins in Hydra's order,
        which a derivation would not follow)."""
        keys = [o.key_or_group for o in parsed]
        if len(set(keys)) != len(keys):
            return None
        return (
            id(master_config),
            tuple(
                (o.key_or_group,) if self._derivable(master_config, o) else (o.input_line,)
                for o in parsed
            ),
        )

    def _derivable(self, master_config: DictConfig, override: Override) -> bool:
        key = override.key_or_group
        return (
            override.type == OverrideType.CHANGE
            and override.package is None
            and not override.is_hydra_override()
            and not override.is_sweep_override()
            and isinstance(override.value(), PLAIN)
            and not self._is_group(master_config, key)
        )

    def _is_group(self, master_config: DictConfig, key: str) -> bool:
        """Whether `key` names a config group (a file is chosen, not a value set)."""
        path = key.replace(".", "/")
        choices = master_config.hydra.runtime.choices
        return key in choices or path in choices or self.loader.repository.group_exists(path)

    @staticmethod
    def _derive(
        master_config: DictConfig,
        sibling_overrides: list[Override],
        sibling: DictConfig,
        parsed: list[Override],
    ) -> DictConfig:
        cfg = copy.deepcopy(sibling)
        changed = [
            mine
            for mine, theirs in zip(parsed, sibling_overrides, strict=True)
            if mine.input_line != theirs.input_line
        ]
        ConfigLoaderImpl._apply_overrides_to_config(changed, cfg)
        # Hydra's record of the job's own overrides, as its composition writes it (the
        # siblings' hydra.* overrides are the same, and come after the master's in
        # hydra.overrides.hydra, which is left as it is).
        own = [o for o in parsed if not o.is_hydra_override()]
        task = cfg.hydra.overrides.task
        for i, override in enumerate(own):
            task[i] = override.input_line
        dirname = cfg.hydra.job.config.override_dirname
        cfg.hydra.job.override_dirname = get_overrides_dirname(
            overrides=own,
            kv_sep=dirname.kv_sep,
            item_sep=dirname.item_sep,
            exclude_keys=dirname.exclude_keys,
        )
        # As Hydra's load_sweep_config does: resolved values cached in the master (a time).
        OmegaConf.copy_cache(from_config=master_config, to_config=cfg)
        return cfg

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)
