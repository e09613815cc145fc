"""CPU ray casting of a synthetic scene into colour, sensor-like depth, labels and instances.

One ray per pixel, vectorised with numpy. Each primitive is only tested against the pixels inside
the screen rectangle its bounding box projects to, so the cost grows with the area objects cover,
not with (pixels x primitives).

Appearance varies with the viewpoint the way it does in real scans: several point lights with
Lambertian shading and Blinn-Phong highlights, a screen-space ambient-occlusion term, per-frame
auto-exposure with jitter, white-balance jitter, vignetting, shot and read noise, then sRGB.

Depth imitates a structured-light sensor: axial noise that grows with distance and incidence
angle (Nguyen et al. 2012, Kinect), holes at grazing angles, on dark and on shiny surfaces, on glass
and at depth discontinuities, a valid range cut-off, and millimetre quantisation.

Conventions: depth in metres (0 = invalid), pose camera-to-world 4x4 (OpenCV camera axes), K 3x3.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from pri3d.data.synth.primitives import intersect, intersect_room, room_attrs, surface_attrs
from pri3d.data.synth.scene import SceneSpec
from pri3d.data.synth.textures import albedo, linear_to_srgb
from pri3d.geometry.rays import pixel_rays

__all__ = ["RenderParams", "FrameRender", "render_frame", "cast_rays", "CompiledScene", "compile_scene"]

_NEAR = 0.05  # camera-space depth below which culling falls back to the whole image


@dataclass
class RenderParams:
    """Sensor and appearance settings (defaults: a Kinect/Structure-like RGB-D camera).

    ``noise=False`` gives the clean image and the exact depth (still range-cut and quantised to
    mm), which the tests use to check geometry.
    """

    min_depth: float = 0.3
    max_depth: float = 6.0
    noise: bool = True
    depth_sigma: tuple[float, float, float] = (0.0012, 0.0019, 0.0001)  # a + b (z - 0.4)^2 + c theta term
    grazing_cos: tuple[float, float] = (0.22, 0.07)  # holes start below the first |cos|, certain below the second
    dark_albedo: float = 0.015  # holes become likely on surfaces darker than this (linear)
    edge_holes: float = 0.6  # hole probability at depth discontinuities
    speckle: float = 0.004  # random isolated holes
    exposure_jitter: float = 0.2  # log-normal sigma of the per-frame exposure
    white_balance_jitter: float = 0.04
    read_noise: float = 0.006
    shot_noise: float = 0.012
    ao_strength: float = 0.6


@dataclass
class FrameRender:
    color: np.ndarray  # (H, W, 3) uint8 RGB
    depth: np.ndarray  # (H, W) float32 metres, quantised to mm, 0 = invalid
    depth_true: np.ndarray  # (H, W) float32 metres, exact ray-cast depth (no noise, no holes)
    label: np.ndarray  # (H, W) uint8 NYU-40 ids
    instance: np.ndarray  # (H, W) uint16 instance ids


@dataclass
class CompiledScene:
    """Per-scene arrays prepared once for rendering."""

    spec: SceneSpec
    corners: np.ndarray  # (P, 8, 3) bounding-box corners of each primitive
    labels: np.ndarray  # (6 + P,) uint8 per pixel-id (room faces first)
    instances: np.ndarray  # (6 + P,) uint16
    groups: list[tuple[np.ndarray, np.ndarray]]  # per object: (corners (8, 3), primitive indices)


def compile_scene(spec: SceneSpec) -> CompiledScene:
    P = len(spec.prims)
    corners = np.stack([p.corners() for p in spec.prims]) if P else np.zeros((0, 8, 3))
    il = spec.instance_labels()
    labels = np.array([il[i] for i in spec.room_instances] + [p.label for p in spec.prims], dtype=np.uint8)
    instances = np.array(list(spec.room_instances) + [p.instance for p in spec.prims], dtype=np.uint16)
    groups = []
    start = 0
    for o in spec.objects:
        n = len(o.prims)
        if n:
            idx = np.arange(start, start + n)
            c = corners[idx].reshape(-1, 3)
            lo, hi = c.min(0), c.max(0)
            box = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
            groups.append((box, idx))
        start += n
    return CompiledScene(spec, corners, labels, instances, groups)


def _rays(pose: np.ndarray, K: np.ndarray, H: int, W: int):
    """World ray directions with camera-frame z = 1, as three ``(H, W)`` float32 arrays."""
    u, v = pixel_rays(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64), K)
    R = pose[:3, :3]
    # d = R @ (u, v, 1), written out per component (no BLAS: identical bits in every process)
    out = []
    for k in range(3):
        out.append((R[k, 0] * u[None, :] + R[k, 1] * v[:, None] + R[k, 2]).astype(np.float32))
    return out


def _rects(corners: np.ndarray, pose: np.ndarray, K: np.ndarray, H: int, W: int) -> np.ndarray:
    """Screen rectangles ``(N, 4)`` = (r0, r1, c0, c1) of bounding boxes ``(N, 8, 3)``; empty when
    r0 >= r1. Boxes reaching behind the near plane get the whole image (conservative)."""
    R, o = pose[:3, :3], pose[:3, 3]
    rel = corners - o
    # camera coordinates R^T rel: a dot product with each column of R
    pc = np.stack([(rel * R[:, k]).sum(-1) for k in range(3)], axis=-1)
    z = pc[..., 2]
    behind = (z <= _NEAR).all(1)
    partial = (z <= _NEAR).any(1) & ~behind
    zs = np.where(z > _NEAR, z, 1.0)
    u = K[0, 0] * pc[..., 0] / zs + K[0, 2]
    v = K[1, 1] * pc[..., 1] / zs + K[1, 2]
    c0 = np.clip(np.floor(u.min(1)) - 1, 0, W).astype(np.int64)
    c1 = np.clip(np.ceil(u.max(1)) + 2, 0, W).astype(np.int64)
    r0 = np.clip(np.floor(v.min(1)) - 1, 0, H).astype(np.int64)
    r1 = np.clip(np.ceil(v.max(1)) + 2, 0, H).astype(np.int64)
    out = np.stack([r0, r1, c0, c1], 1)
    out[partial] = (0, H, 0, W)
    out[behind] = (0, 0, 0, 0)
    out[(c0 >= c1)] = (0, 0, 0, 0)
    return out


def cast_rays(cs: CompiledScene, pose: np.ndarray, K: np.ndarray, H: int, W: int):
    """Ray-cast the scene.

    Returns:
        ``t``: ``(H, W)`` float32 hit depth (camera z, metres); ``pid``: ``(H, W)`` int32 index of the
        surface hit (0..5 room faces, ``6 + i`` primitive ``i``); ``(dx, dy, dz)`` world rays.
    """
    spec = cs.spec
    dx, dy, dz = _rays(pose, K, H, W)
    o = pose[:3, 3].astype(np.float64)
    t, face = intersect_room(spec.size, o, dx, dy, dz)
    pid = face.astype(np.int32)
    if cs.groups:
        obj_rects = _rects(np.stack([g[0] for g in cs.groups]), pose, K, H, W)
        for (_, idx), (r0, r1, c0, c1) in zip(cs.groups, obj_rects):
            if r0 >= r1 or c0 >= c1:
                continue
            rects = _rects(cs.corners[idx], pose, K, H, W)
            for i, (a0, a1, b0, b1) in zip(idx, rects):
                if a0 >= a1 or b0 >= b1:
                    continue
                tp = intersect(spec.prims[i], o, dx[a0:a1, b0:b1], dy[a0:a1, b0:b1], dz[a0:a1, b0:b1])
                sub_t = t[a0:a1, b0:b1]
                closer = tp < sub_t
                if closer.any():
                    sub_t[closer] = tp[closer]
                    pid[a0:a1, b0:b1][closer] = 6 + i
    return t, pid, (dx, dy, dz)


def _surfaces(cs: CompiledScene, t, pid, rays, o):
    """Per-pixel world points, normals and material terms (flattened, length H*W)."""
    spec = cs.spec
    N = t.size
    dx, dy, dz = (r.reshape(-1) for r in rays)
    tf = t.reshape(-1)
    X = np.stack([o[0] + tf * dx, o[1] + tf * dy, o[2] + tf * dz], axis=1).astype(np.float32)
    normal = np.zeros((N, 3), np.float32)
    alb = np.zeros((N, 3), np.float32)
    ks = np.zeros(N, np.float32)
    shin = np.ones(N, np.float32)
    emis = np.zeros((N, 3), np.float32)
    drop = np.zeros(N, np.float32)
    flat = pid.reshape(-1)
    order = np.argsort(flat, kind="stable")
    counts = np.bincount(flat, minlength=6 + len(spec.prims))
    ends = np.cumsum(counts)
    for g in np.nonzero(counts)[0]:
        sel = order[ends[g] - counts[g] : ends[g]]
        x = X[sel]
        if g < 6:
            n, ptex, axis = room_attrs(np.full(len(sel), g, np.int8), x)
            mat = spec.room_materials[g]
        else:
            prim = spec.prims[g - 6]
            n, ptex, axis = surface_attrs(prim, x)
            mat = prim.material
        normal[sel] = n
        alb[sel] = albedo(mat, ptex, axis)
        ks[sel] = mat.ks
        shin[sel] = mat.shininess
        if any(mat.emission):
            emis[sel] = np.asarray(mat.emission, np.float32)
        if mat.depth_dropout:
            drop[sel] = mat.depth_dropout
    return X, normal, alb, ks, shin, emis, drop


def _shade(cs: CompiledScene, X, normal, alb, ks, shin, emis, view, floor_mask, ao):
    """Linear radiance ``(N, 3)``. Vectors are handled as separate component arrays (fast in numpy)."""
    spec = cs.spec
    f32 = np.float32
    px, py, pz = (np.ascontiguousarray(X[:, k]) for k in range(3))
    nx, ny, nz = (np.ascontiguousarray(normal[:, k]) for k in range(3))
    vx, vy, vz = view
    # normals face the viewer (thin parts may be seen from behind)
    sgn = np.where(nx * vx + ny * vy + nz * vz < 0, f32(-1), f32(1))
    nx, ny, nz = nx * sgn, ny * sgn, nz * sgn
    diffuse = [np.zeros_like(px) for _ in range(3)]
    specular = [np.zeros_like(px) for _ in range(3)]
    spec_w = ks * (shin + f32(8)) / f32(8 * math.pi)
    for light in spec.lights:
        lx = f32(light.position[0]) - px
        ly = f32(light.position[1]) - py
        lz = f32(light.position[2]) - pz
        d2 = lx * lx + ly * ly + lz * lz
        inv = f32(1) / np.sqrt(d2)
        lx, ly, lz = lx * inv, ly * inv, lz * inv
        w = np.maximum(nx * lx + ny * ly + nz * lz, 0) / (d2 + f32(0.6))
        hx, hy, hz = lx + vx, ly + vy, lz + vz
        ndh = np.maximum(nx * hx + ny * hy + nz * hz, 0) / np.maximum(np.sqrt(hx * hx + hy * hy + hz * hz), f32(1e-6))
        sw = spec_w * np.power(ndh, shin) * w
        for k in range(3):
            c = f32(light.color[k])
            diffuse[k] += c * w
            specular[k] += c * sw
    occl = ao.copy()
    if floor_mask.any():
        cell = spec.occlusion_cell
        occ = spec.floor_occlusion
        ix = np.clip((px[floor_mask] / cell).astype(np.int64), 0, occ.shape[0] - 1)
        iy = np.clip((py[floor_mask] / cell).astype(np.int64), 0, occ.shape[1] - 1)
        occl[floor_mask] *= f32(1) - f32(0.55) * occ[ix, iy]
    amb_w = (f32(0.8) + f32(0.2) * np.abs(nz)) * occl
    spec_occl = np.sqrt(occl)
    out = np.empty_like(alb)
    for k in range(3):
        light_k = f32(spec.ambient[k]) * amb_w + diffuse[k] * occl
        out[:, k] = alb[:, k] * light_k + specular[k] * spec_occl + emis[:, k]
    return out


@functools.lru_cache(maxsize=8)
def _vignette(H: int, W: int) -> np.ndarray:
    """``(H, W)`` float32 fall-off towards the corners (30 % darker in the corners)."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    r2 = ((xx - (W - 1) / 2) ** 2 + (yy - (H - 1) / 2) ** 2) / np.float32(((W - 1) / 2) ** 2 + ((H - 1) / 2) ** 2)
    return np.float32(1) - np.float32(0.3) * r2


def _screen_ao(t: np.ndarray, strength: float) -> np.ndarray:
    """Cheap screen-space ambient occlusion: concave places are farther than their surroundings."""
    H, W = t.shape
    k = max(3, (W // 16) | 1)
    blur = cv2.blur(t, (k, k), borderType=cv2.BORDER_REPLICATE)
    occ = np.clip((t - blur) / np.maximum(t, 1e-3) * 4.0, 0, 1)
    return (1.0 - strength * occ).astype(np.float32)


def _depth_sigma(z, cos_inc, p: RenderParams):
    a, b, c = p.depth_sigma
    theta = np.arccos(np.clip(cos_inc, 0.0, 1.0))
    return (
        a + b * (z - 0.4) ** 2 + c / np.sqrt(np.maximum(z, 0.1)) * theta**2 / np.maximum(np.pi / 2 - theta, 0.05) ** 2
    )


def _blobs(rng: np.random.Generator, H: int, W: int, cell: int = 4) -> np.ndarray:
    """Spatially coherent uniform-ish noise in [0, 1) (holes come in blobs, not salt and pepper)."""
    small = rng.random((H // cell + 2, W // cell + 2)).astype(np.float32)
    big = cv2.resize(small, (W + 2 * cell, H + 2 * cell), interpolation=cv2.INTER_LINEAR)[
        cell : cell + H, cell : cell + W
    ]
    return 0.6 * big + 0.4 * rng.random((H, W)).astype(np.float32)


def render_frame(
    cs: CompiledScene,
    pose: np.ndarray,
    K: np.ndarray,
    height: int,
    width: int,
    rng: np.random.Generator,
    params: RenderParams | None = None,
) -> FrameRender:
    """Render one frame.

    Args:
        cs: the compiled scene (:func:`compile_scene`).
        pose: ``(4, 4)`` camera-to-world (OpenCV axes). K: ``(3, 3)`` intrinsics.
        height, width: image size. rng: the frame's random generator (noise, jitter, holes).
        params: sensor settings.
    """
    p = params or RenderParams()
    H, W = height, width
    f32 = np.float32
    o = pose[:3, 3].astype(np.float64)
    t, pid, rays = cast_rays(cs, pose, K, H, W)
    X, normal, alb, ks, shin, emis, drop = _surfaces(cs, t, pid, rays, o)
    rx, ry, rz = (r.reshape(-1) for r in rays)
    inv = -f32(1) / np.sqrt(rx * rx + ry * ry + rz * rz)
    view = (rx * inv, ry * inv, rz * inv)  # unit vectors towards the camera
    flat_pid = pid.reshape(-1)
    ao = _screen_ao(t, p.ao_strength).reshape(-1) if p.ao_strength > 0 else np.ones(t.size, f32)
    rad = _shade(cs, X, normal, alb, ks, shin, emis, view, flat_pid == 4, ao).reshape(H, W, 3)
    color = _camera(rad, rng, p)
    z = _depth_sensor(t, normal, view, alb, ks, drop, rng, p)
    return FrameRender(
        color=color,
        depth=z.astype(np.float32),
        depth_true=t,
        label=cs.labels[pid],
        instance=cs.instances[pid],
    )


def _camera(rad: np.ndarray, rng: np.random.Generator, p: RenderParams) -> np.ndarray:
    """``(H, W, 3)`` linear radiance -> ``(H, W, 3)`` uint8 sRGB: auto-exposure (with jitter), white
    balance, vignetting, lens blur, shot and read noise, a soft highlight shoulder."""
    H, W = rad.shape[:2]
    f32 = np.float32
    lum = f32(0.2126) * rad[..., 0] + f32(0.7152) * rad[..., 1] + f32(0.0722) * rad[..., 2]
    key = f32(0.2)
    exposure = key / max(float(np.mean(np.clip(lum, 0, 4))), 1e-3)
    if p.noise:
        exposure *= math.exp(rng.normal(0, p.exposure_jitter))
        wb = np.exp(rng.normal(0, p.white_balance_jitter, 3))
        wb /= wb[1]
    else:
        wb = np.ones(3)
    exposure = float(np.clip(exposure, 0.2, 8.0))
    img = rad * (f32(exposure) * wb.astype(f32))[None, None, :]
    img *= _vignette(H, W)[..., None]
    img = cv2.GaussianBlur(img, (0, 0), sigmaX=0.55, borderType=cv2.BORDER_REPLICATE)
    if p.noise:
        img = np.clip(img, 0, None)
        # shot noise (variance ~ signal) and read noise in one Gaussian draw
        std = np.sqrt(img * f32(p.shot_noise**2) + f32(p.read_noise**2))
        img = img + std * rng.standard_normal(img.shape, dtype=f32)
    # soft shoulder so highlights roll off instead of clipping hard
    img = np.where(img > 0.8, f32(0.8) + f32(0.2) * np.tanh((img - f32(0.8)) / f32(0.2)), img)
    return np.round(linear_to_srgb(img) * 255).astype(np.uint8)


def _depth_sensor(t, normal, view, alb, ks, drop, rng: np.random.Generator, p: RenderParams) -> np.ndarray:
    """``(H, W)`` true depth -> ``(H, W)`` sensor depth (metres, 0 = no reading): noise growing
    with distance and incidence, holes (grazing angles, dark or shiny surfaces, glass, depth edges,
    speckle), the range cut-off and mm quantisation."""
    H, W = t.shape
    f32 = np.float32
    z = t.copy()
    if p.noise:
        cos_inc = np.abs(normal[:, 0] * view[0] + normal[:, 1] * view[1] + normal[:, 2] * view[2]).reshape(H, W)
        sigma = _depth_sigma(z, cos_inc, p).astype(f32)
        z = z + sigma * rng.standard_normal(z.shape, dtype=f32)
        c0, c1 = p.grazing_cos
        p_hole = np.clip((c0 - cos_inc) / (c0 - c1), 0, 1)
        lum_alb = (f32(0.2126) * alb[:, 0] + f32(0.7152) * alb[:, 1] + f32(0.0722) * alb[:, 2]).reshape(H, W)
        # the projector pattern is a few pixels wide: thin dark lines (seams, grain) still return depth
        lum_alb = cv2.GaussianBlur(lum_alb, (0, 0), sigmaX=max(1.0, W / 160), borderType=cv2.BORDER_REPLICATE)
        p_hole = np.maximum(p_hole, np.clip((p.dark_albedo * 2 - lum_alb) / p.dark_albedo, 0, 1) * 0.8)
        shiny = ks.reshape(H, W)
        p_hole = np.maximum(p_hole, np.clip(shiny - 0.35, 0, None) * (cos_inc**30 * 1.5 + (1 - cos_inc) * 0.4))
        p_hole = np.maximum(p_hole, drop.reshape(H, W))
        # depth discontinuities: the projector's shadow and mixed pixels
        gx = np.abs(np.diff(t, axis=1, prepend=t[:, :1]))
        gy = np.abs(np.diff(t, axis=0, prepend=t[:1, :]))
        jump = np.maximum(gx, gy) > 0.04 * t
        p_hole = np.where(jump, np.maximum(p_hole, p.edge_holes), p_hole)
        p_hole = np.maximum(p_hole, p.speckle)
        z[_blobs(rng, H, W) < p_hole] = 0
    z[(t < p.min_depth) | (t > p.max_depth)] = 0
    z = np.round(z * 1000.0) / 1000.0
    z[(z < p.min_depth) | (z > p.max_depth) | ~np.isfinite(z)] = 0
    return z
