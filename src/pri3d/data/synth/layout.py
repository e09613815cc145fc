"""Placing objects in a room without intersections: :class:`Layout`.

Every template (:mod:`~pri3d.data.synth.furniture`) is placed with a yaw; placement keeps oriented
bounding boxes apart (separating-axis test, :func:`obb_overlap`), so nothing intersects. Floor objects
stand on ``z = 0``, wall objects touch a wall, a few objects stand on another one (a sink on a counter)
or hang from the ceiling (a shower curtain rail). Doors, windows and pictures keep the space in front of
them free. Which objects a room gets is :mod:`~pri3d.data.synth.furnish`'s job.

Walls are numbered 0..3 counter-clockwise (:func:`wall_frame`).
"""

from __future__ import annotations

import math

import numpy as np

from pri3d.data.synth.classes import WALL
from pri3d.data.synth.furniture import (
    Template,
    build_chair,
    build_curtain,
    build_door,
    build_picture,
    build_shower_curtain,
    build_window,
)
from pri3d.data.synth.materials import object_materials
from pri3d.data.synth.primitives import Prim
from pri3d.data.synth.spec import SceneObject, uniform

__all__ = ["Layout", "obb_overlap", "rect_axes", "wall_frame"]


def wall_frame(w: int, size) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """``(corner, tangent, inward normal, yaw, length)`` of wall ``w`` (0..3, counter-clockwise from the
    wall along the x axis). A wall object's local +x runs along the tangent, its local +y (front) along
    the normal."""
    Lx, Ly = float(size[0]), float(size[1])
    corner = [(0.0, 0.0), (Lx, 0.0), (Lx, Ly), (0.0, Ly)][w]
    tangent = [(1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)][w]
    normal = [(0.0, 1.0), (-1.0, 0.0), (0.0, -1.0), (1.0, 0.0)][w]
    length = Lx if w % 2 == 0 else Ly
    return np.array(corner), np.array(tangent), np.array(normal), w * math.pi / 2, length


def rect_axes(yaw: float) -> tuple[np.ndarray, np.ndarray]:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([c, s]), np.array([-s, c])


def obb_overlap(a: tuple, b: tuple, margin: float = 0.0) -> bool:
    """True when two yaw-only oriented boxes overlap (with ``margin`` metres of clearance).

    Each box is ``(center (3,), size (3,), yaw)``; the test is the 2D separating-axis test on the
    footprints plus an overlap test of the z intervals.
    """
    ca, sa, ya = a
    cb, sb, yb = b
    za0, za1 = ca[2] - sa[2] / 2, ca[2] + sa[2] / 2
    zb0, zb1 = cb[2] - sb[2] / 2, cb[2] + sb[2] / 2
    if za1 <= zb0 + 1e-6 - margin or zb1 <= za0 + 1e-6 - margin:
        return False
    ua, va = rect_axes(ya)
    ub, vb = rect_axes(yb)
    d = np.asarray(cb[:2], dtype=np.float64) - np.asarray(ca[:2], dtype=np.float64)
    for ax in (ua, va, ub, vb):
        ra = sa[0] / 2 * abs(ax @ ua) + sa[1] / 2 * abs(ax @ va)
        rb = sb[0] / 2 * abs(ax @ ub) + sb[1] / 2 * abs(ax @ vb)
        if abs(ax @ d) >= ra + rb + margin - 1e-6:
            return False
    return True


def obb_corners2d(center, size, yaw) -> np.ndarray:
    u, v = rect_axes(yaw)
    hx, hy = size[0] / 2, size[1] / 2
    return np.array([center[:2] + sx * hx * u + sy * hy * v for sx in (-1, 1) for sy in (-1, 1)])


class Layout:
    """The objects placed so far in one room, and the ways to place one more (most return the new
    :class:`SceneObject`, or None when it does not fit)."""

    def __init__(self, rng: np.random.Generator, size: np.ndarray, room_type: str, materials: str = "shared"):
        self.rng = rng
        self.size = size
        self.room_type = room_type
        self.M = object_materials(materials, rng)
        self.objects: list[SceneObject] = []
        self.blockers: list[tuple] = []  # keep-out boxes (door swings, window / picture fronts)
        self.next_instance = 7  # 1 floor, 2..5 walls, 6 ceiling
        self.door_intervals: dict[int, list[tuple[float, float]]] = {w: [] for w in range(4)}

    # -- placement primitives
    def _fits(self, box, margin=0.02) -> bool:
        c, s, yaw = box
        corners = obb_corners2d(c, s, yaw)
        Lx, Ly, Lz = self.size
        if (corners[:, 0] < -1e-6).any() or (corners[:, 0] > Lx + 1e-6).any():
            return False
        if (corners[:, 1] < -1e-6).any() or (corners[:, 1] > Ly + 1e-6).any():
            return False
        if c[2] - s[2] / 2 < -1e-6 or c[2] + s[2] / 2 > Lz + 1e-6:
            return False
        for o in self.objects:
            if obb_overlap(box, (o.center, o.size, o.yaw), margin):
                return False
        return not any(obb_overlap(box, b, 0.0) for b in self.blockers)

    def _pose_box(self, tmpl: Template, xy, yaw, z0=0.0):
        lo, hi = tmpl.parts.bounds()
        ctr_local = (lo + hi) / 2
        R = np.array([[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]])
        c_xy = np.asarray(xy, float) + R @ ctr_local[:2]
        center = np.array([c_xy[0], c_xy[1], z0 + ctr_local[2]])
        return center, hi - lo, yaw

    def add(self, tmpl: Template, xy, yaw, z0=0.0, support="floor") -> SceneObject:
        """Instantiate a template whose local origin goes to ``xy`` (world) at height ``z0``."""
        inst = self.next_instance
        self.next_instance += 1
        R = np.array([[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]])
        prims = []
        for kind, c, h, pyaw, mat in tmpl.parts.items:
            c = np.asarray(c, float)
            wxy = np.asarray(xy, float) + R @ c[:2]
            prims.append(
                Prim(
                    kind, np.array([wxy[0], wxy[1], z0 + c[2]]), np.asarray(h, float), yaw + pyaw, mat, inst, tmpl.label
                )
            )
        center, size, yaw = self._pose_box(tmpl, xy, yaw, z0)
        obj = SceneObject(inst, tmpl.label, prims, center, size, yaw, support, tmpl.kind)
        self.objects.append(obj)
        return obj

    def wall_origin(self, tmpl: Template, w: int, s: float, gap: float):
        """Local-origin position that puts the template's back ``gap`` metres off wall ``w`` with its
        footprint centred at ``s`` metres along the wall."""
        corner, tangent, normal, yaw, _ = wall_frame(w, self.size)
        lo, hi = tmpl.parts.bounds()
        # local x centre -> s, local y min (back) -> gap
        along = s - (lo[0] + hi[0]) / 2
        out = gap - lo[1]
        return corner + along * tangent + out * normal, yaw

    def try_wall(self, tmpl: Template, w=None, s=None, gap=0.04, tries=40, support="floor", z0=0.0, margin=0.03):
        lo, hi = tmpl.parts.bounds()
        half_w = (hi[0] - lo[0]) / 2
        for _ in range(tries):
            ww = int(self.rng.integers(4)) if w is None else w
            length = wall_frame(ww, self.size)[4]
            if length < 2 * half_w + 0.1:
                continue
            ss = float(self.rng.uniform(half_w + 0.05, length - half_w - 0.05)) if s is None else s
            xy, yaw = self.wall_origin(tmpl, ww, ss, gap)
            box = self._pose_box(tmpl, xy, yaw, z0)
            if self._fits(box, margin):
                obj = self.add(tmpl, xy, yaw, z0, support)
                obj.wall, obj.s = ww, ss
                return obj
            if s is not None and w is not None:
                return None
        return None

    def try_free(self, tmpl: Template, tries=40, center_bias=0.6, margin=0.5):
        Lx, Ly, _ = self.size
        lo, hi = tmpl.parts.bounds()
        r = float(np.hypot(hi[0] - lo[0], hi[1] - lo[1]) / 2)
        for _ in range(tries):
            xy = (
                np.array([Lx / 2, Ly / 2])
                + self.rng.uniform(-1, 1, 2) * np.maximum([Lx / 2 - r - 0.6, Ly / 2 - r - 0.6], 0.05) * center_bias
            )
            yaw = float(self.rng.choice([0.0, math.pi / 2])) + float(self.rng.normal(0, 0.1))
            box = self._pose_box(tmpl, xy, yaw)
            if self._fits(box, margin):
                return self.add(tmpl, xy, yaw)
        return None

    def try_at(self, tmpl: Template, xy, yaw, z0=0.0, support="floor", margin=0.03):
        box = self._pose_box(tmpl, xy, yaw, z0)
        if self._fits(box, margin):
            return self.add(tmpl, xy, yaw, z0, support)
        return None

    def wall_free(self, w: int, s0: float, s1: float, z0: float, z1: float, depth: float = 0.3) -> bool:
        """Is the slab in front of wall ``w`` between ``s0..s1`` and heights ``z0..z1`` empty?"""
        corner, tangent, normal, yaw, length = wall_frame(w, self.size)
        if s0 < 0 or s1 > length:
            return False
        c2 = corner + (s0 + s1) / 2 * tangent + depth / 2 * normal
        box = (np.array([c2[0], c2[1], (z0 + z1) / 2]), np.array([s1 - s0, depth, z1 - z0]), yaw)
        return self._fits(box, 0.0)

    def block_front(self, w: int, s0: float, s1: float, z0: float, z1: float, depth: float):
        corner, tangent, normal, yaw, _ = wall_frame(w, self.size)
        c2 = corner + (s0 + s1) / 2 * tangent + depth / 2 * normal
        self.blockers.append((np.array([c2[0], c2[1], (z0 + z1) / 2]), np.array([s1 - s0, depth, z1 - z0]), yaw))

    # -- room elements
    def door(self):
        Lz = self.size[2]
        for _ in range(30):
            w = uniform(self.rng, 0.8, 0.95)
            h = min(uniform(self.rng, 2.0, 2.1), Lz - 0.25)
            wall = int(self.rng.integers(4))
            length = wall_frame(wall, self.size)[4]
            s = uniform(self.rng, w / 2 + 0.2, length - w / 2 - 0.2)
            if not self.wall_free(wall, s - w / 2 - 0.1, s + w / 2 + 0.1, 0, h + 0.1, depth=1.0):
                continue
            tmpl = build_door(self.rng, self.M, w, h)
            obj = self.try_wall(tmpl, wall, s, gap=0.0, support="wall", margin=0.0)
            if obj is not None:
                self.block_front(wall, s - w / 2 - 0.1, s + w / 2 + 0.1, 0, h + 0.1, 1.0)
                self.door_intervals[wall].append((s - w / 2 - 0.07, s + w / 2 + 0.07))
                return obj
        return None

    def window(self, curtains_p=0.5):
        Lz = self.size[2]
        for _ in range(30):
            w = uniform(self.rng, 0.8, 1.6)
            z0 = uniform(self.rng, 0.8, 1.0)
            z1 = min(z0 + uniform(self.rng, 1.0, 1.4), Lz - 0.25)
            wall = int(self.rng.integers(4))
            length = wall_frame(wall, self.size)[4]
            if length < w + 0.6:
                continue
            s = uniform(self.rng, w / 2 + 0.3, length - w / 2 - 0.3)
            if not self.wall_free(wall, s - w / 2 - 0.06, s + w / 2 + 0.06, z0 - 0.05, z1, depth=0.4):
                continue
            obj = self.try_wall(build_window(self.rng, self.M, w, z0, z1), wall, s, gap=0.0, support="wall", margin=0.0)
            if obj is None:
                continue
            self.block_front(wall, s - w / 2 - 0.06, s + w / 2 + 0.06, z0 - 0.05, z1, 0.4)
            if self.rng.random() < curtains_p:
                mat = self.M.fabric()
                ztop = min(z1 + uniform(self.rng, 0.08, 0.25), Lz - 0.05)
                zbot = uniform(self.rng, 0.02, 0.05) if self.rng.random() < 0.7 else z0 - 0.1
                for side in (-1, 1):
                    cw = uniform(self.rng, 0.25, 0.5)
                    sc = s + side * (w / 2 + 0.07 + cw / 2)
                    if not self.wall_free(wall, sc - cw / 2, sc + cw / 2, zbot, ztop + 0.02, depth=0.2):
                        continue
                    self.try_wall(
                        build_curtain(self.rng, self.M, cw, zbot, ztop, mat),
                        wall,
                        sc,
                        gap=0.0,
                        support="wall",
                        margin=0.0,
                    )
            return obj
        return None

    def picture(self):
        Lz = self.size[2]
        for _ in range(25):
            w, h = uniform(self.rng, 0.3, 1.0), uniform(self.rng, 0.3, 0.8)
            zc = uniform(self.rng, 1.35, 1.75)
            if zc + h / 2 > Lz - 0.2:
                continue
            wall = int(self.rng.integers(4))
            length = wall_frame(wall, self.size)[4]
            if length < w + 0.4:
                continue
            s = uniform(self.rng, w / 2 + 0.2, length - w / 2 - 0.2)
            if not self.wall_free(wall, s - w / 2 - 0.05, s + w / 2 + 0.05, zc - h / 2 - 0.05, zc + h / 2 + 0.05, 0.3):
                continue
            obj = self.try_wall(build_picture(self.rng, self.M, w, h, zc), wall, s, gap=0.0, support="wall", margin=0.0)
            if obj is not None:
                return obj
        return None

    def beside(self, anchor: SceneObject, tmpl: Template, side: int, gap=0.05):
        """Against the same wall as ``anchor``, just beside it."""
        lo, hi = tmpl.parts.bounds()
        w = anchor.wall
        s = anchor.s + side * (anchor.size[0] / 2 + gap + (hi[0] - lo[0]) / 2)
        return self.try_wall(tmpl, w, s, gap=0.04)

    def in_front(self, anchor: SceneObject, tmpl: Template, dist: float, facing=True, jitter=0.15):
        """In front of ``anchor`` (along its local +y), turned to face it when ``facing``."""
        yaw = anchor.yaw
        fwd = np.array([-math.sin(yaw), math.cos(yaw)])
        lo, hi = tmpl.parts.bounds()
        depth = hi[1] - lo[1]
        centre = anchor.center[:2] + fwd * (anchor.size[1] / 2 + dist + depth / 2)
        tyaw = yaw + (math.pi if facing else 0.0) + float(self.rng.normal(0, jitter))
        ctr_local = (lo + hi) / 2
        R = np.array([[math.cos(tyaw), -math.sin(tyaw)], [math.sin(tyaw), math.cos(tyaw)]])
        xy = centre - R @ ctr_local[:2]
        return self.try_at(tmpl, xy, tyaw)

    def chairs_around(self, table: SceneObject, n: int):
        yaw = table.yaw
        R = np.array([[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]])
        sides = [(0, 1), (0, -1), (1, 0), (-1, 0)]
        order = self.rng.permutation(4)
        placed = 0
        for k in order:
            if placed >= n:
                break
            sx, sy = sides[k]
            tmpl = build_chair(self.rng, self.M)
            lo, hi = tmpl.parts.bounds()
            half_ext = table.size[0] / 2 if sx else table.size[1] / 2
            dist = half_ext + 0.12 + (hi[1] - lo[1]) / 2
            off = R @ np.array([sx * dist, sy * dist])
            centre = table.center[:2] + off
            # chair front (+y) faces the table: yaw so that local +y points along -off
            cyaw = math.atan2(off[1], off[0]) + math.pi / 2 + float(self.rng.normal(0, 0.12))
            ctr_local = (lo + hi) / 2
            Rc = np.array([[math.cos(cyaw), -math.sin(cyaw)], [math.sin(cyaw), math.cos(cyaw)]])
            if self.try_at(tmpl, centre - Rc @ ctr_local[:2], cyaw, margin=0.05) is not None:
                placed += 1
        return placed

    def add_on(self, base: SceneObject, tmpl: Template, top_z: float):
        """Put ``tmpl`` on top of ``base`` (at ``top_z``), near the middle of its top, facing the same way."""
        lo, hi = tmpl.parts.bounds()
        yaw = base.yaw
        R = np.array([[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]])
        room = max(0.0, base.size[0] / 2 - (hi[0] - lo[0]) / 2 - 0.1)
        off_x = float(self.rng.uniform(-room, room))
        xy = base.center[:2] + R @ np.array([off_x, 0.0]) - R @ ((lo + hi) / 2)[:2]
        box = self._pose_box(tmpl, xy, yaw, top_z)
        others = [o for o in self.objects if o is not base]
        if any(obb_overlap(box, (o.center, o.size, o.yaw), 0.01) for o in others):
            return None
        return self.add(tmpl, xy, yaw, top_z, support=f"on:{base.instance}")

    def add_shower_curtain(self, tub: SceneObject):
        Lz = float(self.size[2])
        rim = tub.center[2] + tub.size[2] / 2
        # along the tub's front edge, just inside it, from above the rim to a ceiling rail
        tmpl = build_shower_curtain(
            self.rng, self.M, float(tub.size[0]) - 0.04, 0.0, rim + 0.08, min(2.05, Lz - 0.3), Lz
        )
        yaw = tub.yaw
        fwd = np.array([-math.sin(yaw), math.cos(yaw)])
        xy = tub.center[:2] + fwd * (tub.size[1] / 2 - 0.08)
        box = self._pose_box(tmpl, xy, yaw)
        others = [o for o in self.objects if o is not tub]
        if any(obb_overlap(box, (o.center, o.size, o.yaw), 0.0) for o in others) or not self._fits_room(box):
            return None
        return self.add(tmpl, xy, yaw, 0.0, support="ceiling")

    def _fits_room(self, box) -> bool:
        c, s, yaw = box
        corners = obb_corners2d(c, s, yaw)
        Lx, Ly, Lz = self.size
        return bool(
            (corners >= -1e-6).all()
            and (corners[:, 0] <= Lx + 1e-6).all()
            and (corners[:, 1] <= Ly + 1e-6).all()
            and c[2] + s[2] / 2 <= Lz + 1e-6
        )

    def baseboards(self, wall_instances: list[int]) -> list[Prim]:
        mat = self.M.paint(light=True) if self.rng.random() < 0.6 else self.M.wood()
        h, t = uniform(self.rng, 0.06, 0.1), 0.012
        prims = []
        for w in range(4):
            corner, tangent, normal, yaw, length = wall_frame(w, self.size)
            cuts = sorted(self.door_intervals[w])
            segs, s0 = [], 0.0
            for a, b in cuts:
                if a > s0:
                    segs.append((s0, a))
                s0 = max(s0, b)
            if s0 < length:
                segs.append((s0, length))
            for a, b in segs:
                if b - a < 0.02:
                    continue
                c2 = corner + (a + b) / 2 * tangent + t / 2 * normal
                prims.append(
                    Prim("box", [c2[0], c2[1], h / 2], [(b - a) / 2, t / 2, h / 2], yaw, mat, wall_instances[w], WALL)
                )
        return prims
