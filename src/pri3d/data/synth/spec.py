"""What a synthetic scene is: its objects, lights and room (:class:`SceneSpec`), and its random streams.

World frame: z up, the room spans ``[0, Lx] x [0, Ly] x [0, Lz]`` metres, floor at ``z = 0``. A scene is
built by :func:`pri3d.data.synth.scene.build_scene`, rendered by :mod:`~pri3d.data.synth.render` and
meshed and written by :mod:`~pri3d.data.synth.writer`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pri3d.data.synth.classes import CLASSES
from pri3d.data.synth.primitives import Prim
from pri3d.data.synth.textures import Material

__all__ = ["SceneObject", "Light", "SceneSpec", "scene_rng", "uniform"]


def scene_rng(seed: int, index: int, stream: int = 0, *extra: int) -> np.random.Generator:
    """The random generator of one scene (stream 0: layout, 1: trajectory, 2: frames)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index), int(stream), *map(int, extra)]))


def uniform(rng: np.random.Generator, a, b) -> float:
    """One draw from ``U(a, b)`` as a Python float."""
    return float(rng.uniform(a, b))


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
