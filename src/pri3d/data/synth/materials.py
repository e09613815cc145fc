"""The materials of a synthetic scene: which colours, patterns and gloss each surface gets.

Two samplers, one per ``materials`` mode of :func:`pri3d.data.synth.scene.build_scene`:

* :class:`ClassMaterials` (``class``): class-typical families (wooden tables, white toilets, fabric
  sofas), the generator's only mode before version 1.1;
* :class:`SharedMaterials` (``shared``, the default): every object draws from one palette shared by all
  classes, so a class is carried by shape, size and placement, not by colour.

Walls, floors and ceilings keep room-typical materials in both modes. Each call draws from the scene's
random generator, so the order of calls is part of the scene (never reorder them).
"""

from __future__ import annotations

import numpy as np

from pri3d.data.synth.textures import Material, srgb_to_linear

__all__ = ["MATERIAL_MODES", "ClassMaterials", "SharedMaterials", "object_materials"]

MATERIAL_MODES = ("shared", "class")


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


class ClassMaterials:
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


class SharedMaterials(ClassMaterials):
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


def object_materials(mode: str, rng: np.random.Generator) -> ClassMaterials:
    """The material sampler of a ``materials`` mode (one of :data:`MATERIAL_MODES`)."""
    return (SharedMaterials if mode == "shared" else ClassMaterials)(rng)
