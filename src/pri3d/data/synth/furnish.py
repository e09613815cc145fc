"""What goes in a room of each type: :func:`furnish` fills a :class:`~pri3d.data.synth.layout.Layout`.

Openings first (doors, windows with curtains), then the furniture groups of the room type (a bed with
nightstands, a sofa with a coffee table, a counter with a sink, a table with chairs, ...), then filler
furniture until the room holds about one floor object per 2.5 m^2, then pictures. Shape statistics are
shared per class; appearance varies. Every step draws from the scene's random generator, so the order of
the steps is part of the scene (never reorder them).
"""

from __future__ import annotations

from pri3d.data.synth.furniture import (
    build_bathtub,
    build_bed,
    build_bookshelf,
    build_cabinet,
    build_chair,
    build_counter,
    build_desk,
    build_otherfurniture,
    build_refrigerator,
    build_sink,
    build_sofa,
    build_table,
    build_toilet,
)
from pri3d.data.synth.layout import Layout
from pri3d.data.synth.spec import uniform

__all__ = ["furnish"]


def furnish(L: Layout, room_type: str) -> None:
    """Room contents by type (shape statistics are shared per class, appearance varies)."""
    _openings(L, room_type)
    if room_type in ("bedroom", "studio"):
        _sleeping_area(L)
    if room_type in ("living", "studio"):
        _sitting_area(L)
    if room_type in ("kitchen", "studio"):
        _kitchen_area(L, room_type)
    if room_type in ("kitchen", "living", "studio") or (room_type == "office" and _maybe(L, 0.4)):
        _dining_table(L)
    if room_type == "bathroom":
        _bathroom(L)
    if room_type in ("office", "bedroom", "studio"):
        _desks(L, room_type)
    if room_type == "office":
        _office_storage(L)
    if room_type == "bedroom" and _maybe(L, 0.4):
        L.try_wall(build_bookshelf(L.rng, L.M))
    _fill(L, room_type)
    _pictures(L, room_type)


def _maybe(L: Layout, p: float) -> bool:
    return L.rng.random() < p


def _openings(L: Layout, room_type: str) -> None:
    """One door (a second one in some living rooms and studios), then the windows."""
    rng = L.rng
    L.door()
    if room_type in ("living", "studio") and rng.random() < 0.4:
        L.door()
    n_win = {  # every entry is drawn, whichever room type (the draws are part of the scene)
        "bathroom": int(rng.integers(0, 2)),
        "living": int(rng.integers(1, 4)),
        "studio": int(rng.integers(2, 4)),
    }.get(room_type, int(rng.integers(1, 3)))
    for _ in range(n_win):
        L.window(curtains_p=0.25 if room_type == "bathroom" else 0.6)


def _sleeping_area(L: Layout) -> None:
    """A bed against a wall with nightstands beside it, a tall cabinet and a dresser."""
    rng, M = L.rng, L.M
    bed = L.try_wall(build_bed(rng, M))
    if bed is not None:
        for side in (-1, 1):
            if _maybe(L, 0.7):
                L.beside(bed, build_otherfurniture(rng, M, "nightstand"), side)
    if _maybe(L, 0.7):
        L.try_wall(build_cabinet(rng, M, tall=True))
    if _maybe(L, 0.5):
        L.try_wall(build_otherfurniture(rng, M, "dresser"))


def _sitting_area(L: Layout) -> None:
    """A sofa with a coffee table in front, maybe a second sofa, bookshelves, a low cabinet, an ottoman."""
    rng, M = L.rng, L.M
    sofa = L.try_wall(build_sofa(rng, M))
    if sofa is not None and _maybe(L, 0.8):
        L.in_front(sofa, build_table(rng, M, coffee=True), uniform(rng, 0.35, 0.5), facing=False, jitter=0.05)
    if _maybe(L, 0.4):
        L.try_wall(build_sofa(rng, M))
    for _ in range(int(rng.integers(0, 3))):
        L.try_wall(build_bookshelf(rng, M))
    if _maybe(L, 0.6):
        L.try_wall(build_cabinet(rng, M, tall=False))
    if _maybe(L, 0.5):
        L.try_free(build_otherfurniture(rng, M, "ottoman"), margin=0.4)


def _kitchen_area(L: Layout, room_type: str) -> None:
    """A counter with a vessel sink on its top (a second counter in some kitchens), a refrigerator and a
    tall cabinet."""
    rng, M = L.rng, L.M
    counter = L.try_wall(build_counter(rng, M), gap=0.015)
    if counter is not None:
        L.add_on(counter, build_sink(rng, M, on_counter=True), top_z=float(counter.center[2] + counter.size[2] / 2))
    if room_type == "kitchen" and _maybe(L, 0.5):
        L.try_wall(build_counter(rng, M), gap=0.015)
    L.try_wall(build_refrigerator(rng, M), gap=0.03)
    if _maybe(L, 0.6):
        L.try_wall(build_cabinet(rng, M, tall=True))


def _dining_table(L: Layout) -> None:
    """A table away from the walls with two to four chairs around it."""
    rng, M = L.rng, L.M
    table = L.try_free(build_table(rng, M), margin=0.75)
    if table is not None:
        L.chairs_around(table, int(rng.integers(2, 5)))


def _bathroom(L: Layout) -> None:
    """A bathtub with a shower curtain, a toilet, a sink, maybe a low cabinet and a basket."""
    rng, M = L.rng, L.M
    tub = L.try_wall(build_bathtub(rng, M), gap=0.015)
    if tub is not None:
        L.add_shower_curtain(tub)
    L.try_wall(build_toilet(rng, M), gap=0.015)
    L.try_wall(build_sink(rng, M), gap=0.015)
    if _maybe(L, 0.5):
        L.try_wall(build_cabinet(rng, M, tall=False))
    if _maybe(L, 0.5):
        L.try_wall(build_otherfurniture(rng, M, "basket"))


def _desks(L: Layout, room_type: str) -> None:
    """Desks against the walls, each with a chair in front (one to three in an office, maybe one elsewhere)."""
    rng, M = L.rng, L.M
    for _ in range(int(rng.integers(1, 4)) if room_type == "office" else int(_maybe(L, 0.6))):
        desk = L.try_wall(build_desk(rng, M))
        if desk is not None:
            L.in_front(desk, build_chair(rng, M), uniform(rng, 0.05, 0.2))


def _office_storage(L: Layout) -> None:
    """Bookshelves and cabinets, maybe a basket."""
    rng, M = L.rng, L.M
    for _ in range(int(rng.integers(1, 3))):
        L.try_wall(build_bookshelf(rng, M))
    for _ in range(int(rng.integers(1, 3))):
        L.try_wall(build_cabinet(rng, M))
    if _maybe(L, 0.5):
        L.try_free(build_otherfurniture(rng, M, "basket"), margin=0.4)


def _pictures(L: Layout, room_type: str) -> None:
    """Up to two pictures (one more outside bathrooms, maybe one more in a bathroom)."""
    rng = L.rng
    for _ in range(int(rng.integers(0, 3)) + (1 if room_type != "bathroom" else 0)):
        L.picture()
    if room_type == "bathroom" and _maybe(L, 0.5):
        L.picture()


_FILL = {
    "bedroom": ("cabinet", "otherfurniture", "bookshelf", "desk", "chair"),
    "living": ("cabinet", "bookshelf", "otherfurniture", "chair", "table", "cabinet"),
    "kitchen": ("cabinet", "counter", "chair", "otherfurniture", "cabinet"),
    "bathroom": ("cabinet", "otherfurniture"),
    "office": ("desk", "cabinet", "bookshelf", "otherfurniture", "table", "chair"),
    "studio": ("cabinet", "bookshelf", "otherfurniture", "chair", "desk", "table", "counter"),
}


def _fill(L: Layout, room_type: str) -> None:
    """Add furniture until the room holds about one floor object per 2.5 m^2 (or nothing fits)."""
    rng, M = L.rng, L.M
    area = float(L.size[0] * L.size[1])
    target = int(area / 2.5)
    pool = _FILL[room_type]
    for _ in range(3 * target):
        n_floor = sum(o.support == "floor" for o in L.objects)
        if n_floor >= target:
            break
        what = pool[int(rng.integers(len(pool)))]
        if what == "cabinet":
            L.try_wall(build_cabinet(rng, M), tries=10)
        elif what == "bookshelf":
            L.try_wall(build_bookshelf(rng, M), tries=10)
        elif what == "otherfurniture":
            tmpl = build_otherfurniture(rng, M)
            if tmpl.kind in ("ottoman", "basket") and rng.random() < 0.5:
                L.try_free(tmpl, tries=10, margin=0.4)
            else:
                L.try_wall(tmpl, tries=10)
        elif what == "chair":
            L.try_wall(build_chair(rng, M), tries=10, gap=0.08)
        elif what == "desk":
            desk = L.try_wall(build_desk(rng, M), tries=10)
            if desk is not None:
                L.in_front(desk, build_chair(rng, M), uniform(rng, 0.05, 0.2))
        elif what == "table":
            if rng.random() < 0.5:
                L.try_wall(build_table(rng, M, coffee=True), tries=10)
            else:
                table = L.try_free(build_table(rng, M), tries=10, margin=0.75)
                if table is not None:
                    L.chairs_around(table, int(rng.integers(1, 4)))
        elif what == "counter":
            L.try_wall(build_counter(rng, M), tries=10, gap=0.015)
