"""The schema of oodmix's train config (oodmix.config.schema), put in Hydra's ConfigStore when
Hydra scans the `hydra_plugins` namespace package, before it composes any config."""

from oodmix.config.schema import register

register()
