"""Data-efficient training subsets (20 %, 40 %, ... of the training set).

A subset is chosen by **scene** (whole scenes, the official ScanNet practice) or by **image**. Each
unit (a scene id, or ``scene/frame``) gets a rank from a hash of ``(seed, unit)``; a fraction keeps the
``ceil(fraction * n)`` lowest-ranked units. Therefore:

* the same seed gives the same subset, on any machine and in any listing order;
* a smaller fraction's subset is contained in a larger one's (same seed);
* a different seed gives a different subset.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from pri3d.errors import ConfigError

__all__ = ["check_fraction", "rank_key", "select_units", "select_fraction"]

FRACTION_BY = ("scene", "image")


def check_fraction(fraction: float) -> float:
    """Return ``fraction`` as a float, or raise :class:`ConfigError` unless it is in (0, 1]."""
    try:
        f = float(fraction)
    except (TypeError, ValueError):
        raise ConfigError(f"fraction must be a number in (0, 1], got {fraction!r}") from None
    if not (0.0 < f <= 1.0) or math.isnan(f):
        raise ConfigError(f"fraction must be in (0, 1] (e.g. 0.2 for 20 %), got {fraction!r}")
    return f


def rank_key(seed: int, unit: str) -> bytes:
    """A stable pseudo-random sort key for ``unit`` under ``seed`` (platform and order independent)."""
    return hashlib.sha256(f"{int(seed)}\x00{unit}".encode()).digest()


def select_units(units: Sequence[str], fraction: float, seed: int) -> list[str]:
    """The ``ceil(fraction * len(units))`` units (at least one) with the lowest rank keys, returned in
    their original order."""
    f = check_fraction(fraction)
    units = list(units)
    if len(set(units)) != len(units):
        raise ValueError("select_units: units must be unique")
    if f >= 1.0 or not units:
        return units
    n = max(1, math.ceil(f * len(units) - 1e-9))
    keep = set(sorted(units, key=lambda u: rank_key(seed, u))[:n])
    return [u for u in units if u in keep]


def select_fraction(
    items: Sequence[tuple[str, int]], fraction: float, *, by: str = "scene", seed: int = 0
) -> list[tuple[str, int]]:
    """Subset of ``items`` (``(scene_id, frame_id)`` pairs), keeping the original order.

    ``by="scene"`` keeps every image of the chosen scenes; ``by="image"`` chooses images directly.
    """
    if by not in FRACTION_BY:
        raise ConfigError(f"fraction_by must be one of {', '.join(FRACTION_BY)}, got {by!r}")
    check_fraction(fraction)
    items = list(items)
    if by == "scene":
        scenes = list(dict.fromkeys(s for s, _ in items))
        keep = set(select_units(scenes, fraction, seed))
        return [it for it in items if it[0] in keep]
    keys = [f"{s}/{f}" for s, f in items]
    keep = set(select_units(keys, fraction, seed))
    return [it for it, k in zip(items, keys) if k in keep]
