"""Analytic primitives of the synthetic scenes: ray casting and triangle meshes.

Two primitive kinds make up every object: yaw-rotated boxes and vertical cylinders (with caps).
The room itself is an axis-aligned box seen from the inside (:func:`intersect_room`).

World frame: z up, floor at ``z = 0``, metres. Rays are given as a shared origin ``o`` (the camera
centre) and per-pixel directions ``d`` whose camera-frame z component is 1, so the hit parameter
``t`` *is* the depth (z in the camera frame) of the hit. Arrays are float32 for speed; hits are
returned as ``inf`` where a ray misses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pri3d.data.synth.textures import Material

__all__ = [
    "Prim",
    "intersect",
    "intersect_room",
    "surface_attrs",
    "room_attrs",
    "tessellate",
    "tessellate_room",
]

_EPS = np.float32(1e-4)


@dataclass
class Prim:
    """One primitive in world coordinates.

    Attributes:
        kind: ``"box"`` or ``"cyl"`` (vertical cylinder).
        center: ``(3,)`` centre (box centre; cylinder axis midpoint).
        half: ``(3,)`` half sizes in the local frame (cylinder: ``(r, r, half_height)``).
        yaw: rotation about +z (radians), local -> world.
        material: its :class:`~pri3d.data.synth.textures.Material`.
        instance: instance id it belongs to; label: its NYU-40 class id.
    """

    kind: str
    center: np.ndarray
    half: np.ndarray
    yaw: float
    material: Material
    instance: int = 0
    label: int = 0

    def __post_init__(self):
        self.center = np.asarray(self.center, dtype=np.float64)
        self.half = np.asarray(self.half, dtype=np.float64)
        if self.kind not in ("box", "cyl"):
            raise ValueError(f"unknown primitive kind {self.kind!r}")
        if (self.half <= 0).any():
            raise ValueError(f"primitive half sizes must be positive, got {self.half}")

    def aabb(self) -> tuple[np.ndarray, np.ndarray]:
        """World axis-aligned bounds ``(lo (3,), hi (3,))``."""
        if self.kind == "cyl":
            r = self.half[0]
            ext = np.array([r, r, self.half[2]])
        else:
            c, s = abs(math.cos(self.yaw)), abs(math.sin(self.yaw))
            hx, hy, hz = self.half
            ext = np.array([c * hx + s * hy, s * hx + c * hy, hz])
        return self.center - ext, self.center + ext

    def corners(self) -> np.ndarray:
        """``(8, 3)`` corners of :meth:`aabb` (for screen-space culling)."""
        lo, hi = self.aabb()
        return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])


def _guard(d: np.ndarray) -> np.ndarray:
    return np.where(d == 0, np.float32(1e-30), d)


def intersect(prim: Prim, o: np.ndarray, dx: np.ndarray, dy: np.ndarray, dz: np.ndarray) -> np.ndarray:
    """Nearest hit of rays with a primitive (the ray origin must lie outside it).

    Args:
        prim: the primitive.
        o: ``(3,)`` ray origin (world).
        dx, dy, dz: ``(...)`` float32 direction components (world).

    Returns:
        ``(...)`` float32 ray parameter of the entry point, ``inf`` on a miss.
    """
    f32 = np.float32
    if prim.kind == "box":
        c, s = f32(math.cos(prim.yaw)), f32(math.sin(prim.yaw))
        rel = o - prim.center
        ox = f32(math.cos(prim.yaw) * rel[0] + math.sin(prim.yaw) * rel[1])
        oy = f32(-math.sin(prim.yaw) * rel[0] + math.cos(prim.yaw) * rel[1])
        oz = f32(rel[2])
        lx = c * dx + s * dy
        ly = c * dy - s * dx
        tmin = tmax = None
        for orig, dl, h in ((ox, lx, prim.half[0]), (oy, ly, prim.half[1]), (oz, dz, prim.half[2])):
            inv = f32(1) / _guard(dl)
            ta = (f32(-h) - orig) * inv
            tb = (f32(h) - orig) * inv
            lo, hi = np.minimum(ta, tb), np.maximum(ta, tb)
            tmin = lo if tmin is None else np.maximum(tmin, lo)
            tmax = hi if tmax is None else np.minimum(tmax, hi)
        hit = (tmin <= tmax) & (tmin > _EPS)
        return np.where(hit, tmin, f32(np.inf))
    # vertical cylinder
    r, hz = prim.half[0], prim.half[2]
    ox, oy, oz = (f32(v) for v in (o - prim.center))
    a = dx * dx + dy * dy
    b = ox * dx + oy * dy
    cc = f32(ox * ox + oy * oy - r * r)
    disc = b * b - a * cc
    with np.errstate(invalid="ignore", divide="ignore"):
        ts = (-b - np.sqrt(np.maximum(disc, 0))) / np.where(a > 0, a, f32(1))
        zs = oz + ts * dz
        ok = (disc >= 0) & (a > 1e-12) & (ts > _EPS) & (zs >= -hz) & (zs <= hz)
        t = np.where(ok, ts, f32(np.inf))
        for zc, side in ((f32(hz), oz > hz), (f32(-hz), oz < -hz)):
            if not side:
                continue
            tc = (zc - oz) / _guard(dz)
            px, py = ox + tc * dx, oy + tc * dy
            okc = (tc > _EPS) & (px * px + py * py <= f32(r * r))
            t = np.where(okc & (tc < t), tc, t)
    return t


def intersect_room(size: np.ndarray, o: np.ndarray, dx, dy, dz) -> tuple[np.ndarray, np.ndarray]:
    """Exit point of rays from inside the room box ``[0, Lx] x [0, Ly] x [0, Lz]``.

    Returns:
        ``t``: float32 ray parameters; ``face``: int8 face index, 0: x=0, 1: x=Lx, 2: y=0,
        3: y=Ly, 4: floor (z=0), 5: ceiling (z=Lz).
    """
    ts = []
    for k, dk in enumerate((dx, dy, dz)):
        dk = _guard(dk)
        t_hi = (np.float32(size[k] - o[k])) / dk
        t_lo = (np.float32(-o[k])) / dk
        ts.append(np.where(dk > 0, t_hi, t_lo))
    T = np.stack(ts, axis=0)  # (3, ...)
    ax = np.argmin(T, axis=0)
    t = np.take_along_axis(T, ax[None], axis=0)[0]
    pos = np.take_along_axis(np.stack([dx, dy, dz], 0), ax[None], axis=0)[0] > 0
    face = (ax * 2 + pos).astype(np.int8)
    return t.astype(np.float32, copy=False), face


def _rotz(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def surface_attrs(prim: Prim, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normals and texture coordinates at surface points of a primitive.

    Args:
        prim: the primitive; x: ``(N, 3)`` float32 world points on its surface.

    Returns:
        ``normal`` ``(N, 3)`` float32 world outward unit normals, ``p_tex`` ``(N, 3)`` float32 local
        texture coordinates and ``axis`` ``(N,)`` int8 (see :mod:`pri3d.data.synth.textures`).
    """
    f32 = np.float32
    R = _rotz(prim.yaw).astype(np.float32)
    rel = x - prim.center.astype(np.float32)[None, :]
    # world -> local: rel @ R (R is local->world, so R^T rel = rel @ R)
    pl = rel[:, :1] * R[0] + rel[:, 1:2] * R[1] + rel[:, 2:3] * R[2]
    n = len(x)
    if prim.kind == "box":
        ratio = np.abs(pl) / prim.half.astype(np.float32)[None, :]
        axis = np.argmax(ratio, axis=1).astype(np.int8)
        nl = np.zeros((n, 3), dtype=np.float32)
        nl[np.arange(n), axis] = np.sign(pl[np.arange(n), axis])
        normal = nl[:, :1] * R[:, 0] + nl[:, 1:2] * R[:, 1] + nl[:, 2:3] * R[:, 2]
        return normal.astype(f32), pl.astype(f32), axis
    r = f32(prim.half[0])
    radial = np.sqrt(pl[:, 0] ** 2 + pl[:, 1] ** 2)
    cap = radial < r - f32(1e-4)
    normal = np.zeros((n, 3), dtype=np.float32)
    safe = np.maximum(radial, f32(1e-9))
    normal[:, 0] = np.where(cap, 0, pl[:, 0] / safe)
    normal[:, 1] = np.where(cap, 0, pl[:, 1] / safe)
    normal[:, 2] = np.where(cap, np.sign(pl[:, 2]), 0)
    normal = normal[:, :1] * R[:, 0] + normal[:, 1:2] * R[:, 1] + normal[:, 2:3] * R[:, 2]
    ang = np.arctan2(pl[:, 1], pl[:, 0])
    p_tex = np.where(cap[:, None], pl, np.stack([r * ang, radial - r, pl[:, 2]], axis=1)).astype(f32)
    axis = np.where(cap, 2, 1).astype(np.int8)
    return normal.astype(f32), p_tex, axis


_ROOM_NORMALS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float32)


def room_attrs(face: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inward normals, texture coordinates (world points) and facing axis of room-face hits.

    Args:
        face: ``(N,)`` face indices from :func:`intersect_room`; x: ``(N, 3)`` world points.
    """
    return _ROOM_NORMALS[face.astype(np.int64)], x.astype(np.float32), (face.astype(np.int8) // 2)


# --------------------------------------------------------------------------------------- meshes


def _grid_face(origin, eu, ev, lu: float, lv: float, max_edge: float):
    """A planar rectangle ``origin + a*eu + b*ev`` (a in [0, lu], b in [0, lv]) as a grid of
    triangles with edges no longer than ``max_edge``. Returns ``(V, 3)`` verts, ``(F, 3)`` faces."""
    nu = max(1, math.ceil(lu / max_edge))
    nv = max(1, math.ceil(lv / max_edge))
    a = np.linspace(0.0, lu, nu + 1)
    b = np.linspace(0.0, lv, nv + 1)
    A, B = np.meshgrid(a, b, indexing="ij")  # (nu+1, nv+1)
    V = origin[None, :] + A.reshape(-1, 1) * eu[None, :] + B.reshape(-1, 1) * ev[None, :]
    idx = np.arange((nu + 1) * (nv + 1)).reshape(nu + 1, nv + 1)
    i00, i10, i01, i11 = idx[:-1, :-1], idx[1:, :-1], idx[:-1, 1:], idx[1:, 1:]
    F = np.concatenate(
        [np.stack([i00, i10, i11], -1).reshape(-1, 3), np.stack([i00, i11, i01], -1).reshape(-1, 3)], axis=0
    )
    return V, F


def tessellate(prim: Prim, max_edge: float = 0.25, sagitta: float = 0.001, skip_floor_face: bool = True):
    """Triangle mesh of a primitive (world coordinates).

    Args:
        prim: the primitive.
        max_edge: longest edge of the flat-face grids (metres).
        sagitta: largest distance between a cylinder and its polygon approximation (metres).
        skip_floor_face: drop a bottom face that lies on the floor (``z = 0``): it is never seen.

    Returns:
        ``verts`` ``(V, 3)`` float64, ``faces`` ``(F, 3)`` int64, ``p_tex`` ``(V, 3)`` float32 and
        ``axis`` ``(V,)`` int8 texture coordinates of the vertices (for vertex colours).
    """
    R = _rotz(prim.yaw)
    h = prim.half
    verts, faces, ptex, axes = [], [], [], []
    nv = 0

    def add(Vl, F, Pt, ax):
        nonlocal nv
        verts.append(Vl @ R.T + prim.center[None, :])
        faces.append(F + nv)
        ptex.append(Pt.astype(np.float32))
        axes.append(np.full(len(Vl), ax, dtype=np.int8))
        nv += len(Vl)

    if prim.kind == "box":
        for k in range(3):
            u_ax, v_ax = [a for a in range(3) if a != k]
            for sgn in (-1.0, 1.0):
                if k == 2 and sgn < 0 and skip_floor_face and abs(prim.center[2] - h[2]) < 1e-6:
                    continue
                origin = np.zeros(3)
                origin[k] = sgn * h[k]
                origin[u_ax] = -h[u_ax]
                origin[v_ax] = -h[v_ax]
                eu, ev = np.zeros(3), np.zeros(3)
                eu[u_ax], ev[v_ax] = 1.0, 1.0
                V, F = _grid_face(origin, eu, ev, 2 * h[u_ax], 2 * h[v_ax], max_edge)
                # The grid's triangles face eu x ev (+x, -y, +z for k = 0, 1, 2); wind them outward.
                if (sgn < 0) != (k == 1):
                    F = F[:, [0, 2, 1]]
                add(V, F, V, k)
    else:
        r, hz = float(h[0]), float(h[2])
        nseg = int(np.clip(math.ceil(math.pi / math.acos(max(-1.0, 1.0 - sagitta / r))), 12, 128))
        nz = max(1, math.ceil(2 * hz / max_edge))
        ang = np.linspace(-math.pi, math.pi, nseg + 1)
        zz = np.linspace(-hz, hz, nz + 1)
        Aa, Zz = np.meshgrid(ang, zz, indexing="ij")
        Vs = np.stack([r * np.cos(Aa), r * np.sin(Aa), Zz], -1).reshape(-1, 3)
        Ps = np.stack([r * Aa, np.zeros_like(Aa), Zz], -1).reshape(-1, 3)
        idx = np.arange((nseg + 1) * (nz + 1)).reshape(nseg + 1, nz + 1)
        i00, i10, i01, i11 = idx[:-1, :-1], idx[1:, :-1], idx[:-1, 1:], idx[1:, 1:]
        F = np.concatenate([np.stack([i00, i10, i11], -1).reshape(-1, 3), np.stack([i00, i11, i01], -1).reshape(-1, 3)])
        add(Vs, F, Ps, 1)
        for sgn in (-1.0, 1.0):
            if sgn < 0 and skip_floor_face and abs(prim.center[2] - hz) < 1e-6:
                continue
            ring = np.stack([r * np.cos(ang[:-1]), r * np.sin(ang[:-1]), np.full(nseg, sgn * hz)], -1)
            Vc = np.concatenate([[[0.0, 0.0, sgn * hz]], ring], 0)
            j = np.arange(nseg)
            Fc = np.stack([np.zeros(nseg, dtype=np.int64), 1 + j, 1 + (j + 1) % nseg], -1)
            if sgn < 0:
                Fc = Fc[:, [0, 2, 1]]
            add(Vc, Fc, Vc, 2)
    return (
        np.concatenate(verts).astype(np.float64),
        np.concatenate(faces).astype(np.int64),
        np.concatenate(ptex),
        np.concatenate(axes),
    )


def tessellate_room(size: np.ndarray, face: int, max_edge: float = 0.25):
    """Triangle mesh of one room face (index as in :func:`intersect_room`).

    Returns ``verts`` ``(V, 3)`` float64 and ``faces`` ``(F, 3)`` int64 (texture coordinates are the
    world points themselves).
    """
    Lx, Ly, Lz = (float(v) for v in size)
    k, hi = face // 2, face % 2
    u_ax, v_ax = [a for a in range(3) if a != k]
    origin = np.zeros(3)
    origin[k] = size[k] if hi else 0.0
    eu, ev = np.zeros(3), np.zeros(3)
    eu[u_ax], ev[v_ax] = 1.0, 1.0
    V, F = _grid_face(origin, eu, ev, [Lx, Ly, Lz][u_ax], [Lx, Ly, Lz][v_ax], max_edge)
    if bool(hi) != (k == 1):  # wind the triangles to face into the room
        F = F[:, [0, 2, 1]]
    return V, F
