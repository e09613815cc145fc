"""Pixel correspondences between RGB-D views, and frame-pair overlap.

Two families of pure functions live here:

* **Training correspondences** (torch, batched): :func:`resample_depth` puts a depth map on the
  pixel grid of another registered camera (for example the half-resolution feature map of a resized
  colour image); :func:`view_correspondences` matches the pixels of two views by reprojection with a
  depth test.
* **Pair overlap** (numpy/torch, one scene at a time): the paper's overlap of two frames is
  ``(matched points of i + matched points of j) / (points of i + points of j)``, where a point
  matches when the other frame has a point within ``radius``. :func:`overlap_reference` computes it
  exactly with scipy KD-trees over every valid pixel (slow; the yardstick for tests and the
  benchmark); :func:`overlap_matrix_fast` approximates it by reprojection (see its docstring for
  every approximation and the parameter controlling it).

Conventions: depth in metres (0 = invalid); intrinsics ``(3, 3)`` (or ``(B, 3, 3)``); poses
camera-to-world ``(4, 4)`` in the OpenCV camera convention (x right, y down, z forward).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pri3d.geometry.camera import _batched, invert_pose

__all__ = [
    "resample_depth",
    "view_correspondences",
    "frame_points",
    "affine",
    "voxel_downsample_points",
    "combine_overlap",
    "overlap_reference",
    "overlap_fast",
    "MiningStats",
]


# --------------------------------------------------------------------------------------------------
# Training correspondences
# --------------------------------------------------------------------------------------------------


def resample_depth(depth: torch.Tensor, K_depth: torch.Tensor, K_target: torch.Tensor, size) -> torch.Tensor:
    """Put depth maps on the pixel grid of a registered camera (same centre and axes).

    Nearest-neighbour sampling: each target pixel takes the depth of the source pixel its centre
    falls in, so depth is never interpolated across edges.

    Args:
        depth: ``(B, Hd, Wd)`` metres (0 = invalid) with intrinsics ``K_depth`` ``(B, 3, 3)`` or
            ``(3, 3)``.
        K_target: ``(B, 3, 3)`` or ``(3, 3)`` intrinsics of the target grid.
        size: ``(h, w)`` of the target grid, e.g. the feature-map grid of a resized colour image.

    Returns:
        ``(B, h, w)`` depth in metres, 0 where invalid or outside the depth image.
    """
    if depth.dim() != 3:
        raise ValueError(f"depth must be (B, Hd, Wd), got {tuple(depth.shape)}")
    B, Hd, Wd = depth.shape
    h, w = int(size[0]), int(size[1])
    Kd = _batched(torch.as_tensor(K_depth), B, 3).to(device=depth.device, dtype=torch.float64)
    Kt = _batched(torch.as_tensor(K_target), B, 3).to(device=depth.device, dtype=torch.float64)
    u = torch.arange(w, device=depth.device, dtype=torch.float64)
    v = torch.arange(h, device=depth.device, dtype=torch.float64)
    # Normalised ray coordinates of the target pixel centres, then source pixel coordinates.
    x = (u[None, :] - Kt[:, 0, 2, None]) / Kt[:, 0, 0, None]  # (B, w)
    y = (v[None, :] - Kt[:, 1, 2, None]) / Kt[:, 1, 1, None]  # (B, h)
    us = torch.floor(x * Kd[:, 0, 0, None] + Kd[:, 0, 2, None] + 0.5).long()  # (B, w)
    vs = torch.floor(y * Kd[:, 1, 1, None] + Kd[:, 1, 2, None] + 0.5).long()  # (B, h)
    ok_u = (us >= 0) & (us < Wd)
    ok_v = (vs >= 0) & (vs < Hd)
    us = us.clamp(0, Wd - 1)
    vs = vs.clamp(0, Hd - 1)
    flat = vs[:, :, None] * Wd + us[:, None, :]  # (B, h, w)
    out = torch.gather(depth.reshape(B, Hd * Wd), 1, flat.reshape(B, h * w)).reshape(B, h, w)
    ok = ok_v[:, :, None] & ok_u[:, None, :]
    out = torch.where(ok & torch.isfinite(out), out, torch.zeros((), dtype=out.dtype, device=out.device))
    return out


def view_correspondences(
    depth_a: torch.Tensor,
    K_a: torch.Tensor,
    pose_a: torch.Tensor,
    depth_b: torch.Tensor,
    K_b: torch.Tensor,
    pose_b: torch.Tensor,
    *,
    depth_threshold: float = 0.05,
) -> torch.Tensor:
    """Pixel correspondences between two views on their own pixel grids, by reprojection with a
    depth test.

    A valid pixel ``p`` of A (``depth_a > 0``) matches the nearest pixel ``q`` of B (its projection,
    rounded) when the point projects inside B's grid, in front of B, ``depth_b[q] > 0`` and
    ``|z_in_B - depth_b[q]| < depth_threshold``.

    Args:
        depth_a: ``(B, ha, wa)`` metres (0 = invalid) on the grid described by ``K_a``.
        K_a: ``(B, 3, 3)`` or ``(3, 3)`` intrinsics of that grid.
        pose_a: ``(B, 4, 4)`` or ``(4, 4)`` camera-to-world.
        depth_b, K_b, pose_b: the same for view B (its grid may have another size).
        depth_threshold: metres.

    Returns:
        ``(N, 3)`` int64 rows ``[batch_index, flat_index_in_a, flat_index_in_b]`` with
        ``flat = row * w + col`` on each view's own grid; rows sorted by batch then A's index.
    """
    if depth_a.dim() != 3 or depth_b.dim() != 3 or depth_a.shape[0] != depth_b.shape[0]:
        raise ValueError(f"depth_a and depth_b must be (B, h, w) with the same B, got "
                         f"{tuple(depth_a.shape)} and {tuple(depth_b.shape)}")
    B, ha, wa = depth_a.shape
    _, hb, wb = depth_b.shape
    dev = depth_a.device
    Ta = _batched(torch.as_tensor(pose_a), B, 4).to(device=dev, dtype=torch.float64)
    Tb = _batched(torch.as_tensor(pose_b), B, 4).to(device=dev, dtype=torch.float64)
    # Relative transform A-camera -> B-camera, composed in float64 (world coordinates can be large).
    T_ab = (invert_pose(Tb) @ Ta).to(torch.float32)  # (B, 4, 4)
    Ka = _batched(torch.as_tensor(K_a), B, 3).to(device=dev, dtype=torch.float32)
    Kb = _batched(torch.as_tensor(K_b), B, 3).to(device=dev, dtype=torch.float32)
    da = depth_a.to(torch.float32)
    valid_a = (da > 0) & torch.isfinite(da)
    bi, flat_a = torch.nonzero(valid_a.reshape(B, ha * wa), as_tuple=True)
    if bi.numel() == 0:
        return torch.zeros((0, 3), dtype=torch.int64, device=dev)
    z = da.reshape(B, -1)[bi, flat_a]
    u = (flat_a % wa).to(torch.float32)
    v = torch.div(flat_a, wa, rounding_mode="floor").to(torch.float32)
    Kab = Ka[bi]
    pts = torch.stack(
        [(u - Kab[:, 0, 2]) / Kab[:, 0, 0] * z, (v - Kab[:, 1, 2]) / Kab[:, 1, 1] * z, z], dim=-1
    )  # (N, 3) in A's camera
    R = T_ab[bi, :3, :3]
    t = T_ab[bi, :3, 3]
    pb = torch.einsum("nij,nj->ni", R, pts) + t  # (N, 3) in B's camera
    zb = pb[:, 2]
    Kbb = Kb[bi]
    front = zb > 1e-6
    safe = torch.where(front, zb, torch.ones_like(zb))
    ub = torch.floor(Kbb[:, 0, 0] * pb[:, 0] / safe + Kbb[:, 0, 2] + 0.5)
    vb = torch.floor(Kbb[:, 1, 1] * pb[:, 1] / safe + Kbb[:, 1, 2] + 0.5)
    inb = front & (ub >= 0) & (ub < wb) & (vb >= 0) & (vb < hb)
    ub = ub.clamp(0, wb - 1).long()
    vb = vb.clamp(0, hb - 1).long()
    flat_b = vb * wb + ub
    d_b = depth_b.to(torch.float32).reshape(B, -1)[bi, flat_b]
    ok = inb & (d_b > 0) & torch.isfinite(d_b) & ((zb - d_b).abs() < depth_threshold)
    return torch.stack([bi[ok], flat_a[ok], flat_b[ok]], dim=1).to(torch.int64)


# --------------------------------------------------------------------------------------------------
# Pair overlap (mining)
# --------------------------------------------------------------------------------------------------


def _np_pixel_rays(K: np.ndarray, size) -> tuple[np.ndarray, np.ndarray]:
    """Normalised ray coordinates ``x = (u - cx) / fx`` ``(W,)`` and ``y = (v - cy) / fy`` ``(H,)``."""
    H, W = int(size[0]), int(size[1])
    K = np.asarray(K, dtype=np.float64)
    return (np.arange(W) - K[0, 2]) / K[0, 0], (np.arange(H) - K[1, 2]) / K[1, 1]


def affine(points: np.ndarray, M: np.ndarray, t: np.ndarray, dtype=None) -> np.ndarray:
    """``points @ M + t`` for ``(N, 3)`` numpy points, ``M`` ``(3, 3)``, ``t`` ``(3,)`` (numpy's
    matmul is slow for 3-column arrays; torch's ``addmm`` is not). Result in ``dtype`` (default:
    that of ``points``)."""
    dtype = np.dtype(dtype or points.dtype)
    if dtype not in (np.float32, np.float64):
        dtype = np.dtype(np.float64)
    P = torch.from_numpy(np.ascontiguousarray(points, dtype=dtype))
    Mt = torch.from_numpy(np.asarray(M, dtype=dtype))
    return torch.addmm(torch.from_numpy(np.asarray(t, dtype=dtype)), P, Mt).numpy()


def frame_points(depth: np.ndarray, K: np.ndarray, pose: np.ndarray | None = None, stride: int = 1) -> np.ndarray:
    """Back-project the valid pixels of one depth map (every ``stride``-th row and column).

    Args:
        depth: ``(H, W)`` metres, 0 = invalid.
        K: ``(3, 3)`` intrinsics of ``depth``.
        pose: optional ``(4, 4)`` camera-to-world; world points when given, camera points otherwise.
        stride: pixel stride (1 = every pixel).

    Returns:
        ``(n, 3)`` float64 points, in row-major pixel order.
    """
    d = np.asarray(depth)
    x, y = _np_pixel_rays(K, d.shape)
    d = d[::stride, ::stride].astype(np.float64)
    x, y = x[::stride], y[::stride]
    vi, ui = np.nonzero((d > 0) & np.isfinite(d))
    z = d[vi, ui]
    pts = np.stack([x[ui] * z, y[vi] * z, z], axis=1)
    if pose is not None:
        T = np.asarray(pose, dtype=np.float64)
        pts = affine(pts, T[:3, :3].T, T[:3, 3])
    return pts


def voxel_downsample_points(points: np.ndarray, voxel_size: float) -> np.ndarray:
    """Centroid of the points in each occupied voxel (Open3D's ``voxel_down_sample`` convention: the
    grid starts half a voxel below the points' minimum). ``(n, 3)`` -> ``(m, 3)`` float64."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if len(pts) == 0:
        return pts
    lo = pts.min(axis=0) - 0.5 * voxel_size
    idx = np.floor((pts - lo) / voxel_size).astype(np.int64)
    dims = idx.max(axis=0) + 1
    key = (idx[:, 0] * dims[1] + idx[:, 1]) * dims[2] + idx[:, 2]
    _, inv, cnt = np.unique(key, return_inverse=True, return_counts=True)
    inv = inv.reshape(-1)
    out = np.zeros((len(cnt), 3))
    for k in range(3):
        out[:, k] = np.bincount(inv, weights=pts[:, k], minlength=len(cnt))
    return out / cnt[:, None]


def combine_overlap(m_ab, m_ba, n_a, n_b, combine: str = "sum"):
    """Overlap of a pair from matched counts: ``"sum"`` (the paper): ``(m_ab + m_ba) / (n_a + n_b)``;
    ``"max"`` (the official code): ``max(m_ab / n_a, m_ba / n_b)``. Works on numpy arrays."""
    m_ab, m_ba = np.asarray(m_ab, dtype=np.float64), np.asarray(m_ba, dtype=np.float64)
    n_a, n_b = np.asarray(n_a, dtype=np.float64), np.asarray(n_b, dtype=np.float64)
    if combine == "sum":
        return (m_ab + m_ba) / np.maximum(n_a + n_b, 1)
    if combine == "max":
        return np.maximum(m_ab / np.maximum(n_a, 1), m_ba / np.maximum(n_b, 1))
    raise ValueError(f"combine must be 'sum' or 'max', got {combine!r}")


def _all_pairs(F: int) -> np.ndarray:
    a, b = np.triu_indices(F, k=1)
    return np.stack([a, b], axis=1).astype(np.int64)


def overlap_reference(
    depths,
    Ks,
    poses,
    *,
    radius: float = 0.02,
    pairs=None,
    voxel_size: float | None = None,
    combine: str = "sum",
    workers: int = 1,
) -> np.ndarray:
    """Exact pair overlap with brute-force scipy ``cKDTree`` neighbours over every valid pixel.

    A point of frame a matches when frame b has a point within ``radius`` (and vice versa);
    see :func:`combine_overlap`. Slow (about a second per 640x480 pair); the yardstick for tests
    and ``benchmarks/bench_prepare.py``.

    Args:
        depths: sequence of ``(H_k, W_k)`` depth maps in metres (sizes may differ).
        Ks: sequence of ``(3, 3)`` intrinsics, one per depth map.
        poses: sequence of ``(4, 4)`` camera-to-world poses.
        radius: metres.
        pairs: ``(P, 2)`` frame indices; all ``a < b`` pairs by default.
        voxel_size: when given, each frame's points are first replaced by their voxel centroids
            (the official code's 5 cm down-sampling).
        combine: ``"sum"`` or ``"max"`` (:func:`combine_overlap`).
        workers: threads for the KD-tree queries.

    Returns:
        ``(P,)`` float64 overlaps in ``pairs`` order.
    """
    from scipy.spatial import cKDTree

    F = len(depths)
    pairs = _all_pairs(F) if pairs is None else np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    pts = []
    for d, K, T in zip(depths, Ks, poses):
        p = frame_points(d, K, T)
        if voxel_size is not None:
            p = voxel_downsample_points(p, voxel_size)
        pts.append(p)
    n = np.array([len(p) for p in pts])
    trees: dict[int, cKDTree] = {}

    def tree(k):
        if k not in trees:
            trees[k] = cKDTree(pts[k])
        return trees[k]

    out = np.zeros(len(pairs))
    for idx, (a, b) in enumerate(pairs):
        if n[a] == 0 or n[b] == 0:
            continue
        d_ab, _ = tree(b).query(pts[a], k=1, distance_upper_bound=radius, workers=workers)
        d_ba, _ = tree(a).query(pts[b], k=1, distance_upper_bound=radius, workers=workers)
        out[idx] = combine_overlap(np.isfinite(d_ab).sum(), np.isfinite(d_ba).sum(), n[a], n[b], combine)
    return out


@dataclass
class MiningStats:
    """What :func:`overlap_fast` did (counts summed over a scene)."""

    pairs: int = 0  # pairs considered
    culled_box: int = 0  # decided without projection: world boxes farther apart than radius (overlap 0)
    culled_bound: int = 0  # dropped by the projection-stage upper bound (< min_overlap)
    exact_pairs: int = 0  # pairs that needed KD-tree look-ups
    queries: int = 0  # query points projected
    kd_queries: int = 0  # query points resolved by the exact KD-tree

    def add(self, other: MiningStats) -> None:
        for k in self.__dataclass_fields__:
            setattr(self, k, getattr(self, k) + getattr(other, k))

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _block_minmax(depth: np.ndarray, levels) -> dict[int, tuple[np.ndarray, np.ndarray, int]]:
    """Depth bounds for windows: per block size ``b`` (powers of two), ``(min, max, b)`` of the valid
    depths over the 3x3 blocks around each ``b x b`` block, so that every square window of half-size
    ``<= b`` around a pixel ``(u, v)`` lies inside block ``(v // b, u // b)``'s neighbourhood.
    Invalid depths are ignored (+inf / -inf where a neighbourhood has none)."""
    H, W = depth.shape
    top = max(levels)
    Hp, Wp = -(-H // top) * top, -(-W // top) * top
    mn = np.full((Hp, Wp), np.inf, np.float32)
    mx = np.full((Hp, Wp), -np.inf, np.float32)
    valid = depth > 0
    mn[:H, :W] = np.where(valid, depth, np.inf)
    mx[:H, :W] = np.where(valid, depth, -np.inf)
    out = {}
    b = 1
    while b < top:
        # 2x2 reduction of the previous level.
        mn = np.minimum(np.minimum(mn[0::2, 0::2], mn[1::2, 0::2]), np.minimum(mn[0::2, 1::2], mn[1::2, 1::2]))
        mx = np.maximum(np.maximum(mx[0::2, 0::2], mx[1::2, 0::2]), np.maximum(mx[0::2, 1::2], mx[1::2, 1::2]))
        b *= 2
        if b in levels:
            out[b] = (_dilate3(mn, np.minimum, np.inf), _dilate3(mx, np.maximum, -np.inf), b)
    return out


def _dilate3(a: np.ndarray, op, fill) -> np.ndarray:
    """3x3 neighbourhood reduction (``op`` = np.minimum / np.maximum) with ``fill`` outside."""
    e = np.pad(a, 1, constant_values=fill)
    h, w = a.shape
    rows = op(op(e[:, 0:w], e[:, 1 : w + 1]), e[:, 2 : w + 2])
    return op(op(rows[0:h], rows[1 : h + 1]), rows[2 : h + 2])


def _frame_box(depth: np.ndarray, K: np.ndarray, pose: np.ndarray, block: int = 16) -> np.ndarray:
    """A world box ``(2, 3)`` [min; max] containing every back-projected valid pixel of ``depth``:
    the union of the frustum slabs of ``block x block`` pixel blocks between their depth extremes
    (conservative, and cheap: no per-pixel points). Empty depth gives an inverted (+inf/-inf) box."""
    H, W = depth.shape
    Hp, Wp = -(-H // block) * block, -(-W // block) * block
    mn = np.full((Hp, Wp), np.inf, np.float32)
    mx = np.full((Hp, Wp), -np.inf, np.float32)
    valid = depth > 0
    mn[:H, :W] = np.where(valid, depth, np.inf)
    mx[:H, :W] = np.where(valid, depth, -np.inf)
    b = 1
    while b < block:
        mn = np.minimum(np.minimum(mn[0::2, 0::2], mn[1::2, 0::2]), np.minimum(mn[0::2, 1::2], mn[1::2, 1::2]))
        mx = np.maximum(np.maximum(mx[0::2, 0::2], mx[1::2, 0::2]), np.maximum(mx[0::2, 1::2], mx[1::2, 1::2]))
        b *= 2
    wb = mn.shape[1]
    mn, mx = mn.reshape(-1), mx.reshape(-1)
    ok = np.isfinite(mn)
    if not ok.any():
        return np.array([[np.inf] * 3, [-np.inf] * 3])
    bv, bu = np.divmod(np.nonzero(ok)[0], wb)
    u0, u1 = bu * block - 0.5, np.minimum(bu * block + block, W) - 0.5
    v0, v1 = bv * block - 0.5, np.minimum(bv * block + block, H) - 0.5
    K = np.asarray(K, dtype=np.float64)
    corners = []
    for u in (u0, u1):
        for v in (v0, v1):
            for z in (mn[ok], mx[ok]):
                z = z.astype(np.float64)
                corners.append(np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], axis=1))
    c = affine(np.concatenate(corners), np.asarray(pose)[:3, :3].T, np.asarray(pose)[:3, 3])
    return np.stack([c.min(axis=0), c.max(axis=0)])


def _classify_queries(p, D, rx, ry, K, radius, window, levels) -> np.ndarray:
    """Stage A of :func:`overlap_fast` for query points ``p`` ``(N, 3)`` float32 in the target camera
    with target depth ``D`` ``(H, W)``. Returns ``(N,)`` int8: 0 surely unmatched, 1 surely matched
    (a pixel within ``window`` of the projection back-projects within ``radius``), 2 undecided.
    Work is compacted after each test so that later, costlier tests see fewer points."""
    H, W = D.shape
    fx, fy, cx, cy = (np.float32(v) for v in (K[0, 0], K[1, 1], K[0, 2], K[1, 2]))
    r = np.float32(radius)
    r2 = r * r
    Dflat = D.reshape(-1)
    rx = rx.astype(np.float32)
    ry = ry.astype(np.float32)
    status = np.zeros(len(p), dtype=np.int8)
    z = p[:, 2]
    # Points with |z| <= radius can only match pixels with depth <= z + radius: undecided when the
    # target has such close depth (then the exact test decides), unmatched otherwise. Points further
    # behind the camera cannot match anything in front of it.
    valid = D[D > 0]
    dmin, dmax = (float(valid.min()), float(valid.max())) if valid.size else (np.inf, -np.inf)
    near = (z > -r) & (z <= r)
    status[near & (dmin <= z + r)] = 2
    # Outside the target's depth range (+- radius) nothing can match.
    idx = np.nonzero((z > r) & (z + r >= dmin) & (z - r <= dmax))[0]
    p = p[idx]
    z = p[:, 2]
    a = p[:, 0] / z
    b = p[:, 1] / z
    ui = np.floor(fx * a + cx + np.float32(0.5)).astype(np.int64)
    vi = np.floor(fy * b + cy + np.float32(0.5)).astype(np.int64)
    # Conservative pixel radius of where a point within `radius` of p can project (+1 for rounding):
    # |du| <= fx * r * (1 + |x/z|) / (z - r).
    zr = z - r
    Ru = np.ceil(fx * r * (1 + np.abs(a)) / zr).astype(np.int64) + 1
    Rv = np.ceil(fy * r * (1 + np.abs(b)) / zr).astype(np.int64) + 1
    reach = (ui + Ru >= 0) & (ui - Ru <= W - 1) & (vi + Rv >= 0) & (vi - Rv <= H - 1)
    keep = np.nonzero(reach)[0]
    idx, p, Ru, Rv = idx[keep], p[keep], Ru[keep], Rv[keep]
    # Points projecting just outside the image are tested against the nearest border pixels: the
    # window around the clipped pixel (same radius) contains every pixel they can reach.
    ui = np.clip(ui[keep], 0, W - 1)
    vi = np.clip(vi[keep], 0, H - 1)

    def _d2(uu, vv, pts):
        dq = Dflat[vv * W + uu]
        d2 = (rx[uu] * dq - pts[:, 0]) ** 2 + (ry[vv] * dq - pts[:, 1]) ** 2 + (dq - pts[:, 2]) ** 2
        return np.where(dq > 0, d2, np.inf)

    # 1. The pixel the point projects to.
    hit = _d2(ui, vi, p) <= r2
    status[idx[hit]] = 1
    keep = np.nonzero(~hit)[0]
    idx, p, ui, vi, Ru, Rv = idx[keep], p[keep], ui[keep], vi[keep], Ru[keep], Rv[keep]
    # 2. Depth-range bound: no valid depth in the reachable window within [z - r, z + r].
    Rmax = np.maximum(Ru, Rv)
    excluded = np.zeros(len(idx), dtype=bool)
    lo = 0
    for bsize, (mn, mx, f) in levels(D).items():
        sel = np.nonzero((Rmax > lo) & (Rmax <= bsize))[0]
        lo = bsize
        if len(sel):
            bu, bv = ui[sel] // f, vi[sel] // f
            zc = p[sel, 2]
            excluded[sel] = (mn[bv, bu] > zc + r) | (mx[bv, bu] < zc - r)
    keep = np.nonzero(~excluded)[0]
    idx, p, ui, vi, Rmax = idx[keep], p[keep], ui[keep], vi[keep], Rmax[keep]
    # 3. The rest of the window around the projection.
    best = np.full(len(idx), np.inf, dtype=np.float32)
    for dv in range(-window, window + 1):
        for du in range(-window, window + 1):
            if du == 0 and dv == 0:
                continue
            uu = np.clip(ui + du, 0, W - 1)
            vv = np.clip(vi + dv, 0, H - 1)
            best = np.minimum(best, _d2(uu, vv, p))
    hit = best <= r2
    status[idx[hit]] = 1
    keep = np.nonzero(~hit)[0]
    idx, p, ui, vi, Rmax = idx[keep], p[keep], ui[keep], vi[keep], Rmax[keep]
    # 4. A coarser pattern over the reachable window (any pixel found within `radius` proves a match,
    #    so extra candidates never bias the result; they only spare KD-tree look-ups).
    step = np.maximum(window + 1, (Rmax + 2) // 3)
    best = np.full(len(idx), np.inf, dtype=np.float32)
    for dv in range(-2, 3):
        for du in range(-2, 3):
            if du == 0 and dv == 0:
                continue
            uu = np.clip(ui + du * step, 0, W - 1)
            vv = np.clip(vi + dv * step, 0, H - 1)
            best = np.minimum(best, _d2(uu, vv, p))
    status[idx] = np.where(best <= r2, 1, 2)
    return status


def _window_search(p, D, K, rx, ry, radius: float, *, max_elems: int = 2_000_000, tree_cost: float = 5.0):
    """Exact test by brute force over each query's conservative pixel window (see
    :func:`_classify_queries`): ``(N,)`` bool "some valid pixel back-projects within ``radius``".

    Returns None when a KD-tree is expected to be cheaper (many queries or wide windows, i.e. a cost
    above ``tree_cost`` element evaluations per target pixel) or a query is within ``radius`` of the
    camera centre."""
    H, W = D.shape
    z = p[:, 2]
    if len(p) == 0:
        return np.zeros(0, dtype=bool)
    if (z <= radius).any():
        return None
    a, b = p[:, 0] / z, p[:, 1] / z
    u = np.floor(K[0, 0] * a + K[0, 2] + 0.5).astype(np.int64)
    v = np.floor(K[1, 1] * b + K[1, 2] + 0.5).astype(np.int64)
    R = np.maximum(np.ceil(K[0, 0] * radius * (1 + np.abs(a)) / (z - radius)),
                   np.ceil(K[1, 1] * radius * (1 + np.abs(b)) / (z - radius)))
    R = np.minimum(R, max(H, W)).astype(np.int64) + 1
    cost = float(((2 * R + 1) ** 2).sum())
    if cost > tree_cost * int((D > 0).sum()) + 75.0 * len(p):
        return None
    u = np.clip(u, 0, W - 1)
    v = np.clip(v, 0, H - 1)
    Dflat = D.reshape(-1).astype(np.float64)
    r2 = radius * radius
    hit = np.zeros(len(p), dtype=bool)
    # Windows are grouped into a few sizes (a larger window only adds real pixels: still exact).
    edges = np.array([0, 4, 6, 8, 11, 16, 23, 32, 45, 64, 90, 128, 181, 256, 362, 512, 724, 1024, 1 << 30])
    group = np.searchsorted(edges, R)
    for g in np.unique(group):
        idx = np.nonzero(group == g)[0]
        Rk = int(min(edges[g], R[idx].max()))
        off = np.arange(-Rk, Rk + 1)
        du = np.tile(off, len(off))
        dv = np.repeat(off, len(off))
        step = max(1, max_elems // len(du))
        for s0 in range(0, len(idx), step):
            q = idx[s0 : s0 + step]
            uu = np.clip(u[q, None] + du[None, :], 0, W - 1)
            vv = np.clip(v[q, None] + dv[None, :], 0, H - 1)
            dq = Dflat[vv * W + uu]
            d2 = (rx[uu] * dq - p[q, 0, None]) ** 2 + (ry[vv] * dq - p[q, 1, None]) ** 2 + (dq - p[q, 2, None]) ** 2
            hit[q] = ((d2 <= r2) & (dq > 0)).any(axis=1)
    return hit


def _tree_points(p: np.ndarray, D: np.ndarray, K: np.ndarray, radius: float, block: int = 16) -> np.ndarray:
    """The target pixels that can lie within ``radius`` of some query point, back-projected.

    ``p`` ``(N, 3)`` are camera-frame query points, ``D`` ``(H, W)`` the target depth. A pixel can
    match query ``p`` only inside ``p``'s conservative window (see :func:`_classify_queries`) and
    with a depth within ``radius`` of ``p``'s. Per ``block x block`` pixel block we collect the depth
    range of the queries whose window touches it and keep the pixels whose depth is within
    ``radius`` of that range: an exact filter that keeps the KD-tree smaller.
    """
    H, W = D.shape
    z = p[:, 2]
    if (z <= radius).any():  # a query within `radius` of the camera centre: keep everything
        return frame_points(D, K, None, 1)
    hb, wb = -(-H // block), -(-W // block)
    zmin = np.full((hb, wb), np.inf)
    zmax = np.full((hb, wb), -np.inf)
    a, b = p[:, 0] / z, p[:, 1] / z
    u = np.floor(K[0, 0] * a + K[0, 2] + 0.5)
    v = np.floor(K[1, 1] * b + K[1, 2] + 0.5)
    Ru = np.ceil(K[0, 0] * radius * (1 + np.abs(a)) / (z - radius)) + 1
    Rv = np.ceil(K[1, 1] * radius * (1 + np.abs(b)) / (z - radius)) + 1
    bu0 = np.clip((u - Ru) // block, 0, wb - 1).astype(np.int64)
    bu1 = np.clip((u + Ru) // block, 0, wb - 1).astype(np.int64)
    bv0 = np.clip((v - Rv) // block, 0, hb - 1).astype(np.int64)
    bv1 = np.clip((v + Rv) // block, 0, hb - 1).astype(np.int64)
    small = ((bu1 - bu0) <= 2) & ((bv1 - bv0) <= 2)
    for dv in range(3):
        for du in range(3):
            sel = small & (bv0 + dv <= bv1) & (bu0 + du <= bu1)
            np.minimum.at(zmin, (bv0[sel] + dv, bu0[sel] + du), z[sel])
            np.maximum.at(zmax, (bv0[sel] + dv, bu0[sel] + du), z[sel])
    for i in np.nonzero(~small)[0]:  # very close queries: wide windows (rare)
        sl = (slice(bv0[i], bv1[i] + 1), slice(bu0[i], bu1[i] + 1))
        zmin[sl] = np.minimum(zmin[sl], z[i])
        zmax[sl] = np.maximum(zmax[sl], z[i])
    lo = np.repeat(np.repeat(zmin, block, axis=0), block, axis=1)[:H, :W] - radius
    hi = np.repeat(np.repeat(zmax, block, axis=0), block, axis=1)[:H, :W] + radius
    keep = (D > 0) & (D >= lo) & (D <= hi)
    return frame_points(np.where(keep, D, 0), K, None, 1)


class _pool:
    """``with _pool(n) as run: results = run(fn, items)``: map in ``n`` threads (in order)."""

    def __init__(self, threads: int):
        self.threads = max(1, int(threads))
        self.ex = None

    def __enter__(self):
        if self.threads == 1:
            return lambda fn, items: [fn(x) for x in items]
        from concurrent.futures import ThreadPoolExecutor

        self.ex = ThreadPoolExecutor(self.threads)
        return lambda fn, items: list(self.ex.map(fn, items))

    def __exit__(self, *exc):
        if self.ex is not None:
            self.ex.shutdown()
        return False


def overlap_fast(
    depth: np.ndarray,
    K: np.ndarray,
    poses: np.ndarray,
    *,
    radius: float = 0.02,
    query_stride: int = 8,
    window: int = 1,
    min_overlap: float = 0.0,
    exact: bool = True,
    pairs=None,
    combine: str = "sum",
    threads: int = 1,
) -> tuple[np.ndarray, np.ndarray, MiningStats]:
    """Pair overlap of one scene's frames, fast, with the same definition as :func:`overlap_reference`.

    How it gets its speed, and what each step approximates (the parameters control it):

    1. **Query sampling** (``query_stride``): matched fractions are measured on every
       ``query_stride``-th pixel (rows and columns) of each frame instead of on every pixel, and
       scaled by the frame's full count of valid pixels. Unbiased; the only approximation of the
       default settings (overlap error about 0.01 at stride 10 on 640x480). The other side of each
       test always uses every valid pixel, as the exact definition does.
    2. **Box culling** (exact): pairs whose world boxes (conservative, from per-block depth
       extremes) are farther apart than ``radius`` have overlap 0.
    3. **Reprojection** (exact decisions only): each query point is projected into the other frame.
       It is *surely matched* when a pixel of the other frame in a ``(2*window+1)^2`` window around
       its projection, or on a coarser pattern over its reachable window, back-projects within
       ``radius``; *surely unmatched* when it lies behind the camera, or projects so far outside the
       image, or so far from every valid depth of the surrounding pixels, that no point of the other
       frame can lie within ``radius`` (a proven bound on where such a point can project:
       ``|du| <= fx * radius * (1 + |x/z|) / (z - radius)``).
    4. **Exact fallback** (``exact=True``): the remaining queries are resolved exactly, by brute
       force over their reachable pixel window or with a KD-tree over the other frame's valid
       pixels that can be reached (whichever is cheaper). With ``exact=False`` they count as
       unmatched (faster, biased low: reprojection with a depth test only).
    5. **Bound culling** (``min_overlap``): a pair whose upper bound (sure + undecided matches)
       is below ``min_overlap`` is dropped without the fallback (exact decision); its overlap is
       reported as NaN. Pass 0 to compute every pair.

    Args:
        depth: ``(F, H, W)`` float32 metres (0 = invalid), every frame on the same pixel grid.
        K: ``(3, 3)`` intrinsics of that grid.
        poses: ``(F, 4, 4)`` camera-to-world.
        radius: metres.
        query_stride, window, min_overlap, exact: see above.
        pairs: ``(P, 2)`` frame indices (``a != b``); all ``a < b`` pairs by default.
        combine: ``"sum"`` (paper) or ``"max"`` (:func:`combine_overlap`).
        threads: target frames processed in parallel threads (numpy and the KD-tree release the
            GIL); the result does not depend on it.

    Returns:
        ``overlap`` ``(P,)`` float64 (NaN for pairs dropped by the bound), the ``pairs`` array used,
        and :class:`MiningStats`.
    """
    from scipy.spatial import cKDTree

    depth = np.asarray(depth, dtype=np.float32)
    F, H, W = depth.shape
    K = np.asarray(K, dtype=np.float64)
    poses = np.asarray(poses, dtype=np.float64)
    pairs = _all_pairs(F) if pairs is None else np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    stats = MiningStats(pairs=len(pairs))
    rx, ry = _np_pixel_rays(K, (H, W))

    valid = (depth > 0) & np.isfinite(depth)
    n_full = valid.reshape(F, -1).sum(axis=1)
    # Query points of every frame, in world coordinates (relative to a scene centre for precision).
    queries = [frame_points(depth[k], K, poses[k], query_stride) for k in range(F)]
    n_q = np.array([len(q) for q in queries])
    centre = poses[:, :3, 3].mean(axis=0)
    queries = [q - centre for q in queries]
    full_boxes = np.stack([_frame_box(depth[k], K, poses[k]) for k in range(F)]) - centre

    sure = np.zeros((len(pairs), 2), dtype=np.int64)  # [a matched in b, b matched in a]
    undecided: dict[tuple[int, int], np.ndarray] = {}  # (pair index, direction) -> query indices
    und_count = np.zeros((len(pairs), 2), dtype=np.int64)

    gap = np.maximum(full_boxes[pairs[:, 0], 0] - full_boxes[pairs[:, 1], 1],
                     full_boxes[pairs[:, 1], 0] - full_boxes[pairs[:, 0], 1]).max(axis=1)
    live = (gap <= radius) & (n_q[pairs[:, 0]] > 0) & (n_q[pairs[:, 1]] > 0)
    stats.culled_box = int((~live).sum())

    def levels(D):
        return _block_minmax(D, (2, 4, 8, 16, 32, 64))

    # Stage A: for each target frame t, project the queries of every live partner s into it.
    by_target: dict[int, list[tuple[int, int, int]]] = {}
    for idx in np.nonzero(live)[0]:
        a, b = pairs[idx]
        by_target.setdefault(int(b), []).append((int(idx), 0, int(a)))  # a's queries into b
        by_target.setdefault(int(a), []).append((int(idx), 1, int(b)))  # b's queries into a
    def stage_a(item):
        t, jobs = item
        Tt = poses[t]
        R_t, t_t = Tt[:3, :3], Tt[:3, 3] - centre
        src = np.concatenate([queries[s] for _, _, s in jobs])
        p = affine(src, R_t, -t_t @ R_t, np.float32)  # (N, 3) in t's camera
        return _classify_queries(p, depth[t], rx, ry, K, radius, window, levels)

    with _pool(threads) as run:
        statuses = run(stage_a, list(by_target.items()))
    for (_t, jobs), status in zip(by_target.items(), statuses):
        # Per job counts.
        n_jobs = len(jobs)
        sizes = [n_q[s] for _, _, s in jobs]
        owner = np.repeat(np.arange(n_jobs), sizes)
        stats.queries += len(status)
        cnt_m = np.bincount(owner[status == 1], minlength=n_jobs)
        cnt_u = np.bincount(owner[status == 2], minlength=n_jobs)
        starts = np.concatenate([[0], np.cumsum(sizes)])
        und_idx = np.nonzero(status == 2)[0]
        split = np.searchsorted(owner[und_idx], np.arange(n_jobs + 1))
        for j, (idx, direction, _s) in enumerate(jobs):
            sure[idx, direction] = cnt_m[j]
            und_count[idx, direction] = cnt_u[j]
            if cnt_u[j]:
                undecided[(idx, direction)] = (und_idx[split[j] : split[j + 1]] - starts[j]).astype(np.int64)

    def _estimate(m):
        # Scale sampled match fractions by the full valid-pixel counts.
        fa = m[:, 0] / np.maximum(n_q[pairs[:, 0]], 1)
        fb = m[:, 1] / np.maximum(n_q[pairs[:, 1]], 1)
        return combine_overlap(fa * n_full[pairs[:, 0]], fb * n_full[pairs[:, 1]],
                               n_full[pairs[:, 0]], n_full[pairs[:, 1]], combine)

    upper = _estimate(sure + und_count)
    need = live & (und_count.sum(axis=1) > 0)
    if min_overlap > 0:
        dropped = live & (upper < min_overlap)
        stats.culled_bound = int(dropped.sum())
        need &= ~dropped
    else:
        dropped = np.zeros(len(pairs), dtype=bool)
    matched_total = sure.copy()
    if exact and need.any():
        stats.exact_pairs = int(need.sum())
        by_tree: dict[int, list[tuple[int, int, int]]] = {}
        for idx in np.nonzero(need)[0]:
            a, b = pairs[idx]
            if (idx, 0) in undecided:
                by_tree.setdefault(int(b), []).append((int(idx), 0, int(a)))
            if (idx, 1) in undecided:
                by_tree.setdefault(int(a), []).append((int(idx), 1, int(b)))

        def stage_b(item):
            t, jobs = item
            Tt = poses[t]
            R_t, t_t = Tt[:3, :3], Tt[:3, 3] - centre
            pts = [queries[s][undecided[(idx, direction)]] for idx, direction, s in jobs]
            p = affine(np.concatenate(pts), R_t, -t_t @ R_t)
            hit = _window_search(p, depth[t], K, rx, ry, radius)
            if hit is None:
                # The tree holds only the target pixels that some undecided query can reach.
                tree = cKDTree(_tree_points(p, depth[t], K, radius), balanced_tree=False, compact_nodes=False)
                dist, _ = tree.query(p, k=1, distance_upper_bound=radius)
                hit = np.isfinite(dist)
            bounds = np.concatenate([[0], np.cumsum([len(x) for x in pts])])
            return [int(hit[bounds[j] : bounds[j + 1]].sum()) for j in range(len(jobs))], len(p)

        with _pool(threads) as run:
            results = run(stage_b, list(by_tree.items()))
        for (_t, jobs), (hits, n) in zip(by_tree.items(), results):
            stats.kd_queries += n
            for (idx, direction, _s), h in zip(jobs, hits):
                matched_total[idx, direction] += h
    overlap = _estimate(matched_total)
    overlap[~live] = 0.0
    overlap[dropped] = np.nan
    return overlap, pairs, stats
