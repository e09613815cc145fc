"""Procedural room layouts: a room with doors, windows and furniture built from primitives.

World frame: z up, the room spans ``[0, Lx] x [0, Ly] x [0, Lz]`` metres, floor at ``z = 0``.
Every object is built in a local frame (x along its width, +y its front, z up, footprint centred on
the origin) from boxes and vertical cylinders, then placed with a yaw. Placement keeps oriented
bounding boxes apart (separating-axis test), so nothing intersects; floor objects stand on ``z = 0``,
wall objects touch a wall, a few objects stand on another one (a sink on a counter) or hang from
the ceiling (a shower curtain rail).

:func:`build_scene` is a pure function of ``(seed, index)``: the same call always gives the same
scene, whichever process runs it.

The generator's modules, in the order a scene is built:

* :mod:`~pri3d.data.synth.spec`: what a scene is (:class:`SceneSpec`, :class:`SceneObject`,
  :class:`Light`) and its random streams (:func:`scene_rng`);
* :mod:`~pri3d.data.synth.materials`: the material samplers (``materials: shared`` or ``class``);
* :mod:`~pri3d.data.synth.furniture`: one builder per kind of object (a template in its local frame);
* :mod:`~pri3d.data.synth.layout`: placing templates without intersections (:class:`Layout`);
* :mod:`~pri3d.data.synth.furnish`: what goes in a room of each type;
* this module: the room itself (size, walls, floor, ceiling, lights) and :func:`build_scene`.

The public names of the scene (``SceneSpec``, ``SceneObject``, ``Light``, ``scene_rng``, ``obb_overlap``,
``MATERIAL_MODES``) are re-exported here, so ``from pri3d.data.synth.scene import ...`` keeps working.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from pri3d.data.synth.classes import CEILING, FLOOR, WALL
from pri3d.data.synth.furnish import furnish
from pri3d.data.synth.layout import Layout, obb_overlap, rect_axes, wall_frame
from pri3d.data.synth.materials import MATERIAL_MODES
from pri3d.data.synth.spec import Light, SceneObject, SceneSpec, scene_rng, uniform
from pri3d.data.synth.textures import Material

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

# The room face (see primitives.intersect_room) of wall w = 0..3 (layout.wall_frame).
_WALL_FACE = (2, 1, 3, 0)


def build_scene(seed: int, index: int, room_type: str | None = None, materials: str = "shared") -> SceneSpec:
    """Build scene ``index`` of the dataset with ``seed`` (pure: same arguments, same scene).

    Room types cycle through :data:`ROOM_TYPES` with the index unless ``room_type`` is given.
    ``materials``: ``shared`` (objects' colours and textures from one palette for every class, see
    :class:`~pri3d.data.synth.materials.SharedMaterials`) or ``class`` (class-typical families: wooden
    tables, white toilets; the generator before version 1.1, same scenes for the same seed).
    """
    if materials not in MATERIAL_MODES:
        raise ValueError(f"unknown materials {materials!r}; expected one of {MATERIAL_MODES}")
    rng = scene_rng(seed, index, 0)
    room_type = room_type or ROOM_TYPES[index % len(ROOM_TYPES)]
    if room_type not in ROOM_TYPES:
        raise ValueError(f"unknown room type {room_type!r}; expected one of {ROOM_TYPES}")
    lo, hi = _ROOM_SIZE[room_type]
    size = np.array([uniform(rng, lo, hi), uniform(rng, lo, hi), uniform(rng, 2.5, 3.0)])
    L = Layout(rng, size, room_type, materials)
    M = L.M
    wall_mat = M.wall(room_type)
    walls = [wall_mat if rng.random() < 0.8 else M.wall(room_type) for _ in range(4)]
    floor_mat, ceil_mat = M.floor(room_type), M.ceiling()
    furnish(L, room_type)
    structure, room_materials, room_instances = _room_structure(L, walls, floor_mat, ceil_mat)
    lights, ambient = _ceiling_lights(rng, size)
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


def _room_structure(
    L: Layout, walls: list[Material], floor_mat: Material, ceil_mat: Material
) -> tuple[list[SceneObject], list[Material], list[int]]:
    """The room's own instances (floor 1, walls 2..5 with their baseboards, ceiling 6) and each room
    face's material and instance id. Wall ``w`` is room face ``_WALL_FACE[w]``."""
    wall_inst = [2, 3, 4, 5]
    base = L.baseboards(wall_inst)
    room_materials = [None] * 6
    room_instances = [0] * 6
    structure = []
    Lx, Ly, Lz = L.size
    for w in range(4):
        face = _WALL_FACE[w]
        room_materials[face] = walls[w]
        room_instances[face] = wall_inst[w]
        corner, tangent, normal, yaw, length = wall_frame(w, L.size)
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
    return structure, room_materials, room_instances


def _ceiling_lights(rng: np.random.Generator, size: np.ndarray) -> tuple[list[Light], np.ndarray]:
    """Ceiling lights on a jittered grid, one colour temperature per room, slightly varied per lamp; and
    the ambient light of that temperature."""
    Lx, Ly, Lz = size
    area = Lx * Ly
    n = int(np.clip(round(area / 8.0), 2, 4))
    nx = 2 if n >= 2 and Lx >= Ly else 1
    ny = int(math.ceil(n / nx))
    temp = rng.choice(3)
    tint = [np.array([1.0, 0.86, 0.7]), np.array([1.0, 0.97, 0.92]), np.array([0.92, 0.96, 1.05])][temp]
    lights = []
    power = uniform(rng, 3.0, 5.0) * (area / n / 6.0) ** 0.5
    for i in range(nx):
        for j in range(ny):
            if len(lights) >= n:
                break
            p = np.array([(i + 0.5) / nx * Lx, (j + 0.5) / ny * Ly, Lz - 0.25]) + np.append(rng.normal(0, 0.3, 2), 0)
            p[:2] = np.clip(p[:2], 0.5, [Lx - 0.5, Ly - 0.5])
            lights.append(Light(p, power * tint * np.exp(rng.normal(0, 0.05, 3)) * uniform(rng, 0.8, 1.2)))
    ambient = uniform(rng, 0.12, 0.22) * tint
    return lights, ambient


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
        u, v = rect_axes(o.yaw)
        dx, dy = X - o.center[0], Y - o.center[1]
        inside = (np.abs(dx * u[0] + dy * u[1]) <= o.size[0] / 2) & (np.abs(dx * v[0] + dy * v[1]) <= o.size[1] / 2)
        occ[inside] = np.maximum(occ[inside], min(1.0, 0.4 + o.size[2]))
    sigma = 0.1 / cell
    occ = cv2.GaussianBlur(occ, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)
    return np.clip(occ, 0, 1).astype(np.float32)
