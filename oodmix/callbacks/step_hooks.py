"""Callbacks that Lightning need not call on every optimiser step.

Lightning calls every hook of every callback, each call through a profiler context and a
formatted label: about 4 microseconds per callback per call, whether the hook does anything or
not. Under oodmix's manual optimisation the precision plugin calls three hooks per optimiser
step (on_before_backward, on_after_backward, on_before_optimizer_step), 48 calls an epoch of
the default data: with six callbacks, over a millisecond an epoch spent calling empty methods,
as much as the whole validation pass. Lightning calls only the hooks that are callable, so a
callback that sets them to None is passed over at the cost of one getattr.
"""

from __future__ import annotations


class WithoutStepHooks:
    """Mix in before the Lightning callback class of a callback that does nothing per step:
    `class DetectionEvaluation(WithoutStepHooks, L.Callback)`."""

    on_before_backward = None
    on_after_backward = None
    on_before_optimizer_step = None
    on_before_zero_grad = None
