"""Callbacks that Lightning calls only for the hooks they implement.

Lightning calls every hook of every callback, each call through a profiler context and a
formatted label: about 4 microseconds per callback per call, whether the hook does anything or
not. Under oodmix's manual optimisation the precision plugin calls three hooks per optimiser
step (on_before_backward, on_after_backward, on_before_optimizer_step), 48 calls an epoch of
the default data, and the loops about a dozen more per epoch (train and validation epoch,
batch, start and end): with six callbacks, over a millisecond an epoch spent calling empty
methods, as much as the whole validation pass. Lightning calls only the hooks that are
callable, so a callback class that sets the hooks it does not implement to None is passed
over at the cost of one getattr.
"""

from __future__ import annotations

from typing import Any

import lightning as L

#: Hooks Lightning calls on every callback without checking that they are callable (it saves
#: and restores checkpoints through them): they keep Callback's own empty methods.
ALWAYS_CALLED = frozenset({"on_save_checkpoint", "on_load_checkpoint"})

#: Callback's hooks that Lightning skips when they are not callable.
SKIPPABLE_HOOKS = tuple(
    name
    for name, hook in vars(L.Callback).items()
    if callable(hook)
    and (name.startswith("on_") or name in ("setup", "teardown"))
    and name not in ALWAYS_CALLED
)


def unimplemented_hooks(cls: type) -> list[str]:
    """The skippable hooks that `cls` inherits unchanged from Lightning's Callback."""
    return [name for name in SKIPPABLE_HOOKS if getattr(cls, name) is vars(L.Callback)[name]]


class OwnHooksOnly:
    """Mix in before the Lightning callback class: `class SavedScores(OwnHooksOnly, L.Callback)`.

    Every hook that the class does not implement (it would inherit Callback's empty method) is
    set to None on the class, so Lightning passes it over. A subclass implements a hook by
    defining it, as usual; it must not call `super()` for a hook its parent does not implement
    (there is no method to call)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in unimplemented_hooks(cls):
            setattr(cls, name, None)
