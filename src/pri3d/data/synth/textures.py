"""Procedural textures and materials of the synthetic generator.

A texture is a pure function of a point on a surface, in the coordinates of the primitive that owns
it (metres). Because it never depends on the camera, the same surface point gets the same albedo
from every viewpoint; only the lighting (specular highlights, exposure, white balance, noise) changes
with the view.

Inputs shared by every texture function:

* ``p``: ``(N, 3)`` float32 local surface points (metres).
* ``axis``: ``(N,)`` int8 index of the local axis the surface faces (0, 1, 2). Flat 2D patterns
  (planks, tiles, stripes, books) use the two other axes as ``(u, v)``; cylinders pass their
  unrolled side as ``p = (r * angle, radial, z)`` with axis 1.

Albedo is returned as ``(N, 3)`` float32 *linear* RGB in ``[0, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Material", "albedo", "value_noise", "fbm", "srgb_to_linear", "linear_to_srgb", "TEXTURE_KINDS"]

TEXTURE_KINDS = ("solid", "noise", "checker", "wood", "fabric", "planks", "tiles", "stripes", "books", "glass")

# A fixed random lattice for value noise (a table lookup is ~3x faster than hashing in numpy).
# Periodic with period 64 lattice cells; every material adds its own offset to decorrelate.
_N = 64
_LATTICE = np.random.default_rng(0x5EED).random(_N**3).astype(np.float32)
# (u, v) axes for a surface facing local axis k: k=0 -> (y, z), k=1 -> (x, z), k=2 -> (x, y).
_U_AXIS = np.array([1, 0, 0], dtype=np.int64)
_V_AXIS = np.array([2, 2, 1], dtype=np.int64)


@dataclass
class Material:
    """Surface appearance of one primitive.

    Attributes:
        kind: one of :data:`TEXTURE_KINDS`.
        color0, color1: linear RGB base colours (the pattern mixes them).
        scale: feature size of the pattern in metres (plank width, tile size, ring spacing...).
        offset: ``(3,)`` texture-space offset (per instance, so equal materials still differ).
        axis: grain axis of wood in the local frame.
        ks: specular strength (0 = matte); shininess: Blinn-Phong exponent.
        emission: linear RGB emitted radiance (windows).
        depth_dropout: probability that the depth sensor misses this surface (glass = 1).
        seed: integer that varies per-tile / per-book colours.
    """

    kind: str = "solid"
    color0: tuple = (0.5, 0.5, 0.5)
    color1: tuple = (0.3, 0.3, 0.3)
    scale: float = 0.1
    offset: tuple = (0.0, 0.0, 0.0)
    axis: int = 0
    ks: float = 0.05
    shininess: float = 10.0
    emission: tuple = (0.0, 0.0, 0.0)
    depth_dropout: float = 0.0
    seed: int = 0
    palette: tuple = field(default_factory=tuple)  # extra colours (books)
    half_height: float = 0.0  # books: half height of the row box (books end below its top)

    def __post_init__(self):
        if self.kind not in TEXTURE_KINDS:
            raise ValueError(f"unknown texture kind {self.kind!r}; expected one of {TEXTURE_KINDS}")


def srgb_to_linear(c):
    """sRGB in [0, 1] -> linear (scalar, tuple or array)."""
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Linear -> sRGB in [0, 1] (input clipped to [0, 1]); keeps float32."""
    x = np.clip(x, 0.0, 1.0).astype(np.float32, copy=False)
    return np.where(
        x <= 0.0031308, x * np.float32(12.92), np.float32(1.055) * np.power(x, np.float32(1 / 2.4)) - np.float32(0.055)
    )


def value_noise(p: np.ndarray) -> np.ndarray:
    """Smooth 3D value noise. ``p``: ``(N, 3)`` in lattice units -> ``(N,)`` float32 in ``[0, 1]``."""
    fl = np.floor(p)
    f = (p - fl).astype(np.float32)
    i = fl.astype(np.int64) & (_N - 1)
    w = f * f * (np.float32(3) - np.float32(2) * f)
    x0, y0, z0 = i[:, 0], i[:, 1] * _N, i[:, 2] * (_N * _N)
    x1, y1, z1 = (x0 + 1) & (_N - 1), ((i[:, 1] + 1) & (_N - 1)) * _N, ((i[:, 2] + 1) & (_N - 1)) * (_N * _N)
    L = _LATTICE
    wx, wy, wz = w[:, 0], w[:, 1], w[:, 2]
    c00 = L[x0 + y0 + z0] + wx * (L[x1 + y0 + z0] - L[x0 + y0 + z0])
    c10 = L[x0 + y1 + z0] + wx * (L[x1 + y1 + z0] - L[x0 + y1 + z0])
    c01 = L[x0 + y0 + z1] + wx * (L[x1 + y0 + z1] - L[x0 + y0 + z1])
    c11 = L[x0 + y1 + z1] + wx * (L[x1 + y1 + z1] - L[x0 + y1 + z1])
    c0 = c00 + wy * (c10 - c00)
    c1 = c01 + wy * (c11 - c01)
    return c0 + wz * (c1 - c0)


def fbm(p: np.ndarray, octaves: int = 3) -> np.ndarray:
    """Fractal sum of :func:`value_noise` octaves, ``(N, 3)`` -> ``(N,)`` in about ``[0, 1]``."""
    out = np.zeros(len(p), dtype=np.float32)
    amp, total = 1.0, 0.0
    q = p.astype(np.float32, copy=True)
    for _ in range(octaves):
        out += np.float32(amp) * value_noise(q)
        total += amp
        amp *= 0.5
        q = q * np.float32(2.03) + np.float32(17.1)
    return out / np.float32(total)


def _hash01(i: np.ndarray, seed: int) -> np.ndarray:
    """Integer ids -> pseudo-random float32 in [0, 1) (per tile / plank / book colours)."""
    n = (i.astype(np.int64) * 0x2545F491 + seed * 0x9E3779B1 + 0x632BE5AB) & 0xFFFFFFFF
    n = ((n ^ (n >> 15)) * 0x2C1B3C6D) & 0xFFFFFFFF
    n = ((n ^ (n >> 12)) * 0x297A2D39) & 0xFFFFFFFF
    n = n ^ (n >> 15)
    return (n & 0xFFFFFF).astype(np.float32) / np.float32(0x1000000)


def _uv(p: np.ndarray, axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = axis.astype(np.int64)
    idx = np.arange(len(p))
    return p[idx, _U_AXIS[a]], p[idx, _V_AXIS[a]]


def _mix(c0, c1, t: np.ndarray) -> np.ndarray:
    c0 = np.asarray(c0, dtype=np.float32)
    c1 = np.asarray(c1, dtype=np.float32)
    return c0[None, :] + t[:, None].astype(np.float32) * (c1 - c0)[None, :]


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - np.float32(e0)) / np.float32(e1 - e0), 0, 1)
    return t * t * (np.float32(3) - np.float32(2) * t)


def _wood_t(q: np.ndarray, axis: int, scale: float) -> np.ndarray:
    """Ring pattern in [0, 1] for wood whose grain runs along local ``axis``."""
    a, b = [k for k in range(3) if k != axis]
    warp = fbm(q * np.array([2.5 if k == axis else 12.0 for k in range(3)], dtype=np.float32), 2)
    r = np.sqrt(q[:, a] ** 2 + q[:, b] ** 2) / np.float32(scale) + np.float32(2.0) * warp
    rings = r - np.floor(r)
    return _smoothstep(0.1, 0.75, rings) ** 2


def albedo(mat: Material, p: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Linear RGB albedo of ``mat`` at local points ``p`` (``(N, 3)``) facing ``axis`` (``(N,)``).

    Returns ``(N, 3)`` float32 in ``[0, 1]``.
    """
    n = len(p)
    if n == 0:
        return np.zeros((0, 3), dtype=np.float32)
    q = p.astype(np.float32) + np.asarray(mat.offset, dtype=np.float32)[None, :]
    s = np.float32(mat.scale)
    k = mat.kind
    if k == "solid" or k == "glass":
        t = fbm(q / np.float32(0.35), 2)
        out = _mix(mat.color0, mat.color0, t) * (np.float32(0.94) + np.float32(0.12) * t)[:, None]
    elif k == "noise":
        t = fbm(q / s, 3)
        out = _mix(mat.color0, mat.color1, _smoothstep(0.3, 0.7, t))
    elif k == "checker":
        u, v = _uv(q, axis)
        c = (np.floor(u / s) + np.floor(v / s)).astype(np.int64) & 1
        out = _mix(mat.color0, mat.color1, c.astype(np.float32))
        out *= (np.float32(0.93) + np.float32(0.14) * fbm(q / np.float32(0.2), 2))[:, None]
    elif k == "wood":
        t = _wood_t(q, mat.axis, s)
        out = _mix(mat.color0, mat.color1, t)
        out *= (np.float32(0.9) + np.float32(0.2) * fbm(q * np.float32(40.0), 2))[:, None]
    elif k == "fabric":
        u, v = _uv(q, axis)
        coarse = fbm(q / s, 3)
        weave = np.sin(u * np.float32(2 * np.pi / 0.012)) * np.sin(v * np.float32(2 * np.pi / 0.012))
        t = _smoothstep(0.25, 0.75, coarse)
        out = _mix(mat.color0, mat.color1, t) * (np.float32(0.95) + np.float32(0.05) * weave)[:, None]
    elif k == "planks":
        u, v = _uv(q, axis)
        width, length = s, s * np.float32(6.0)
        row = np.floor(v / width)
        shift = _hash01(row, mat.seed) * length
        col = np.floor((u + shift) / length)
        pid = row.astype(np.int64) * 7919 + col.astype(np.int64)
        tint = np.float32(0.8) + np.float32(0.4) * _hash01(pid, mat.seed + 1)
        grain_q = np.stack([u + shift, v - row * width, _hash01(pid, mat.seed + 2) * 5], axis=1).astype(np.float32)
        t = _wood_t(grain_q, 0, 0.04)
        out = _mix(mat.color0, mat.color1, t) * tint[:, None]
        fu = (u + shift) / length - col
        fv = v / width - row
        edge = (np.minimum(fv, 1 - fv) * width < 0.002) | (np.minimum(fu, 1 - fu) * length < 0.002)
        out[edge] *= np.float32(0.45)
    elif k == "tiles":
        u, v = _uv(q, axis)
        iu, iv = np.floor(u / s), np.floor(v / s)
        fu, fv = u / s - iu, v / s - iv
        tid = iu.astype(np.int64) * 7919 + iv.astype(np.int64)
        var = np.float32(0.92) + np.float32(0.16) * _hash01(tid, mat.seed)
        out = np.asarray(mat.color0, dtype=np.float32)[None, :] * var[:, None]
        out *= (np.float32(0.95) + np.float32(0.1) * fbm(q / np.float32(0.15), 2))[:, None]
        grout_w = np.float32(0.005) / s
        grout = (np.minimum(fu, 1 - fu) < grout_w) | (np.minimum(fv, 1 - fv) < grout_w)
        out[grout] = np.asarray(mat.color1, dtype=np.float32)
    elif k == "stripes":
        u, v = _uv(q, axis)
        t = (np.floor(u / s).astype(np.int64) & 1).astype(np.float32)
        out = _mix(mat.color0, mat.color1, t)
        out *= (np.float32(0.92) + np.float32(0.16) * fbm(q / np.float32(0.3), 2))[:, None]
    elif k == "books":
        # a row of books along local x: per-book colour and height, dark gaps between spines.
        x, z = q[:, 0], p[:, 2].astype(np.float32)
        pos = x / s
        bid = np.floor(pos + np.float32(0.4) * np.sin(pos * np.float32(0.7)))
        frac = pos - np.floor(pos)
        pal = np.asarray(mat.palette or (mat.color0, mat.color1), dtype=np.float32)
        out = pal[(_hash01(bid, mat.seed) * len(pal)).astype(np.int64) % len(pal)].copy()
        out *= (np.float32(0.7) + np.float32(0.5) * _hash01(bid, mat.seed + 3))[:, None]
        hz = np.float32(mat.half_height)
        book_top = -hz + np.float32(2) * hz * (np.float32(0.65) + np.float32(0.35) * _hash01(bid, mat.seed + 5))
        gap = (frac < 0.06) | (z > book_top)  # z is measured from the box centre
        out[gap] = np.asarray(mat.color1, dtype=np.float32) * np.float32(0.3)
    else:  # pragma: no cover - guarded by Material.__post_init__
        raise ValueError(k)
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)
