"""Checks that involve several keys at once, run on a composed config (see validation.validate).

Each check returns None or the one-line reason why the combination is not allowed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any


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
    """Evaluation and OOD points are drawn from data.box: every ID region must lie inside it."""
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


def margins_ordered(cfg: dict[str, Any]) -> str | None:
    data = cfg.get("data") or {}
    near, far = data.get("near_margin"), data.get("far_margin")
    if near is not None and far is not None and near > far:
        return (
            f"data.near_margin={near} is not allowed: it must be <= data.far_margin={far} "
            "(near OOD lies closer to the ID support than far OOD)"
        )
    return None


def ring_sectors_ordered(cfg: dict[str, Any]) -> str | None:
    """Each ring sector (Annulus) needs r_in < r_out and theta_start < theta_end."""
    for i, c in enumerate((cfg.get("data") or {}).get("classes") or []):
        region, where = c.get("region") or {}, f"data.classes[{i}].region"
        if "r_out" not in region:
            continue  # a disk
        pairs = [("r_in", region.get("r_in", 0.0), "r_out", region["r_out"])]
        pairs.append(
            ("theta_start", region.get("theta_start", 0.0),
             "theta_end", region.get("theta_end", 2 * math.pi))
        )  # fmt: skip
        for low_key, low, high_key, high in pairs:
            if not low < high:
                return f"{where}.{low_key}={low} is not allowed: it must be below {high_key}={high}"
    return None


def digit_classes_disjoint(cfg: dict[str, Any]) -> str | None:
    data = cfg.get("data") or {}
    names = ("id_classes", "ood_train_classes", "ood_test_classes")
    if not all(isinstance(data.get(n), list) for n in names):
        return None
    seen: dict[int, str] = {}
    for name in names:
        for digit in data[name]:
            if digit in seen and seen[digit] != name:
                return (
                    f"data.{name}={data[name]} is not allowed: digit {digit} is also in "
                    f"data.{seen[digit]} (the three class lists must not overlap)"
                )
            seen[digit] = name
    return None


def energy_margins_ordered(cfg: dict[str, Any]) -> str | None:
    loss = cfg.get("loss") or {}
    m_in, m_out = loss.get("margin_in"), loss.get("margin_out")
    if m_in is not None and m_out is not None and not m_in < m_out:
        return f"loss.margin_in={m_in} is not allowed: it must be below loss.margin_out={m_out}"
    return None


CHECKS: list[Callable[[dict[str, Any]], str | None]] = [
    id_support_inside_box,
    margins_ordered,
    ring_sectors_ordered,
    digit_classes_disjoint,
    energy_margins_ordered,
]
