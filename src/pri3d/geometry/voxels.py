"""Voxel geometry for the geometric-prior branch: pure functions.

Voxel convention: integer coordinates ``coords`` (``(M, 3)`` int32) with a world ``origin``
(``(3,)`` float64) and an edge ``voxel_size`` in metres. Voxel ``i`` spans
``origin + coords[i] * voxel_size`` .. ``+ voxel_size``; its centre is
``origin + (coords[i] + 0.5) * voxel_size``.

Poses are camera-to-world ``(4, 4)`` float64 (OpenCV camera axes: x right, y down, z forward);
intrinsics ``(3, 3)``. Sizes, radii and spacings are arguments, never module constants.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from pri3d.geometry.overlap import affine
from pri3d.geometry.rays import pixel_rays

__all__ = [
    "voxel_keys",
    "voxel_keys_to_coords",
    "voxelize_points",
    "sample_mesh_surface",
    "frustum_aabb",
    "crop_voxels",
    "pixel_voxel_correspondences",
    "voxelize_surface",
    "fusion_samples",
    "fuse_depth",
    "frame_boxes",
    "voxels_in_frustum",
]

# Packing of integer voxel coordinates into one int64 key: 21 bits per axis with an offset, which
# keeps lexicographic (x, y, z) order. Coordinates must lie in [-2**20, 2**20).
_BITS = 21
_OFF = 1 << (_BITS - 1)


def voxel_keys(coords):
    """``(M, 3)`` integer voxel coordinates (numpy or torch) -> ``(M,)`` int64 keys that sort like
    the coordinates in lexicographic (x, y, z) order. Raises ``ValueError`` outside +-2**20."""
    if isinstance(coords, torch.Tensor):
        c = coords.to(torch.int64)
        if c.numel() and (c.min() < -_OFF or c.max() >= _OFF):
            raise ValueError("voxel coordinates out of range for int64 keys (|c| >= 2**20)")
        c = c + _OFF
        return (c[:, 0] << (2 * _BITS)) | (c[:, 1] << _BITS) | c[:, 2]
    c = np.asarray(coords, dtype=np.int64)
    if c.size and (c.min() < -_OFF or c.max() >= _OFF):
        raise ValueError("voxel coordinates out of range for int64 keys (|c| >= 2**20)")
    c = c + _OFF
    return (c[:, 0] << (2 * _BITS)) | (c[:, 1] << _BITS) | c[:, 2]


def voxel_keys_to_coords(keys):
    """Inverse of :func:`voxel_keys`: ``(M,)`` int64 keys (numpy or torch) -> ``(M, 3)`` int64 voxel
    coordinates, of the same array type."""
    mask = (1 << _BITS) - 1
    if isinstance(keys, torch.Tensor):
        k = keys.to(torch.int64)
        return torch.stack([(k >> (2 * _BITS)) & mask, (k >> _BITS) & mask, k & mask], dim=1) - _OFF
    k = np.asarray(keys, dtype=np.int64)
    return np.stack([(k >> (2 * _BITS)) & mask, (k >> _BITS) & mask, k & mask], axis=1) - _OFF


def voxelize_points(points, voxel_size: float, origin=None, *, attrs=None, return_counts: bool = False):
    """Occupied voxels of a point set.

    Args:
        points: ``(P, 3)`` world metres (numpy or torch).
        voxel_size: edge in metres.
        origin: ``(3,)`` world position of voxel ``(0, 0, 0)``'s corner. Default: the points'
            minimum snapped down to a multiple of ``voxel_size`` (so coordinates are >= 0 and the
            grid is aligned across calls).
        attrs: optional ``(P, C)`` per-point values (e.g. colours); their per-voxel mean is returned.
        return_counts: also return how many points fell in each voxel.

    Returns:
        ``coords`` ``(M, 3)`` int32, unique and sorted lexicographically; ``origin`` ``(3,)``
        float64; then ``attrs`` ``(M, C)`` float64 means (when given) and ``counts`` ``(M,)`` int64
        (when asked), in that order.
    """
    if voxel_size <= 0:
        raise ValueError(f"voxel_size must be > 0, got {voxel_size}")
    pts = points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 3)
    finite = np.isfinite(pts).all(axis=1)
    if not finite.all():
        pts = pts[finite]
    if origin is None:
        origin = np.floor(pts.min(axis=0) / voxel_size) * voxel_size if len(pts) else np.zeros(3)
    origin = np.asarray(origin, dtype=np.float64).reshape(3)
    idx = np.floor((pts - origin) / voxel_size).astype(np.int64)
    keys = voxel_keys(idx)
    ukeys, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    out = [voxel_keys_to_coords(ukeys).astype(np.int32), origin]
    if attrs is not None:
        a = attrs.detach().cpu().numpy() if isinstance(attrs, torch.Tensor) else np.asarray(attrs)
        a = np.asarray(a, dtype=np.float64).reshape(len(finite), -1)[finite]
        sums = np.zeros((len(ukeys), a.shape[1]), dtype=np.float64)
        np.add.at(sums, inverse.reshape(-1), a)
        out.append(sums / counts[:, None])
    if return_counts:
        out.append(counts.astype(np.int64))
    return tuple(out)


def sample_mesh_surface(
    vertices, faces, spacing: float, vertex_attrs=None, *, max_points: int = 50_000_000, include_vertices: bool = True
):
    """Sample a triangle mesh's surface on a regular barycentric grid per face.

    Each face is subdivided ``n = ceil(longest_edge / spacing)`` times along its edges, so samples
    are at most ``spacing`` apart along the edge directions and every surface point lies within
    ``spacing`` of a sample. All vertices are included unless ``include_vertices=False`` (useful when
    a big mesh is sampled in chunks of faces: add the vertices once).

    Args:
        vertices: ``(V, 3)`` float.
        faces: ``(F, 3)`` int vertex indices.
        spacing: metres (use at most half the voxel size to voxelize without holes).
        vertex_attrs: optional ``(V, C)`` per-vertex values (e.g. colours), interpolated
            barycentrically.
        max_points: raise ``ValueError`` rather than produce more samples than this.

    Returns:
        ``points`` ``(P, 3)`` float64, and ``attrs`` ``(P, C)`` float64 when ``vertex_attrs`` is given.
    """
    if spacing <= 0:
        raise ValueError(f"spacing must be > 0, got {spacing}")
    V = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    F = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    A = None if vertex_attrs is None else np.asarray(vertex_attrs, dtype=np.float64).reshape(len(V), -1)
    if len(F) and (F.min() < 0 or F.max() >= len(V)):
        raise ValueError(f"face indices out of range for {len(V)} vertices")
    tri = V[F]  # (F, 3, 3)
    edges = np.stack(
        [
            np.linalg.norm(tri[:, 1] - tri[:, 0], axis=1),
            np.linalg.norm(tri[:, 2] - tri[:, 1], axis=1),
            np.linalg.norm(tri[:, 0] - tri[:, 2], axis=1),
        ],
        axis=1,
    )
    n = np.maximum(1, np.ceil(edges.max(axis=1) / spacing)).astype(np.int64) if len(F) else np.zeros(0, np.int64)
    # Interior samples only for faces needing subdivision (n >= 2); the vertices cover n == 1.
    total = int(((n + 1) * (n + 2) // 2)[n >= 2].sum()) + (len(V) if include_vertices else 0)
    if total > max_points:
        raise ValueError(f"sampling the mesh at {spacing} m would create {total} points (> {max_points})")
    pts = [V] if include_vertices else [np.zeros((0, 3))]
    att = ([A] if include_vertices else [np.zeros((0, A.shape[1]))]) if A is not None else []
    for k in np.unique(n[n >= 2]):
        k = int(k)
        i, j = np.meshgrid(np.arange(k + 1), np.arange(k + 1), indexing="ij")
        keep = (i + j) <= k
        w1, w2 = i[keep] / k, j[keep] / k
        bary = np.stack([1.0 - w1 - w2, w1, w2], axis=1)  # (S, 3)
        sel = np.nonzero(n == k)[0]
        # Chunk faces so one einsum stays a few hundred MB at most.
        step = max(1, 4_000_000 // len(bary))
        for s in range(0, len(sel), step):
            fs = sel[s : s + step]
            pts.append(np.einsum("sk,fkd->fsd", bary, tri[fs]).reshape(-1, 3))
            if A is not None:
                att.append(np.einsum("sk,fkd->fsd", bary, A[F[fs]]).reshape(-1, A.shape[1]))
    points = np.concatenate(pts, axis=0)
    if A is None:
        return points
    return points, np.concatenate(att, axis=0)


def frustum_aabb(K, pose, size, near: float, far: float) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned world bounding box of a camera's view frustum between two depths.

    Args:
        K: ``(3, 3)`` intrinsics of an image of ``size`` = ``(H, W)``.
        pose: ``(4, 4)`` camera-to-world.
        near, far: depth range in metres (e.g. the frame's valid depth range, or a bounded far
            plane), ``0 <= near <= far``.

    Returns:
        ``bbox_min``, ``bbox_max``: ``(3,)`` float64 world coordinates.
    """
    if not (0 <= near <= far):
        raise ValueError(f"need 0 <= near <= far, got near={near} far={far}")
    K = np.asarray(K, dtype=np.float64)
    T = np.asarray(pose, dtype=np.float64)
    H, W = int(size[0]), int(size[1])
    # Image corners (pixel edges, not centres) as unit-depth rays.
    u = np.array([-0.5, W - 0.5, W - 0.5, -0.5])
    v = np.array([-0.5, -0.5, H - 0.5, H - 0.5])
    rays = np.stack([*pixel_rays(u, v, K), np.ones(4)], axis=1)  # (4, 3)
    cam = np.concatenate([rays * near, rays * far], axis=0)  # (8, 3)
    world = cam @ T[:3, :3].T + T[:3, 3]
    return world.min(axis=0), world.max(axis=0)


def crop_voxels(coords, origin, voxel_size: float, bbox_min, bbox_max) -> np.ndarray:
    """Mask of the voxels whose centre lies inside the box (bounds inclusive).

    Args:
        coords: ``(M, 3)`` int voxel coordinates; origin ``(3,)``; voxel_size metres.
        bbox_min, bbox_max: ``(3,)`` world box.

    Returns:
        ``(M,)`` bool numpy mask.
    """
    c = coords.cpu().numpy() if isinstance(coords, torch.Tensor) else np.asarray(coords)
    centres = np.asarray(origin, dtype=np.float64) + (c.astype(np.float64) + 0.5) * voxel_size
    lo = np.asarray(bbox_min, dtype=np.float64)
    hi = np.asarray(bbox_max, dtype=np.float64)
    return ((centres >= lo) & (centres <= hi)).all(axis=1)


def voxels_in_frustum(
    coords: torch.Tensor, origin, voxel_size: float, K: torch.Tensor, pose: torch.Tensor, depth: torch.Tensor
) -> torch.Tensor:
    """``(M,)`` bool: voxel centres in front of the camera, projecting inside the ``(h, w)`` grid of
    ``K`` (one pixel margin) and no farther than the frame's farthest valid depth plus one voxel.

    Args:
        coords: ``(M, 3)`` int voxel coordinates; ``origin`` ``(3,)``; ``voxel_size`` metres.
        K: ``(3, 3)`` intrinsics of the ``(h, w)`` grid of ``depth``; ``pose``: ``(4, 4)`` camera-to-world.
        depth: ``(h, w)`` metres (0 = invalid).
    """
    h, w = depth.shape
    centres = torch.as_tensor(origin, dtype=torch.float64) + (coords.double() + 0.5) * voxel_size
    R, t = pose[:3, :3].double(), pose[:3, 3].double()
    cam = (centres - t) @ R  # world -> camera (R^T (x - t)), row vectors
    z = cam[:, 2]
    far = float(depth.max()) + voxel_size if bool((depth > 0).any()) else 0.0
    ok = (z > 1e-6) & (z <= far)
    zs = torch.where(ok, z, torch.ones_like(z))
    u = K[0, 0] * cam[:, 0] / zs + K[0, 2]
    v = K[1, 1] * cam[:, 1] / zs + K[1, 2]
    return ok & (u >= -1.5) & (u <= w + 0.5) & (v >= -1.5) & (v <= h + 0.5)


def pixel_voxel_correspondences(points, coords, origin, voxel_size: float, radius: float = 0.02) -> torch.Tensor:
    """For each point, the nearest occupied voxel whose centre is within ``radius``.

    Vectorised: occupied voxels are hashed to sorted int64 keys and each point looks up the
    neighbour cells that can hold a centre within ``radius`` (the 27 around its own cell when
    ``radius <= voxel_size``) with ``searchsorted``; there is no Python loop over points.

    Args:
        points: ``(P, 3)`` world metres (torch or numpy; non-finite rows never match).
        coords: ``(M, 3)`` int voxel coordinates (voxel ``i`` spans ``origin + coords[i]*voxel_size``
            .. ``+ voxel_size``; its centre is ``origin + (coords[i] + 0.5) * voxel_size``).
        origin: ``(3,)`` world position of the grid's corner.
        voxel_size: metres.
        radius: metres.

    Returns:
        ``(P,)`` int64 tensor (on the device of ``points`` when it is a tensor): index into
        ``coords`` of the nearest occupied voxel centre within ``radius``, or -1.
    """
    pts = torch.as_tensor(points)
    dev = pts.device
    pts = pts.to(torch.float64).reshape(-1, 3)
    P = pts.shape[0]
    out = torch.full((P,), -1, dtype=torch.int64, device=dev)
    c = torch.as_tensor(coords).to(device=dev, dtype=torch.int64).reshape(-1, 3)
    if P == 0 or c.shape[0] == 0:
        return out
    o = torch.as_tensor(np.asarray(origin, dtype=np.float64), device=dev)
    keys = voxel_keys(c)
    skeys, order = torch.sort(keys)
    rel = (pts - o) / voxel_size  # (P, 3) in voxel units
    finite = torch.isfinite(rel).all(dim=1)
    rel = torch.where(finite[:, None], rel, torch.zeros_like(rel))
    cell = torch.floor(rel).to(torch.int64)
    ext = int(math.floor(radius / voxel_size + 0.5))
    best = torch.full((P,), math.inf, dtype=torch.float64, device=dev)
    r_vox2 = (radius / voxel_size) ** 2
    lo, hi = -_OFF, _OFF - 1
    rng = range(-ext, ext + 1)
    for dx in rng:
        for dy in rng:
            for dz in rng:
                nb = cell + torch.tensor([dx, dy, dz], device=dev)
                inside = ((nb >= lo) & (nb <= hi)).all(dim=1) & finite
                k = voxel_keys(nb.clamp(lo, hi))
                pos = torch.searchsorted(skeys, k).clamp(max=skeys.numel() - 1)
                hit = inside & (skeys[pos] == k)
                d2 = ((nb.to(torch.float64) + 0.5 - rel) ** 2).sum(dim=1)
                better = hit & (d2 <= r_vox2) & (d2 < best)
                best = torch.where(better, d2, best)
                out = torch.where(better, order[pos], out)
    return out


def voxelize_surface(V, faces, colors, voxel_size: float, *, chunk_samples: int = 1_000_000):
    """Voxelize a mesh (faces sampled every ``voxel_size / 2``) or a point cloud (``faces`` None).

    Returns ``coords (N, 3) int32, origin (3,), colors (N, 3) uint8``. Works in chunks of about
    ``chunk_samples`` samples, so a big mesh never materialises all its samples at once.
    """
    V = np.asarray(V, dtype=np.float64)
    origin = np.floor(V.min(axis=0) / voxel_size) * voxel_size
    col = np.full((len(V), 3), 128, np.float64) if colors is None else np.asarray(colors, np.float64)
    keys_all, sums_all, counts_all = [], [], []

    def _add(pts, attrs):
        idx = np.floor((pts - origin) / voxel_size).astype(np.int64)
        keys = voxel_keys(idx)
        uk, inv, cnt = np.unique(keys, return_inverse=True, return_counts=True)
        inv = inv.reshape(-1)
        sums = np.stack([np.bincount(inv, weights=attrs[:, c], minlength=len(uk)) for c in range(3)], axis=1)
        keys_all.append(uk)
        sums_all.append(sums)
        counts_all.append(cnt)

    _add(V, col)
    if faces is not None and len(faces):
        # Chunks of faces holding about `chunk_samples` samples each (big faces make many samples).
        tri = V[faces]
        longest = np.max(np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2), axis=1)
        n = np.maximum(1, np.ceil(longest / (voxel_size / 2)))
        cost = np.cumsum((n + 1) * (n + 2) / 2)
        bounds = np.searchsorted(cost, np.arange(chunk_samples, cost[-1] + chunk_samples, chunk_samples))
        start = 0
        for end in np.unique(np.append(np.maximum(bounds, 1), len(faces))):
            end = int(min(max(end, start + 1), len(faces)))
            if end <= start:
                continue
            pts, att = sample_mesh_surface(
                V, faces[start:end], voxel_size / 2, vertex_attrs=col, include_vertices=False
            )
            _add(pts, att)
            start = end
    keys = np.concatenate(keys_all)
    uk, inv = np.unique(keys, return_inverse=True)
    inv = inv.reshape(-1)
    sums = np.zeros((len(uk), 3))
    np.add.at(sums, inv, np.concatenate(sums_all))
    counts = np.bincount(inv, weights=np.concatenate(counts_all), minlength=len(uk))
    coords = voxel_keys_to_coords(uk)
    colors_out = np.clip(np.round(sums / counts[:, None]), 0, 255).astype(np.uint8)
    return coords.astype(np.int32), origin, colors_out


def fusion_samples(depth, K, pose, color, K_color, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Depth-fusion samples of one frame: the world points of every ``stride``-th valid pixel (rows and
    columns) and their colours, read from the registered colour image (same centre and axes).

    Args:
        depth: ``(H, W)`` metres, 0 = invalid; ``K``: ``(3, 3)`` float64 intrinsics of ``depth``.
        pose: ``(4, 4)`` camera-to-world.
        color: ``(Hc, Wc, 3)`` uint8 (extra channels ignored) or None (then every colour is 128 grey);
            ``K_color``: its ``(3, 3)`` intrinsics.
        stride: pixel stride.

    Returns:
        ``points`` ``(n, 3)`` float64 and ``colors`` ``(n, 3)`` uint8, in row-major pixel order.
    """
    H, W = depth.shape
    v, u = np.mgrid[0:H:stride, 0:W:stride]
    z = depth[v, u]
    ok = z > 0
    u, v, z = u[ok].astype(np.float64), v[ok].astype(np.float64), z[ok].astype(np.float64)
    x, y = pixel_rays(u, v, K)
    pts = affine(np.stack([x * z, y * z, z], axis=1), pose[:3, :3].T, pose[:3, 3])
    if color is None:
        col = np.full((len(pts), 3), 128, dtype=np.uint8)
    else:
        Kc = np.asarray(K_color, dtype=np.float64)
        Hc, Wc = color.shape[:2]
        uc = np.clip(np.floor(x * Kc[0, 0] + Kc[0, 2] + 0.5).astype(np.int64), 0, Wc - 1)
        vc = np.clip(np.floor(y * Kc[1, 1] + Kc[1, 2] + 0.5).astype(np.int64), 0, Hc - 1)
        col = color[vc, uc, :3].astype(np.uint8)
    return pts, col


def fuse_depth(pts, col, fidx, voxel_size: float, min_views: int = 1):
    """Voxelize a scene's depth-fusion samples (:func:`fusion_samples` of its frames); a voxel is kept
    when at least ``min_views`` frames put a point in it.

    Args:
        pts: ``(n, 3)`` world points; ``col``: ``(n, 3)`` their colours; ``fidx``: ``(n,)`` int index of
            the frame each sample comes from.

    Returns:
        ``coords`` ``(N, 3)`` int32, ``origin`` ``(3,)`` float64, ``colors`` ``(N, 3)`` uint8 (mean).
    """
    coords, origin, attrs, counts = voxelize_points(pts, voxel_size, attrs=col, return_counts=True)
    if min_views > 1:
        idx = np.floor((pts - origin) / voxel_size).astype(np.int64)
        keys = voxel_keys(idx)
        # Distinct (voxel, frame) observations per voxel.
        obs = np.unique(np.stack([keys, fidx.astype(np.int64)], axis=1), axis=0)
        uk, views = np.unique(obs[:, 0], return_counts=True)
        ck = voxel_keys(coords)
        keep = views[np.searchsorted(uk, ck)] >= min_views
        coords, attrs = coords[keep], attrs[keep]
    return coords, origin, np.clip(np.round(attrs), 0, 255).astype(np.uint8)


def frame_boxes(depth, K, poses, crop_far: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, the world AABB of its view frustum (:func:`frustum_aabb`) between its min and max
    valid depth (max capped at ``crop_far`` when > 0).

    Args:
        depth: ``(F, H, W)`` metres (0 = invalid), every frame with some valid depth; ``K``: ``(3, 3)``
            intrinsics of that grid; ``poses``: ``(F, 4, 4)`` camera-to-world.

    Returns:
        ``bbox_min``, ``bbox_max``: ``(F, 3)`` float64.
    """
    lo, hi = [], []
    size = depth.shape[1:]
    for d, T in zip(depth, poses):
        valid = d[d > 0]
        near, far = float(valid.min()), float(valid.max())
        if crop_far > 0:
            far = min(far, crop_far)
            near = min(near, far)
        a, b = frustum_aabb(K, T, size, near, far)
        lo.append(a)
        hi.append(b)
    return np.array(lo).reshape(-1, 3), np.array(hi).reshape(-1, 3)
