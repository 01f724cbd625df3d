"""oodmix's Hydra launcher `hydra/launcher=stacked`: the jobs of a sweep that differ only in
per-run numbers are trained together (see `stacked_launcher`).

Hydra finds it by scanning the `hydra_plugins` namespace package, which is why this package
lives outside `oodmix/` and why `hydra_plugins/` has no `__init__.py`.
"""
