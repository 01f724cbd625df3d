"""Checks that involve several keys at once, run on a composed config (see validation.validate).

Each check takes the plain (resolved) `data` and `loss` sections and returns None or the
one-line reason why the combination is not allowed.

`CHECKS` need nothing but the values. `CLASS_CHECKS` are rules that a class also enforces
when it is built (a ring sector's radii, the shifted test sets' margins, the digit classes,
the energy margins): they call that class's own check function, so the rule is stated once,
next to the class, and the message before a run is the one the class would give. Those
modules import torch and Lightning (seconds), so they are imported only here, when a config
holds such a section, and validate runs these checks last.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import MISSING, fields
from typing import Any

Check = Callable[[dict[str, Any]], str | None]


def _extent(region: dict[str, Any]) -> tuple[float, float, float, float] | None:
    """(x_min, x_max, y_min, y_max) of a Disk or Annulus config (its exact bounding box)."""
    cx, cy = region["center"]
    if "radius" in region:
        r = region["radius"]
        return cx - r, cx + r, cy - r, cy + r
    if "r_out" not in region:
        return None
    start = region.get("theta_start", 0.0)
    end = region.get("theta_end", 2 * math.pi)
    # The extremes of a ring sector lie at its end angles or where it crosses an axis direction.
    angles = [start, end] + [k * math.pi / 2 for k in range(5) if start <= k * math.pi / 2 <= end]
    xs, ys = [], []
    for theta in angles:
        for r in (region.get("r_in", 0.0), region["r_out"]):
            xs.append(cx + r * math.cos(theta))
            ys.append(cy + r * math.sin(theta))
    return min(xs), max(xs), min(ys), max(ys)


def id_support_inside_box(cfg: dict[str, Any]) -> str | None:
    """Evaluation and OOD points are drawn from data.box: every ID region must lie inside it.

    No class checks this (a datamodule samples the box it is given), so this is the rule's one
    statement; it needs no import, so a bad box is answered at once.
    """
    data = cfg.get("data") or {}
    if "box" not in data:
        return None
    low, high = data["box"]
    regions = [(f"data.disks[{i}]", d) for i, d in enumerate(data.get("disks") or [])]
    regions += [
        (f"data.classes[{i}].region", c["region"]) for i, c in enumerate(data.get("classes") or [])
    ]
    for name, region in regions:
        extent = _extent(region)
        if extent is None:
            continue
        if min(extent) < low - 1e-9 or max(extent) > high + 1e-9:
            x0, x1, y0, y1 = (round(e, 4) for e in extent)
            return (
                f"data.box={[low, high]} is not allowed: the box must contain the ID support, "
                f"and {name} spans x in [{x0:g}, {x1:g}], y in [{y0:g}, {y1:g}]"
            )
    return None


def _class_of(section: Any) -> type | None:
    """The class a config section's `_target_` names, or None (no target, or one that does not
    import: instantiating it reports that, in the same pre-flight)."""
    if not isinstance(section, dict) or not isinstance(section.get("_target_"), str):
        return None
    from hydra.utils import get_class

    try:
        return get_class(section["_target_"])
    except Exception:
        return None


def _is(section: Any, owner: type) -> bool:
    cls = _class_of(section)
    return cls is not None and issubclass(cls, owner)


def ring_sectors(cfg: dict[str, Any]) -> str | None:
    """Each ring sector (an Annulus region) of data.classes, by Annulus's own rule."""
    from oodmix.data.geometry import Annulus, ring_sector_problem

    defaults = {f.name: f.default for f in fields(Annulus) if f.default is not MISSING}
    for i, c in enumerate((cfg.get("data") or {}).get("classes") or []):
        region = c.get("region") if isinstance(c, dict) else None
        if not _is(region, Annulus):
            continue
        values = {**defaults, **region}
        names = ("r_in", "r_out", "theta_start", "theta_end")
        if not all(name in values for name in names):
            continue  # a missing argument: building the region reports it
        reason = ring_sector_problem(
            *(values[name] for name in names), where=f"data.classes[{i}].region"
        )
        if reason:
            return reason
    return None


def shift_margins(cfg: dict[str, Any]) -> str | None:
    """near_margin and far_margin of a ShapesDataModule (two_disks, moons, rings, blobs)."""
    from oodmix.data.shapes import ShapesDataModule, shift_margins_problem

    data = cfg.get("data") or {}
    if not _is(data, ShapesDataModule) or "near_margin" not in data or "far_margin" not in data:
        return None  # a default margin is the class's own, and allowed
    return shift_margins_problem(data["near_margin"], data["far_margin"])


def digit_classes(cfg: dict[str, Any]) -> str | None:
    """The three class lists of data=digits."""
    from oodmix.data.digits import DigitsDataModule, digit_classes_problem

    data = cfg.get("data") or {}
    names = ("id_classes", "ood_train_classes", "ood_test_classes")
    if not _is(data, DigitsDataModule) or not all(isinstance(data.get(n), list) for n in names):
        return None
    return digit_classes_problem(*(data[n] for n in names))


def energy_margins(cfg: dict[str, Any]) -> str | None:
    """margin_in and margin_out of loss=energy."""
    from oodmix.losses.energy_bounded import EnergyBoundedLoss, energy_margins_problem

    loss = cfg.get("loss") or {}
    if not _is(loss, EnergyBoundedLoss) or "margin_in" not in loss or "margin_out" not in loss:
        return None
    return energy_margins_problem(loss["margin_in"], loss["margin_out"])


#: Checks that need only the values (run with the value rules, before any import).
CHECKS: list[Check] = [id_support_inside_box]

#: Checks that call a class's own rule (run last: they import torch and Lightning).
CLASS_CHECKS: list[Check] = [ring_sectors, shift_margins, digit_classes, energy_margins]
