"""Procedural room layouts: a room with doors, windows and furniture built from primitives.

World frame: z up, the room spans ``[0, Lx] x [0, Ly] x [0, Lz]`` metres, floor at ``z = 0``.
Every object is built in a local frame (x along its width, +y its front, z up, footprint centred on
the origin) from boxes and vertical cylinders, then placed with a yaw. Placement keeps oriented
bounding boxes apart (separating-axis test), so nothing intersects; floor objects stand on ``z = 0``,
wall objects touch a wall, a few objects stand on another one (a sink on a counter) or hang from
the ceiling (a shower curtain rail).

:func:`build_scene` is a pure function of ``(seed, index)``: the same call always gives the same
scene, whichever process runs it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from pri3d.data.synth.classes import CEILING, CLASSES, FLOOR, NAME_TO_ID, WALL
from pri3d.data.synth.primitives import Prim
from pri3d.data.synth.textures import Material, srgb_to_linear

__all__ = [
    "MATERIAL_MODES",
    "ROOM_TYPES",
    "SceneObject",
    "Light",
    "SceneSpec",
    "build_scene",
    "obb_overlap",
    "scene_rng",
]

ROOM_TYPES = ("bedroom", "living", "kitchen", "bathroom", "office", "studio")

# Room footprint ranges (metres) per type; the height is 2.5-3.0 m everywhere.
_ROOM_SIZE = {
    "bedroom": (3.4, 5.0),
    "living": (4.5, 7.0),
    "kitchen": (3.5, 5.5),
    "bathroom": (3.0, 4.0),
    "office": (4.0, 6.0),
    "studio": (5.5, 7.0),
}

# Walls in counter-clockwise order: (room face index, corner, tangent, inward normal, yaw).
# A wall object's local +x runs along the tangent and its local +y (front) along the normal.
_WALL_FACE = (2, 1, 3, 0)


def _wall_frame(w: int, size) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    Lx, Ly = float(size[0]), float(size[1])
    corner = [(0.0, 0.0), (Lx, 0.0), (Lx, Ly), (0.0, Ly)][w]
    tangent = [(1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)][w]
    normal = [(0.0, 1.0), (-1.0, 0.0), (0.0, -1.0), (1.0, 0.0)][w]
    length = Lx if w % 2 == 0 else Ly
    return np.array(corner), np.array(tangent), np.array(normal), w * math.pi / 2, length


def scene_rng(seed: int, index: int, stream: int = 0, *extra: int) -> np.random.Generator:
    """The random generator of one scene (stream 0: layout, 1: trajectory, 2: frames)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index), int(stream), *map(int, extra)]))


# ----------------------------------------------------------------------------- data structures


@dataclass
class SceneObject:
    """One instance. ``center``/``size``/``yaw`` give its oriented bounding box (world; size along the
    local axes; z from ``center[2] - size[2] / 2``). ``support`` is ``"floor"``, ``"wall"``,
    ``"ceiling"``, ``"room"`` (walls, floor and ceiling themselves) or ``"on:<instance id>"``."""

    instance: int
    label: int
    prims: list[Prim]
    center: np.ndarray
    size: np.ndarray
    yaw: float
    support: str
    kind: str = ""  # builder variant (e.g. "nightstand" for an otherfurniture)
    wall: int | None = None  # the wall it stands against or hangs on (0..3), if any
    s: float = 0.0  # its position along that wall (metres)

    @property
    def name(self) -> str:
        return CLASSES[self.label]

    def to_dict(self) -> dict:
        return {
            "id": int(self.instance),
            "class_id": int(self.label),
            "class": self.name,
            "kind": self.kind,
            "support": self.support,
            "box": {
                "center": [round(float(v), 5) for v in self.center],
                "size": [round(float(v), 5) for v in self.size],
                "yaw": round(float(self.yaw), 6),
            },
        }


@dataclass
class Light:
    position: np.ndarray  # (3,) world
    color: np.ndarray  # (3,) linear RGB intensity


@dataclass
class SceneSpec:
    """Everything needed to render and mesh one scene."""

    seed: int
    index: int
    room_type: str
    size: np.ndarray  # (3,) Lx, Ly, Lz
    room_materials: list[Material]  # per room face 0..5 (see primitives.intersect_room)
    room_instances: list[int]  # per room face
    objects: list[SceneObject]  # room structure first (walls, floor, ceiling), then furniture
    lights: list[Light]
    ambient: np.ndarray  # (3,) linear RGB
    floor_occlusion: np.ndarray  # (nx, ny) float32 in [0, 1], cell = occlusion_cell metres
    occlusion_cell: float
    prims: list[Prim] = field(default_factory=list)

    @property
    def scene_id(self) -> str:
        return f"scene{self.index:04d}_00"

    def instance_labels(self) -> dict[int, int]:
        return {o.instance: o.label for o in self.objects}


# ----------------------------------------------------------------------------- geometry helpers


def _rect_axes(yaw: float) -> tuple[np.ndarray, np.ndarray]:
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
    ua, va = _rect_axes(ya)
    ub, vb = _rect_axes(yb)
    d = np.asarray(cb[:2], dtype=np.float64) - np.asarray(ca[:2], dtype=np.float64)
    for ax in (ua, va, ub, vb):
        ra = sa[0] / 2 * abs(ax @ ua) + sa[1] / 2 * abs(ax @ va)
        rb = sb[0] / 2 * abs(ax @ ub) + sb[1] / 2 * abs(ax @ vb)
        if abs(ax @ d) >= ra + rb + margin - 1e-6:
            return False
    return True


def _obb_corners2d(center, size, yaw) -> np.ndarray:
    u, v = _rect_axes(yaw)
    hx, hy = size[0] / 2, size[1] / 2
    return np.array([center[:2] + sx * hx * u + sy * hy * v for sx in (-1, 1) for sy in (-1, 1)])


# ----------------------------------------------------------------------------- materials


def _lin(rgb255) -> tuple:
    return tuple(float(v) for v in srgb_to_linear(np.asarray(rgb255, dtype=np.float64) / 255.0))


_WOODS = [(181, 136, 99), (140, 98, 62), (105, 70, 45), (201, 164, 120), (90, 60, 40), (160, 120, 80), (222, 190, 150)]
_WALL_PAINTS = [
    (236, 234, 228),
    (240, 232, 214),
    (219, 224, 230),
    (200, 212, 200),
    (232, 214, 198),
    (212, 204, 222),
    (190, 206, 216),
    (225, 225, 225),
    (245, 238, 225),
    (208, 200, 184),
]
_FURN_PAINTS = [
    (244, 244, 242),
    (62, 62, 64),
    (32, 32, 36),
    (48, 68, 108),
    (88, 120, 92),
    (158, 54, 44),
    (200, 172, 122),
    (120, 120, 125),
    (232, 226, 210),
    (80, 50, 40),
]
_FABRICS = [
    (122, 42, 40),
    (40, 62, 112),
    (72, 102, 72),
    (182, 160, 130),
    (92, 92, 98),
    (204, 192, 172),
    (150, 110, 60),
    (62, 42, 72),
    (182, 82, 62),
    (232, 222, 202),
    (30, 30, 34),
    (86, 140, 160),
    (200, 150, 160),
    (110, 120, 60),
]
_BOOKS = [
    (150, 30, 30),
    (30, 60, 130),
    (30, 100, 50),
    (200, 170, 60),
    (230, 225, 210),
    (40, 40, 40),
    (120, 60, 110),
    (210, 100, 40),
    (60, 140, 150),
    (170, 150, 120),
]
_ARTS = [
    ((220, 180, 60), (40, 70, 120)),
    ((200, 60, 50), (240, 230, 210)),
    ((60, 120, 80), (230, 210, 160)),
    ((30, 30, 40), (200, 200, 190)),
    ((120, 170, 210), (250, 240, 220)),
    ((160, 80, 140), (240, 200, 120)),
]


class _Materials:
    """Samples per-instance materials: class-typical families, colours and scales varied."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self._n = 0

    def _jitter(self, rgb255, amount=0.07) -> tuple:
        c = np.asarray(rgb255, dtype=np.float64) * np.exp(self.rng.normal(0, amount, 3)) * self.rng.uniform(0.9, 1.1)
        return _lin(np.clip(c, 0, 255))

    def _make(self, **kw) -> Material:
        self._n += 1
        kw.setdefault("offset", tuple(float(v) for v in self.rng.uniform(-20, 20, 3)))
        kw.setdefault("seed", int(self.rng.integers(1 << 30)))
        return Material(**kw)

    def pick(self, options):
        return options[int(self.rng.integers(len(options)))]

    def wood(self, axis=0) -> Material:
        base = self.pick(_WOODS)
        c0 = self._jitter(base)
        c1 = tuple(v * self.rng.uniform(0.45, 0.7) for v in c0)
        return self._make(
            kind="wood",
            color0=c0,
            color1=c1,
            scale=float(self.rng.uniform(0.008, 0.03)),
            axis=axis,
            ks=float(self.rng.uniform(0.05, 0.25)),
            shininess=float(self.rng.uniform(15, 50)),
        )

    def paint(self, light=False) -> Material:
        c0 = self._jitter(self.pick(_WALL_PAINTS if light else _FURN_PAINTS), 0.04)
        return self._make(
            kind="solid", color0=c0, ks=float(self.rng.uniform(0.02, 0.2)), shininess=float(self.rng.uniform(8, 40))
        )

    def surface(self, light=False, axis=0) -> Material:
        """A furniture surface: wood or paint."""
        return self.wood(axis) if self.rng.random() < 0.55 else self.paint(light)

    def fabric(self) -> Material:
        c0 = self._jitter(self.pick(_FABRICS))
        r = self.rng.random()
        if r < 0.15:  # plaid / checked fabric
            c1 = self._jitter(self.pick(_FABRICS))
            return self._make(
                kind="checker", color0=c0, color1=c1, scale=float(self.rng.uniform(0.04, 0.15)), ks=0.02, shininess=4.0
            )
        if r < 0.25:
            c1 = tuple(v * self.rng.uniform(0.5, 0.8) for v in c0)
            return self._make(
                kind="stripes", color0=c0, color1=c1, scale=float(self.rng.uniform(0.03, 0.1)), ks=0.02, shininess=4.0
            )
        c1 = tuple(v * self.rng.uniform(0.6, 0.85) for v in c0)
        return self._make(
            kind="fabric", color0=c0, color1=c1, scale=float(self.rng.uniform(0.05, 0.3)), ks=0.03, shininess=5.0
        )

    def metal(self) -> Material:
        c0 = self._jitter(self.pick([(185, 185, 190), (120, 120, 126), (205, 205, 210), (60, 60, 64)]), 0.03)
        c1 = tuple(v * 0.8 for v in c0)
        return self._make(
            kind="noise",
            color0=c0,
            color1=c1,
            scale=float(self.rng.uniform(0.01, 0.05)),
            ks=float(self.rng.uniform(0.4, 0.7)),
            shininess=float(self.rng.uniform(30, 80)),
        )

    def ceramic(self) -> Material:
        c0 = self._jitter(self.pick([(246, 246, 243), (236, 239, 242), (240, 236, 228)]), 0.02)
        return self._make(
            kind="solid", color0=c0, ks=float(self.rng.uniform(0.5, 0.8)), shininess=float(self.rng.uniform(60, 120))
        )

    def stone(self) -> Material:
        pair = self.pick(
            [
                ((210, 208, 200), (90, 90, 92)),
                ((60, 60, 62), (20, 20, 22)),
                ((190, 170, 150), (110, 90, 80)),
                ((235, 235, 232), (170, 170, 175)),
            ]
        )
        return self._make(
            kind="noise",
            color0=self._jitter(pair[0], 0.03),
            color1=self._jitter(pair[1], 0.03),
            scale=float(self.rng.uniform(0.01, 0.06)),
            ks=float(self.rng.uniform(0.3, 0.6)),
            shininess=60.0,
        )

    def art(self) -> Material:
        a, b = self.pick(_ARTS)
        kind = self.pick(["noise", "noise", "checker", "stripes"])
        return self._make(
            kind=kind,
            color0=self._jitter(a, 0.1),
            color1=self._jitter(b, 0.1),
            scale=float(self.rng.uniform(0.04, 0.2)),
            ks=0.1,
            shininess=30.0,
        )

    def books(self, half_height: float) -> Material:
        pal = tuple(self._jitter(self.pick(_BOOKS), 0.1) for _ in range(6))
        return self._make(
            kind="books",
            color0=pal[0],
            color1=_lin((40, 32, 28)),
            scale=float(self.rng.uniform(0.025, 0.045)),
            palette=pal,
            half_height=half_height,
            ks=0.08,
            shininess=20.0,
        )

    def glass(self) -> Material:
        sky = self.rng.uniform(1.2, 2.2) * np.array([0.85, 0.95, 1.1]) * np.exp(self.rng.normal(0, 0.05, 3))
        return self._make(
            kind="glass",
            color0=_lin((120, 140, 160)),
            ks=0.9,
            shininess=200.0,
            emission=tuple(float(v) for v in sky),
            depth_dropout=1.0,
        )

    def wall(self, room_type: str) -> Material:
        if room_type == "bathroom" and self.rng.random() < 0.6:
            return self._make(
                kind="tiles",
                color0=self._jitter(self.pick([(235, 235, 230), (200, 220, 230), (225, 215, 195)]), 0.03),
                color1=_lin((170, 170, 165)),
                scale=float(self.rng.uniform(0.1, 0.3)),
                ks=0.4,
                shininess=60.0,
            )
        if self.rng.random() < 0.2:
            c0 = self._jitter(self.pick(_WALL_PAINTS), 0.03)
            c1 = tuple(v * self.rng.uniform(0.8, 0.93) for v in c0)
            return self._make(
                kind="stripes", color0=c0, color1=c1, scale=float(self.rng.uniform(0.05, 0.2)), ks=0.03, shininess=8.0
            )
        return self.paint(light=True)

    def floor(self, room_type: str) -> Material:
        r = self.rng.random()
        if room_type in ("bathroom", "kitchen") and r < 0.75:
            return self._make(
                kind="tiles",
                color0=self._jitter(self.pick([(200, 200, 195), (150, 140, 130), (230, 225, 215), (90, 90, 95)]), 0.05),
                color1=_lin((110, 105, 100)),
                scale=float(self.rng.uniform(0.2, 0.6)),
                ks=0.3,
                shininess=40.0,
            )
        if room_type in ("bedroom", "office") and r < 0.35:
            c0 = self._jitter(self.pick(_FABRICS))
            return self._make(
                kind="noise",
                color0=c0,
                color1=tuple(v * 0.7 for v in c0),
                scale=float(self.rng.uniform(0.01, 0.04)),
                ks=0.01,
                shininess=3.0,
            )
        base = self.pick(_WOODS)
        c0 = self._jitter(base)
        return self._make(
            kind="planks",
            color0=c0,
            color1=tuple(v * self.rng.uniform(0.5, 0.75) for v in c0),
            scale=float(self.rng.uniform(0.1, 0.22)),
            ks=float(self.rng.uniform(0.1, 0.35)),
            shininess=30.0,
        )

    def ceiling(self) -> Material:
        return self._make(kind="solid", color0=self._jitter((240, 240, 238), 0.02), ks=0.01, shininess=4.0)


# Every colour an object may take in `shared` mode: the union of the class-typical families above.
_SHARED_COLOURS = [
    *_WOODS,
    *_FURN_PAINTS,
    *_FABRICS,
    *_BOOKS,
    (185, 185, 190),
    (120, 120, 126),
    (205, 205, 210),
    (60, 60, 64),
    (246, 246, 243),
    (236, 239, 242),
    (240, 236, 228),
    (210, 208, 200),
    (60, 60, 62),
    (190, 170, 150),
    *(c for pair in _ARTS for c in pair),
]
_SHARED_KINDS = ["solid", "solid", "wood", "fabric", "checker", "stripes", "noise"]

MATERIAL_MODES = ("shared", "class")


class _SharedMaterials(_Materials):
    """Object materials from one palette shared by every class (`materials: shared`).

    Real rooms hold chairs, beds and cabinets of any colour, so the class should be carried by shape,
    size, placement and geometry, not by colour or texture. Every object material (furniture
    surfaces, fabrics, metal, ceramic, stone, pictures, book spines) draws its pattern kind, colours,
    scale and gloss from the same class-independent distribution. Walls, floors, ceilings, door and
    window frames (light paints, tiles, planks) keep their room-typical materials, as in real rooms;
    window glass stays glass (what the camera sees through it)."""

    def _any(self, axis: int = 0) -> Material:
        kind = self.pick(_SHARED_KINDS)
        c0 = self._jitter(self.pick(_SHARED_COLOURS), 0.1)
        if kind == "checker":
            c1 = self._jitter(self.pick(_SHARED_COLOURS), 0.1)
        else:
            c1 = tuple(v * self.rng.uniform(0.45, 0.85) for v in c0)
        scale = {
            "wood": (0.008, 0.03),
            "fabric": (0.05, 0.3),
            "checker": (0.04, 0.15),
            "stripes": (0.03, 0.1),
            "noise": (0.01, 0.06),
        }.get(kind, (0.05, 0.2))
        return self._make(
            kind=kind,
            color0=c0,
            color1=c1,
            scale=float(self.rng.uniform(*scale)),
            axis=axis,
            ks=float(np.exp(self.rng.uniform(np.log(0.02), np.log(0.7)))),
            shininess=float(np.exp(self.rng.uniform(np.log(4.0), np.log(120.0)))),
        )

    def wood(self, axis=0) -> Material:
        return self._any(axis)

    def paint(self, light=False) -> Material:
        return super().paint(light=True) if light else self._any()

    def fabric(self) -> Material:
        return self._any()

    def metal(self) -> Material:
        return self._any()

    def ceramic(self) -> Material:
        return self._any()

    def stone(self) -> Material:
        return self._any()

    def art(self) -> Material:
        return self._any()

    def books(self, half_height: float) -> Material:
        pal = tuple(self._jitter(self.pick(_SHARED_COLOURS), 0.1) for _ in range(6))
        return self._make(
            kind="books",
            color0=pal[0],
            color1=_lin((40, 32, 28)),  # the dark gaps between books
            scale=float(self.rng.uniform(0.025, 0.045)),
            palette=pal,
            half_height=half_height,
            ks=0.08,
            shininess=20.0,
        )


# ----------------------------------------------------------------------------- object builders


class _Parts:
    """Collects primitives of one object in its local frame (x width, +y front, z up)."""

    def __init__(self):
        self.items: list[tuple] = []

    def box(self, x0, x1, y0, y1, z0, z1, mat: Material, yaw: float = 0.0):
        c = ((x0 + x1) / 2, (y0 + y1) / 2, (z0 + z1) / 2)
        h = (abs(x1 - x0) / 2, abs(y1 - y0) / 2, abs(z1 - z0) / 2)
        self.items.append(("box", c, h, yaw, mat))

    def cyl(self, cx, cy, r, z0, z1, mat: Material):
        self.items.append(("cyl", (cx, cy, (z0 + z1) / 2), (r, r, (z1 - z0) / 2), 0.0, mat))

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.full(3, np.inf)
        hi = np.full(3, -np.inf)
        for kind, c, h, yaw, _ in self.items:
            c, h = np.asarray(c, float), np.asarray(h, float)
            if kind == "box" and yaw:
                ca, sa = abs(math.cos(yaw)), abs(math.sin(yaw))
                h = np.array([ca * h[0] + sa * h[1], sa * h[0] + ca * h[1], h[2]])
            lo, hi = np.minimum(lo, c - h), np.maximum(hi, c + h)
        return lo, hi


@dataclass
class _Template:
    label: int
    parts: _Parts
    kind: str = ""


def _u(rng, a, b) -> float:
    return float(rng.uniform(a, b))


def _build_cabinet(rng, M: _Materials, tall=None) -> _Template:
    P = _Parts()
    w, d = _u(rng, 0.6, 1.5), _u(rng, 0.4, 0.6)
    tall = rng.random() < 0.5 if tall is None else tall
    h = _u(rng, 1.6, 2.1) if tall else _u(rng, 0.7, 0.9)
    body = M.surface()
    front = body if rng.random() < 0.5 else M.surface()
    handle = M.metal()
    P.box(-w / 2, w / 2, -d / 2, d / 2 - 0.02, 0, h, body)
    n = 1 if w < 0.8 else 2
    dw = w / n
    for i in range(n):
        x0, x1 = -w / 2 + i * dw + 0.004, -w / 2 + (i + 1) * dw - 0.004
        P.box(x0, x1, d / 2 - 0.02, d / 2, 0.05, h - 0.03, front)
        hx = x1 - 0.05 if i == 0 else x0 + 0.05
        hz = min(h - 0.2, 1.05) if tall else h - 0.15
        P.box(hx - 0.008, hx + 0.008, d / 2, d / 2 + 0.025, hz - 0.07, hz + 0.07, handle)
    return _Template(NAME_TO_ID["cabinet"], P, "tall" if tall else "low")


def _build_bed(rng, M) -> _Template:
    P = _Parts()
    W, L = _u(rng, 0.95, 1.8), _u(rng, 1.95, 2.1)
    frame = M.surface(axis=0)
    P.box(-W / 2, W / 2, -L / 2 + 0.06, L / 2, 0, 0.3, frame)
    P.box(-W / 2, W / 2, -L / 2, -L / 2 + 0.06, 0, _u(rng, 0.85, 1.15), frame)
    mt = 0.3 + _u(rng, 0.17, 0.24)
    sheet = M.fabric()
    P.box(-W / 2 + 0.03, W / 2 - 0.03, -L / 2 + 0.08, L / 2 - 0.03, 0.3, mt, sheet)
    blanket = M.fabric()
    P.box(-W / 2 + 0.01, W / 2 - 0.01, -L / 2 + _u(rng, 0.5, 0.8), L / 2 - 0.01, mt - 0.03, mt + 0.04, blanket)
    pillow = M.fabric() if rng.random() < 0.5 else sheet
    n = 1 if W < 1.3 else 2
    pw = (W - 0.1) / n
    for i in range(n):
        x0 = -W / 2 + 0.05 + i * pw
        P.box(x0 + 0.02, x0 + pw - 0.02, -L / 2 + 0.1, -L / 2 + 0.45, mt, mt + _u(rng, 0.1, 0.15), pillow)
    return _Template(NAME_TO_ID["bed"], P)


def _build_chair(rng, M) -> _Template:
    P = _Parts()
    w, d = _u(rng, 0.42, 0.5), _u(rng, 0.42, 0.5)
    sh, st = _u(rng, 0.43, 0.48), _u(rng, 0.03, 0.06)
    bh = _u(rng, 0.35, 0.5)
    if rng.random() < 0.3:  # office chair: pedestal on a round base
        metal, seat = M.metal(), M.fabric()
        P.cyl(0, 0, _u(rng, 0.26, 0.3), 0, 0.05, metal)
        P.cyl(0, 0, 0.03, 0.05, sh - st, metal)
        P.box(-w / 2, w / 2, -d / 2, d / 2, sh - st, sh, seat)
        P.box(-w / 2 + 0.02, w / 2 - 0.02, -d / 2 - 0.04, -d / 2, sh + 0.06, sh + bh, seat)
        return _Template(NAME_TO_ID["chair"], P, "office")
    frame = M.surface(axis=2)
    seat = frame if rng.random() < 0.5 else M.fabric()
    lt = _u(rng, 0.03, 0.045)
    for sx in (-1, 1):
        for sy in (-1, 1):
            x, y = sx * (w / 2 - lt / 2), sy * (d / 2 - lt / 2)
            P.box(x - lt / 2, x + lt / 2, y - lt / 2, y + lt / 2, 0, sh - st, frame)
    P.box(-w / 2, w / 2, -d / 2, d / 2, sh - st, sh, seat)
    P.box(-w / 2, w / 2, -d / 2, -d / 2 + 0.03, sh, sh + bh, frame)
    return _Template(NAME_TO_ID["chair"], P, "dining")


def _build_sofa(rng, M) -> _Template:
    P = _Parts()
    W, D = _u(rng, 1.5, 2.4), _u(rng, 0.8, 0.95)
    fab = M.fabric()
    cush = fab if rng.random() < 0.6 else M.fabric()
    arm, back = _u(rng, 0.12, 0.2), _u(rng, 0.15, 0.22)
    P.box(-W / 2 + arm, W / 2 - arm, -D / 2 + back, D / 2, 0.0, 0.42, fab)
    P.box(-W / 2, W / 2, -D / 2, -D / 2 + back, 0, _u(rng, 0.75, 0.9), fab)
    ah = _u(rng, 0.55, 0.65)
    P.box(-W / 2, -W / 2 + arm, -D / 2 + back, D / 2, 0, ah, fab)
    P.box(W / 2 - arm, W / 2, -D / 2 + back, D / 2, 0, ah, fab)
    n = 2 if W < 1.9 else 3
    cw = (W - 2 * arm) / n
    for i in range(n):
        x0 = -W / 2 + arm + i * cw
        P.box(x0 + 0.01, x0 + cw - 0.01, -D / 2 + back + 0.01, D / 2 - 0.01, 0.42, 0.42 + _u(rng, 0.1, 0.14), cush)
    return _Template(NAME_TO_ID["sofa"], P)


def _build_table(rng, M, coffee=False) -> _Template:
    P = _Parts()
    top, leg = M.surface(axis=0), None
    leg = top if rng.random() < 0.6 else M.metal()
    H = _u(rng, 0.4, 0.5) if coffee else _u(rng, 0.72, 0.77)
    tt = _u(rng, 0.025, 0.05)
    if not coffee and rng.random() < 0.3:
        r = _u(rng, 0.4, 0.6)
        P.cyl(0, 0, r, H - tt, H, top)
        P.cyl(0, 0, _u(rng, 0.04, 0.07), 0.03, H - tt, leg)
        P.cyl(0, 0, _u(rng, 0.22, 0.3), 0, 0.03, leg)
        return _Template(NAME_TO_ID["table"], P, "round")
    W, D = (_u(rng, 0.8, 1.2), _u(rng, 0.5, 0.7)) if coffee else (_u(rng, 0.9, 1.8), _u(rng, 0.7, 1.0))
    P.box(-W / 2, W / 2, -D / 2, D / 2, H - tt, H, top)
    lt, inset = _u(rng, 0.04, 0.07), _u(rng, 0.02, 0.08)
    for sx in (-1, 1):
        for sy in (-1, 1):
            x, y = sx * (W / 2 - inset - lt / 2), sy * (D / 2 - inset - lt / 2)
            P.box(x - lt / 2, x + lt / 2, y - lt / 2, y + lt / 2, 0, H - tt, leg)
    return _Template(NAME_TO_ID["table"], P, "coffee" if coffee else "rect")


def _build_desk(rng, M) -> _Template:
    P = _Parts()
    W, D, H = _u(rng, 1.0, 1.6), _u(rng, 0.55, 0.75), _u(rng, 0.72, 0.76)
    mat = M.surface(axis=0)
    P.box(-W / 2, W / 2, -D / 2, D / 2, H - 0.03, H, mat)
    side = mat if rng.random() < 0.7 else M.paint()
    P.box(-W / 2, -W / 2 + 0.03, -D / 2, D / 2, 0, H - 0.03, side)
    if rng.random() < 0.6:  # drawer unit on the right
        dw = _u(rng, 0.35, 0.45)
        P.box(W / 2 - dw, W / 2, -D / 2, D / 2 - 0.02, 0, H - 0.03, side)
        handle = M.metal()
        for k in range(3):
            z = (H - 0.03) * (k + 0.6) / 3
            P.box(W / 2 - dw / 2 - 0.05, W / 2 - dw / 2 + 0.05, D / 2 - 0.02, D / 2, z - 0.008, z + 0.008, handle)
    else:
        P.box(W / 2 - 0.03, W / 2, -D / 2, D / 2, 0, H - 0.03, side)
    return _Template(NAME_TO_ID["desk"], P)


def _build_bookshelf(rng, M) -> _Template:
    P = _Parts()
    W, D, H = _u(rng, 0.6, 1.2), _u(rng, 0.28, 0.38), _u(rng, 1.2, 2.0)
    mat = M.surface(axis=0)
    t = 0.02
    P.box(-W / 2, -W / 2 + t, -D / 2, D / 2, 0, H, mat)
    P.box(W / 2 - t, W / 2, -D / 2, D / 2, 0, H, mat)
    P.box(-W / 2 + t, W / 2 - t, -D / 2, -D / 2 + 0.01, 0, H, mat)
    P.box(-W / 2 + t, W / 2 - t, -D / 2, D / 2, H - t, H, mat)
    P.box(-W / 2 + t, W / 2 - t, -D / 2 + 0.01, D / 2, 0, 0.06, mat)
    n_shelf = max(2, int(round((H - 0.08) / _u(rng, 0.3, 0.38))))
    gap = (H - 0.06 - t) / n_shelf
    for i in range(n_shelf):
        zb = 0.06 + i * gap
        if i > 0:
            P.box(-W / 2 + t, W / 2 - t, -D / 2 + 0.01, D / 2, zb - t, zb, mat)
        x = -W / 2 + t + 0.01
        while x < W / 2 - t - 0.12 and rng.random() < 0.9:
            rw = min(_u(rng, 0.15, 0.6), W / 2 - t - 0.01 - x)
            hgt = (gap - t) * _u(rng, 0.75, 0.95)
            bd = _u(rng, 0.15, D - 0.05)
            P.box(x, x + rw, -D / 2 + 0.01, -D / 2 + 0.01 + bd, zb, zb + hgt, M.books(hgt / 2))
            x += rw + _u(rng, 0.01, 0.15)
    return _Template(NAME_TO_ID["bookshelf"], P)


def _build_counter(rng, M, width=None) -> _Template:
    P = _Parts()
    W = width if width is not None else _u(rng, 1.2, 2.8)
    D, H = 0.6, _u(rng, 0.88, 0.92)
    body, top, handle = M.surface(), M.stone(), M.metal()
    P.box(-W / 2, W / 2, -D / 2, D / 2 - 0.07, 0, 0.1, body)
    P.box(-W / 2, W / 2, -D / 2, D / 2 - 0.02, 0.1, H - 0.03, body)
    n = max(1, int(round(W / 0.5)))
    dw = W / n
    for i in range(n):
        x0, x1 = -W / 2 + i * dw + 0.003, -W / 2 + (i + 1) * dw - 0.003
        P.box(x0, x1, D / 2 - 0.02, D / 2, 0.12, H - 0.05, body)
        P.box(x0 + dw / 2 - 0.06, x0 + dw / 2 + 0.06, D / 2, D / 2 + 0.02, H - 0.12, H - 0.105, handle)
    P.box(-W / 2, W / 2, -D / 2, D / 2 + 0.02, H - 0.03, H, top)
    return _Template(NAME_TO_ID["counter"], P)


def _build_refrigerator(rng, M) -> _Template:
    P = _Parts()
    W, D, H = _u(rng, 0.6, 0.8), _u(rng, 0.62, 0.72), _u(rng, 1.7, 1.9)
    mat = M.metal() if rng.random() < 0.5 else M.ceramic()
    handle = M.metal()
    P.box(-W / 2, W / 2, -D / 2, D / 2 - 0.03, 0, H, mat)
    split = H * _u(rng, 0.6, 0.7)
    P.box(-W / 2 + 0.005, W / 2 - 0.005, D / 2 - 0.03, D / 2, 0.03, split - 0.005, mat)
    P.box(-W / 2 + 0.005, W / 2 - 0.005, D / 2 - 0.03, D / 2, split + 0.005, H - 0.01, mat)
    hx = W / 2 - 0.06
    P.box(hx - 0.01, hx + 0.01, D / 2, D / 2 + 0.04, split - 0.45, split - 0.1, handle)
    P.box(hx - 0.01, hx + 0.01, D / 2, D / 2 + 0.04, split + 0.1, split + 0.35, handle)
    return _Template(NAME_TO_ID["refrigerator"], P)


def _build_toilet(rng, M) -> _Template:
    P = _Parts()
    cer = M.ceramic()
    tw, td = _u(rng, 0.38, 0.48), _u(rng, 0.17, 0.22)
    r = _u(rng, 0.18, 0.21)
    P.box(-tw / 2, tw / 2, 0, td, 0.4, _u(rng, 0.74, 0.8), cer)
    P.box(-0.11, 0.11, 0.02, td + r, 0, 0.3, cer)
    cy = td + r * 0.95
    P.cyl(0, cy, r, 0.18, 0.39, cer)
    seat = cer if rng.random() < 0.7 else M.paint()
    P.cyl(0, cy, r + 0.01, 0.39, 0.42, seat)
    return _Template(NAME_TO_ID["toilet"], P)


def _basin(P: _Parts, W, D, z0, z1, cer, y0=None):
    """An open basin (four walls and a bottom) with its back at ``y0`` (default ``-D / 2``)."""
    y0 = -D / 2 if y0 is None else y0
    t = 0.03
    P.box(-W / 2, W / 2, y0, y0 + D, z0, z0 + 0.04, cer)
    P.box(-W / 2, W / 2, y0, y0 + t, z0, z1, cer)
    P.box(-W / 2, W / 2, y0 + D - t, y0 + D, z0, z1, cer)
    P.box(-W / 2, -W / 2 + t, y0 + t, y0 + D - t, z0, z1, cer)
    P.box(W / 2 - t, W / 2, y0 + t, y0 + D - t, z0, z1, cer)


def _build_sink(rng, M, on_counter=False) -> _Template:
    P = _Parts()
    cer, metal = M.ceramic(), M.metal()
    W, D = _u(rng, 0.42, 0.58), _u(rng, 0.36, 0.46)
    if on_counter:  # a vessel sink standing on a counter top (local z = 0 is the counter top)
        _basin(P, W, D, 0.0, _u(rng, 0.12, 0.16), cer, y0=-D / 2 + 0.02)
        P.cyl(0, -D / 2 + 0.0, 0.015, 0, 0.3, metal)
        P.box(-0.012, 0.012, -D / 2 + 0.0, -D / 2 + 0.14, 0.28, 0.3, metal)
        return _Template(NAME_TO_ID["sink"], P, "vessel")
    top = _u(rng, 0.82, 0.88)
    P.cyl(0, -D / 2 + 0.12, _u(rng, 0.07, 0.1), 0, top - 0.16, cer)
    _basin(P, W, D, top - 0.16, top, cer)
    P.cyl(0, -D / 2 + 0.015, 0.015, top, top + 0.15, metal)
    return _Template(NAME_TO_ID["sink"], P, "pedestal")


def _build_bathtub(rng, M) -> _Template:
    P = _Parts()
    W, D, H = _u(rng, 1.5, 1.75), _u(rng, 0.7, 0.8), _u(rng, 0.5, 0.58)
    cer = M.ceramic()
    P.box(-W / 2, W / 2, -D / 2, D / 2, 0, 0.1, cer)
    t = 0.07
    P.box(-W / 2, W / 2, -D / 2, -D / 2 + t, 0.1, H, cer)
    P.box(-W / 2, W / 2, D / 2 - t, D / 2, 0.1, H, cer)
    P.box(-W / 2, -W / 2 + t, -D / 2 + t, D / 2 - t, 0.1, H, cer)
    P.box(W / 2 - t, W / 2, -D / 2 + t, D / 2 - t, 0.1, H, cer)
    return _Template(NAME_TO_ID["bathtub"], P)


def _build_otherfurniture(rng, M, kind=None) -> _Template:
    P = _Parts()
    kind = kind or M.pick(["nightstand", "ottoman", "dresser", "basket"])
    if kind == "ottoman":
        P.cyl(0, 0, _u(rng, 0.22, 0.35), 0, _u(rng, 0.38, 0.46), M.fabric())
    elif kind == "basket":
        P.cyl(0, 0, _u(rng, 0.16, 0.24), 0, _u(rng, 0.4, 0.6), M.pick([M.fabric(), M.paint()]))
    else:
        w, d, h = (
            (_u(rng, 0.38, 0.5), _u(rng, 0.35, 0.45), _u(rng, 0.5, 0.65))
            if kind == "nightstand"
            else (_u(rng, 0.8, 1.4), _u(rng, 0.45, 0.55), _u(rng, 0.75, 1.1))
        )
        body, handle = M.surface(), M.metal()
        P.box(-w / 2, w / 2, -d / 2, d / 2 - 0.02, 0, h, body)
        n = 2 if kind == "nightstand" else 3
        for k in range(n):
            z0 = 0.06 + k * (h - 0.08) / n
            z1 = 0.06 + (k + 1) * (h - 0.08) / n - 0.006
            P.box(-w / 2 + 0.01, w / 2 - 0.01, d / 2 - 0.02, d / 2, z0, z1, body)
            zc = (z0 + z1) / 2
            P.box(-0.05, 0.05, d / 2, d / 2 + 0.02, zc - 0.008, zc + 0.008, handle)
    return _Template(NAME_TO_ID["otherfurniture"], P, kind)


# Wall-mounted builders: local y from -hy (touching the wall) forward; absolute z.


def _build_door(rng, M, w, h) -> _Template:
    P = _Parts()
    panel = M.paint(light=True) if rng.random() < 0.5 else M.wood(axis=2)
    trim = M.paint(light=True)
    tw = 0.06
    P.box(-w / 2 - tw, -w / 2, 0, 0.035, 0, h + tw, trim)
    P.box(w / 2, w / 2 + tw, 0, 0.035, 0, h + tw, trim)
    P.box(-w / 2, w / 2, 0, 0.035, h, h + tw, trim)
    P.box(-w / 2, w / 2, 0, 0.025, 0, h, panel)
    hx = w / 2 - 0.08
    P.box(hx - 0.1, hx + 0.01, 0.045, 0.065, 0.99, 1.01, M.metal())
    P.box(hx - 0.01, hx + 0.01, 0.025, 0.065, 0.98, 1.02, M.metal())
    return _Template(NAME_TO_ID["door"], P)


def _build_window(rng, M, w, z0, z1) -> _Template:
    P = _Parts()
    frame = M.paint(light=True) if rng.random() < 0.7 else M.wood()
    glass = M.glass()
    f = 0.06
    P.box(-w / 2, w / 2, 0, 0.01, z0, z1, glass)
    P.box(-w / 2, -w / 2 + f, 0, 0.05, z0, z1, frame)
    P.box(w / 2 - f, w / 2, 0, 0.05, z0, z1, frame)
    P.box(-w / 2 + f, w / 2 - f, 0, 0.05, z1 - f, z1, frame)
    P.box(-w / 2 + f, w / 2 - f, 0, 0.05, z0, z0 + f, frame)
    if w > 1.0:
        P.box(-0.02, 0.02, 0.01, 0.04, z0 + f, z1 - f, frame)
    P.box(-w / 2 - 0.05, w / 2 + 0.05, 0, 0.12, z0 - 0.03, z0, frame)
    return _Template(NAME_TO_ID["window"], P)


def _build_curtain(rng, M, w, z0, z1, mat) -> _Template:
    P = _Parts()
    r = _u(rng, 0.025, 0.04)
    n = max(2, int(round(w / (1.6 * r))))
    xs = np.linspace(-w / 2 + r, w / 2 - r, n)
    off = 0.05  # folds hang this far from the wall, on a rail fixed to it
    for i, x in enumerate(xs):
        y = off + r + (0.015 if i % 2 else 0.0)
        P.cyl(float(x), y, r, z0, z1, mat)
    P.box(-w / 2, w / 2, 0.0, off + 2 * r + 0.015, z1, z1 + 0.02, M.pick([M.metal(), M.wood()]))
    return _Template(NAME_TO_ID["curtain"], P)


def _build_picture(rng, M, w, h, zc) -> _Template:
    P = _Parts()
    frame = M.pick([M.wood(), M.paint()])
    P.box(-w / 2, w / 2, 0, 0.02, zc - h / 2, zc + h / 2, frame)
    b = _u(rng, 0.02, 0.06)
    P.box(-w / 2 + b, w / 2 - b, 0.02, 0.025, zc - h / 2 + b, zc + h / 2 - b, M.art())
    return _Template(NAME_TO_ID["picture"], P)


def _build_shower_curtain(rng, M, length, y, z0, z1, ceiling) -> _Template:
    P = _Parts()
    mat = M.pick([M.fabric(), M.art(), M.paint(light=True)])
    mat.ks = 0.15
    r = _u(rng, 0.02, 0.03)
    cover = length * _u(rng, 0.35, 1.0)
    n = max(2, int(round(cover / (1.6 * r))))
    xs = np.linspace(-length / 2 + r, -length / 2 + cover - r, n)
    for i, x in enumerate(xs):
        P.cyl(float(x), y + (0.012 if i % 2 else 0.0), r, z0, z1 - 0.03, mat)
    metal = M.metal()
    P.box(-length / 2, length / 2, y - 0.01, y + 0.01, z1 - 0.03, z1 - 0.01, metal)
    for x in (-length / 2 + 0.02, length / 2 - 0.02):  # hangers up to the ceiling
        P.box(x - 0.005, x + 0.005, y - 0.005, y + 0.005, z1 - 0.01, ceiling, metal)
    return _Template(NAME_TO_ID["shower curtain"], P)


# ----------------------------------------------------------------------------- layout


class _Layout:
    def __init__(self, rng: np.random.Generator, size: np.ndarray, room_type: str, materials: str = "shared"):
        self.rng = rng
        self.size = size
        self.room_type = room_type
        self.M = (_SharedMaterials if materials == "shared" else _Materials)(rng)
        self.objects: list[SceneObject] = []
        self.blockers: list[tuple] = []  # keep-out boxes (door swings, window / picture fronts)
        self.next_instance = 7  # 1 floor, 2..5 walls, 6 ceiling
        self.door_intervals: dict[int, list[tuple[float, float]]] = {w: [] for w in range(4)}

    # -- placement primitives
    def _fits(self, box, margin=0.02) -> bool:
        c, s, yaw = box
        corners = _obb_corners2d(c, s, yaw)
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

    def _pose_box(self, tmpl: _Template, xy, yaw, z0=0.0):
        lo, hi = tmpl.parts.bounds()
        ctr_local = (lo + hi) / 2
        R = np.array([[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]])
        c_xy = np.asarray(xy, float) + R @ ctr_local[:2]
        center = np.array([c_xy[0], c_xy[1], z0 + ctr_local[2]])
        return center, hi - lo, yaw

    def add(self, tmpl: _Template, xy, yaw, z0=0.0, support="floor") -> SceneObject:
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

    def wall_origin(self, tmpl: _Template, w: int, s: float, gap: float):
        """Local-origin position that puts the template's back ``gap`` metres off wall ``w`` with its
        footprint centred at ``s`` metres along the wall."""
        corner, tangent, normal, yaw, _ = _wall_frame(w, self.size)
        lo, hi = tmpl.parts.bounds()
        # local x centre -> s, local y min (back) -> gap
        along = s - (lo[0] + hi[0]) / 2
        out = gap - lo[1]
        return corner + along * tangent + out * normal, yaw

    def try_wall(self, tmpl: _Template, w=None, s=None, gap=0.04, tries=40, support="floor", z0=0.0, margin=0.03):
        lo, hi = tmpl.parts.bounds()
        half_w = (hi[0] - lo[0]) / 2
        for _ in range(tries):
            ww = int(self.rng.integers(4)) if w is None else w
            length = _wall_frame(ww, self.size)[4]
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

    def try_free(self, tmpl: _Template, tries=40, center_bias=0.6, margin=0.5):
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

    def try_at(self, tmpl: _Template, xy, yaw, z0=0.0, support="floor", margin=0.03):
        box = self._pose_box(tmpl, xy, yaw, z0)
        if self._fits(box, margin):
            return self.add(tmpl, xy, yaw, z0, support)
        return None

    def wall_free(self, w: int, s0: float, s1: float, z0: float, z1: float, depth: float = 0.3) -> bool:
        """Is the slab in front of wall ``w`` between ``s0..s1`` and heights ``z0..z1`` empty?"""
        corner, tangent, normal, yaw, length = _wall_frame(w, self.size)
        if s0 < 0 or s1 > length:
            return False
        c2 = corner + (s0 + s1) / 2 * tangent + depth / 2 * normal
        box = (np.array([c2[0], c2[1], (z0 + z1) / 2]), np.array([s1 - s0, depth, z1 - z0]), yaw)
        return self._fits(box, 0.0)

    def block_front(self, w: int, s0: float, s1: float, z0: float, z1: float, depth: float):
        corner, tangent, normal, yaw, _ = _wall_frame(w, self.size)
        c2 = corner + (s0 + s1) / 2 * tangent + depth / 2 * normal
        self.blockers.append((np.array([c2[0], c2[1], (z0 + z1) / 2]), np.array([s1 - s0, depth, z1 - z0]), yaw))

    # -- room elements
    def door(self):
        Lz = self.size[2]
        for _ in range(30):
            w = _u(self.rng, 0.8, 0.95)
            h = min(_u(self.rng, 2.0, 2.1), Lz - 0.25)
            wall = int(self.rng.integers(4))
            length = _wall_frame(wall, self.size)[4]
            s = _u(self.rng, w / 2 + 0.2, length - w / 2 - 0.2)
            if not self.wall_free(wall, s - w / 2 - 0.1, s + w / 2 + 0.1, 0, h + 0.1, depth=1.0):
                continue
            tmpl = _build_door(self.rng, self.M, w, h)
            obj = self.try_wall(tmpl, wall, s, gap=0.0, support="wall", margin=0.0)
            if obj is not None:
                self.block_front(wall, s - w / 2 - 0.1, s + w / 2 + 0.1, 0, h + 0.1, 1.0)
                self.door_intervals[wall].append((s - w / 2 - 0.07, s + w / 2 + 0.07))
                return obj
        return None

    def window(self, curtains_p=0.5):
        Lz = self.size[2]
        for _ in range(30):
            w = _u(self.rng, 0.8, 1.6)
            z0 = _u(self.rng, 0.8, 1.0)
            z1 = min(z0 + _u(self.rng, 1.0, 1.4), Lz - 0.25)
            wall = int(self.rng.integers(4))
            length = _wall_frame(wall, self.size)[4]
            if length < w + 0.6:
                continue
            s = _u(self.rng, w / 2 + 0.3, length - w / 2 - 0.3)
            if not self.wall_free(wall, s - w / 2 - 0.06, s + w / 2 + 0.06, z0 - 0.05, z1, depth=0.4):
                continue
            obj = self.try_wall(
                _build_window(self.rng, self.M, w, z0, z1), wall, s, gap=0.0, support="wall", margin=0.0
            )
            if obj is None:
                continue
            self.block_front(wall, s - w / 2 - 0.06, s + w / 2 + 0.06, z0 - 0.05, z1, 0.4)
            if self.rng.random() < curtains_p:
                mat = self.M.fabric()
                ztop = min(z1 + _u(self.rng, 0.08, 0.25), Lz - 0.05)
                zbot = _u(self.rng, 0.02, 0.05) if self.rng.random() < 0.7 else z0 - 0.1
                for side in (-1, 1):
                    cw = _u(self.rng, 0.25, 0.5)
                    sc = s + side * (w / 2 + 0.07 + cw / 2)
                    if not self.wall_free(wall, sc - cw / 2, sc + cw / 2, zbot, ztop + 0.02, depth=0.2):
                        continue
                    self.try_wall(
                        _build_curtain(self.rng, self.M, cw, zbot, ztop, mat),
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
            w, h = _u(self.rng, 0.3, 1.0), _u(self.rng, 0.3, 0.8)
            zc = _u(self.rng, 1.35, 1.75)
            if zc + h / 2 > Lz - 0.2:
                continue
            wall = int(self.rng.integers(4))
            length = _wall_frame(wall, self.size)[4]
            if length < w + 0.4:
                continue
            s = _u(self.rng, w / 2 + 0.2, length - w / 2 - 0.2)
            if not self.wall_free(wall, s - w / 2 - 0.05, s + w / 2 + 0.05, zc - h / 2 - 0.05, zc + h / 2 + 0.05, 0.3):
                continue
            obj = self.try_wall(
                _build_picture(self.rng, self.M, w, h, zc), wall, s, gap=0.0, support="wall", margin=0.0
            )
            if obj is not None:
                return obj
        return None

    def beside(self, anchor: SceneObject, tmpl: _Template, side: int, gap=0.05):
        """Against the same wall as ``anchor``, just beside it."""
        lo, hi = tmpl.parts.bounds()
        w = anchor.wall
        s = anchor.s + side * (anchor.size[0] / 2 + gap + (hi[0] - lo[0]) / 2)
        return self.try_wall(tmpl, w, s, gap=0.04)

    def in_front(self, anchor: SceneObject, tmpl: _Template, dist: float, facing=True, jitter=0.15):
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
            tmpl = _build_chair(self.rng, self.M)
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

    def add_on(self, base: SceneObject, tmpl: _Template, top_z: float):
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
        tmpl = _build_shower_curtain(
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
        corners = _obb_corners2d(c, s, yaw)
        Lx, Ly, Lz = self.size
        return bool(
            (corners >= -1e-6).all()
            and (corners[:, 0] <= Lx + 1e-6).all()
            and (corners[:, 1] <= Ly + 1e-6).all()
            and c[2] + s[2] / 2 <= Lz + 1e-6
        )

    def baseboards(self, wall_instances: list[int]) -> list[Prim]:
        mat = self.M.paint(light=True) if self.rng.random() < 0.6 else self.M.wood()
        h, t = _u(self.rng, 0.06, 0.1), 0.012
        prims = []
        for w in range(4):
            corner, tangent, normal, yaw, length = _wall_frame(w, self.size)
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


def _program(L: _Layout, room_type: str) -> None:
    """Room contents by type (shape statistics are shared per class, appearance varies)."""
    rng, M = L.rng, L.M
    L.door()
    if room_type in ("living", "studio") and rng.random() < 0.4:
        L.door()
    n_win = {
        "bathroom": int(rng.integers(0, 2)),
        "living": int(rng.integers(1, 4)),
        "studio": int(rng.integers(2, 4)),
    }.get(room_type, int(rng.integers(1, 3)))
    for _ in range(n_win):
        L.window(curtains_p=0.25 if room_type == "bathroom" else 0.6)

    def maybe(p):
        return rng.random() < p

    if room_type in ("bedroom", "studio"):
        bed = L.try_wall(_build_bed(rng, M))
        if bed is not None:
            for side in (-1, 1):
                if maybe(0.7):
                    L.beside(bed, _build_otherfurniture(rng, M, "nightstand"), side)
        if maybe(0.7):
            L.try_wall(_build_cabinet(rng, M, tall=True))
        if maybe(0.5):
            L.try_wall(_build_otherfurniture(rng, M, "dresser"))
    if room_type in ("living", "studio"):
        sofa = L.try_wall(_build_sofa(rng, M))
        if sofa is not None and maybe(0.8):
            L.in_front(sofa, _build_table(rng, M, coffee=True), _u(rng, 0.35, 0.5), facing=False, jitter=0.05)
        if maybe(0.4):
            L.try_wall(_build_sofa(rng, M))
        for _ in range(int(rng.integers(0, 3))):
            L.try_wall(_build_bookshelf(rng, M))
        if maybe(0.6):
            L.try_wall(_build_cabinet(rng, M, tall=False))
        if maybe(0.5):
            L.try_free(_build_otherfurniture(rng, M, "ottoman"), margin=0.4)
    if room_type in ("kitchen", "studio"):
        counter = L.try_wall(_build_counter(rng, M), gap=0.015)
        if counter is not None:
            # a vessel sink on the counter top
            L.add_on(
                counter, _build_sink(rng, M, on_counter=True), top_z=float(counter.center[2] + counter.size[2] / 2)
            )
        if room_type == "kitchen" and maybe(0.5):
            L.try_wall(_build_counter(rng, M), gap=0.015)
        L.try_wall(_build_refrigerator(rng, M), gap=0.03)
        if maybe(0.6):
            L.try_wall(_build_cabinet(rng, M, tall=True))
    if room_type in ("kitchen", "living", "studio") or (room_type == "office" and maybe(0.4)):
        table = L.try_free(_build_table(rng, M), margin=0.75)
        if table is not None:
            L.chairs_around(table, int(rng.integers(2, 5)))
    if room_type == "bathroom":
        tub = L.try_wall(_build_bathtub(rng, M), gap=0.015)
        if tub is not None:
            L.add_shower_curtain(tub)
        L.try_wall(_build_toilet(rng, M), gap=0.015)
        L.try_wall(_build_sink(rng, M), gap=0.015)
        if maybe(0.5):
            L.try_wall(_build_cabinet(rng, M, tall=False))
        if maybe(0.5):
            L.try_wall(_build_otherfurniture(rng, M, "basket"))
    if room_type in ("office", "bedroom", "studio"):
        for _ in range(int(rng.integers(1, 4)) if room_type == "office" else int(maybe(0.6))):
            desk = L.try_wall(_build_desk(rng, M))
            if desk is not None:
                L.in_front(desk, _build_chair(rng, M), _u(rng, 0.05, 0.2))
    if room_type == "office":
        for _ in range(int(rng.integers(1, 3))):
            L.try_wall(_build_bookshelf(rng, M))
        for _ in range(int(rng.integers(1, 3))):
            L.try_wall(_build_cabinet(rng, M))
        if maybe(0.5):
            L.try_free(_build_otherfurniture(rng, M, "basket"), margin=0.4)
    if room_type == "bedroom" and maybe(0.4):
        L.try_wall(_build_bookshelf(rng, M))
    _fill(L, room_type)
    for _ in range(int(rng.integers(0, 3)) + (1 if room_type != "bathroom" else 0)):
        L.picture()
    if room_type == "bathroom" and maybe(0.5):
        L.picture()


_FILL = {
    "bedroom": ("cabinet", "otherfurniture", "bookshelf", "desk", "chair"),
    "living": ("cabinet", "bookshelf", "otherfurniture", "chair", "table", "cabinet"),
    "kitchen": ("cabinet", "counter", "chair", "otherfurniture", "cabinet"),
    "bathroom": ("cabinet", "otherfurniture"),
    "office": ("desk", "cabinet", "bookshelf", "otherfurniture", "table", "chair"),
    "studio": ("cabinet", "bookshelf", "otherfurniture", "chair", "desk", "table", "counter"),
}


def _fill(L: _Layout, room_type: str) -> None:
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
            L.try_wall(_build_cabinet(rng, M), tries=10)
        elif what == "bookshelf":
            L.try_wall(_build_bookshelf(rng, M), tries=10)
        elif what == "otherfurniture":
            tmpl = _build_otherfurniture(rng, M)
            if tmpl.kind in ("ottoman", "basket") and rng.random() < 0.5:
                L.try_free(tmpl, tries=10, margin=0.4)
            else:
                L.try_wall(tmpl, tries=10)
        elif what == "chair":
            L.try_wall(_build_chair(rng, M), tries=10, gap=0.08)
        elif what == "desk":
            desk = L.try_wall(_build_desk(rng, M), tries=10)
            if desk is not None:
                L.in_front(desk, _build_chair(rng, M), _u(rng, 0.05, 0.2))
        elif what == "table":
            if rng.random() < 0.5:
                L.try_wall(_build_table(rng, M, coffee=True), tries=10)
            else:
                table = L.try_free(_build_table(rng, M), tries=10, margin=0.75)
                if table is not None:
                    L.chairs_around(table, int(rng.integers(1, 4)))
        elif what == "counter":
            L.try_wall(_build_counter(rng, M), tries=10, gap=0.015)


def _floor_occlusion(objects: list[SceneObject], size, cell: float) -> np.ndarray:
    """Soft occupancy of the floor under and around objects (a cheap stand-in for contact shadows)."""
    nx, ny = int(math.ceil(size[0] / cell)), int(math.ceil(size[1] / cell))
    occ = np.zeros((nx, ny), dtype=np.float32)
    xs = (np.arange(nx) + 0.5) * cell
    ys = (np.arange(ny) + 0.5) * cell
    X, Y = np.meshgrid(xs, ys, indexing="ij")
    for o in objects:
        if o.support not in ("floor",):
            continue
        u, v = _rect_axes(o.yaw)
        dx, dy = X - o.center[0], Y - o.center[1]
        inside = (np.abs(dx * u[0] + dy * u[1]) <= o.size[0] / 2) & (np.abs(dx * v[0] + dy * v[1]) <= o.size[1] / 2)
        occ[inside] = np.maximum(occ[inside], min(1.0, 0.4 + o.size[2]))
    sigma = 0.1 / cell
    occ = cv2.GaussianBlur(occ, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)
    return np.clip(occ, 0, 1).astype(np.float32)


def build_scene(seed: int, index: int, room_type: str | None = None, materials: str = "shared") -> SceneSpec:
    """Build scene ``index`` of the dataset with ``seed`` (pure: same arguments, same scene).

    Room types cycle through :data:`ROOM_TYPES` with the index unless ``room_type`` is given.
    ``materials``: ``shared`` (objects' colours and textures from one palette for every class, see
    :class:`_SharedMaterials`) or ``class`` (class-typical families: wooden tables, white toilets;
    the generator before version 1.1, same scenes for the same seed).
    """
    if materials not in MATERIAL_MODES:
        raise ValueError(f"unknown materials {materials!r}; expected one of {MATERIAL_MODES}")
    rng = scene_rng(seed, index, 0)
    room_type = room_type or ROOM_TYPES[index % len(ROOM_TYPES)]
    if room_type not in ROOM_TYPES:
        raise ValueError(f"unknown room type {room_type!r}; expected one of {ROOM_TYPES}")
    lo, hi = _ROOM_SIZE[room_type]
    size = np.array([_u(rng, lo, hi), _u(rng, lo, hi), _u(rng, 2.5, 3.0)])
    L = _Layout(rng, size, room_type, materials)
    M = L.M
    wall_mat = M.wall(room_type)
    walls = [wall_mat if rng.random() < 0.8 else M.wall(room_type) for _ in range(4)]
    floor_mat, ceil_mat = M.floor(room_type), M.ceiling()
    _program(L, room_type)

    # Room structure as instances: floor 1, walls 2..5 (wall w = room face _WALL_FACE[w]), ceiling 6.
    wall_inst = [2, 3, 4, 5]
    base = L.baseboards(wall_inst)
    room_materials = [None] * 6
    room_instances = [0] * 6
    structure = []
    Lx, Ly, Lz = size
    for w in range(4):
        face = _WALL_FACE[w]
        room_materials[face] = walls[w]
        room_instances[face] = wall_inst[w]
        corner, tangent, normal, yaw, length = _wall_frame(w, size)
        c2 = corner + tangent * length / 2
        structure.append(
            SceneObject(
                wall_inst[w],
                WALL,
                [p for p in base if p.instance == wall_inst[w]],
                np.array([c2[0], c2[1], Lz / 2]),
                np.array([length, 0.0, Lz]),
                yaw,
                "room",
                "wall",
            )
        )
    room_materials[4], room_instances[4] = floor_mat, 1
    room_materials[5], room_instances[5] = ceil_mat, 6
    structure.insert(
        0, SceneObject(1, FLOOR, [], np.array([Lx / 2, Ly / 2, 0.0]), np.array([Lx, Ly, 0.0]), 0.0, "room", "floor")
    )
    structure.append(
        SceneObject(6, CEILING, [], np.array([Lx / 2, Ly / 2, Lz]), np.array([Lx, Ly, 0.0]), 0.0, "room", "ceiling")
    )

    # Ceiling lights on a jittered grid; one colour temperature per room, slightly varied per lamp.
    area = Lx * Ly
    n = int(np.clip(round(area / 8.0), 2, 4))
    nx = 2 if n >= 2 and Lx >= Ly else 1
    ny = int(math.ceil(n / nx))
    temp = rng.choice(3)
    tint = [np.array([1.0, 0.86, 0.7]), np.array([1.0, 0.97, 0.92]), np.array([0.92, 0.96, 1.05])][temp]
    lights = []
    power = _u(rng, 3.0, 5.0) * (area / n / 6.0) ** 0.5
    for i in range(nx):
        for j in range(ny):
            if len(lights) >= n:
                break
            p = np.array([(i + 0.5) / nx * Lx, (j + 0.5) / ny * Ly, Lz - 0.25]) + np.append(rng.normal(0, 0.3, 2), 0)
            p[:2] = np.clip(p[:2], 0.5, [Lx - 0.5, Ly - 0.5])
            lights.append(Light(p, power * tint * np.exp(rng.normal(0, 0.05, 3)) * _u(rng, 0.8, 1.2)))
    ambient = _u(rng, 0.12, 0.22) * tint
    cell = 0.05
    objects = structure + L.objects
    occ = _floor_occlusion(L.objects, size, cell)
    prims = [p for o in objects for p in o.prims]
    return SceneSpec(
        int(seed),
        int(index),
        room_type,
        size,
        room_materials,
        room_instances,
        objects,
        lights,
        ambient,
        occ,
        cell,
        prims,
    )
