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
  benchmark); :func:`overlap_fast` computes the same thing by reprojection and an exact pixel-window
  search (see its docstring for every approximation and the parameter controlling it).

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
        raise ValueError(
            f"depth_a and depth_b must be (B, h, w) with the same B, got "
            f"{tuple(depth_a.shape)} and {tuple(depth_b.shape)}"
        )
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
    queries: int = 0  # query points projected
    kd_queries: int = 0  # query points within `radius` of a camera centre, resolved by a KD-tree

    def add(self, other: MiningStats) -> None:
        for k in self.__dataclass_fields__:
            setattr(self, k, getattr(self, k) + getattr(other, k))

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


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
    exact: bool = True,
    pairs=None,
    combine: str = "sum",
    threads: int = 1,
    block: int = 16,
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
    3. **Reprojection with an exact window search** (``exact=True``, exact): each query point is
       projected into the other frame, and the pixels where a point within ``radius`` of it can
       project (a proven bound, see :mod:`pri3d.geometry.window_match`) are searched, nearest rows
       first, until one back-projects within ``radius``. Row segments of ``block`` pixels whose
       depth range is too far from the query's depth are skipped. Queries within ``radius`` of the
       camera centre (rare) are resolved with a KD-tree over the other frame's valid pixels.
    4. ``exact=False`` searches only the ``(2 * window + 1)^2`` pixels around each projection
       (reprojection with a depth test): faster, biased low.

    Args:
        depth: ``(F, H, W)`` float32 metres (0 = invalid), every frame on the same pixel grid.
        K: ``(3, 3)`` intrinsics of that grid.
        poses: ``(F, 4, 4)`` camera-to-world.
        radius: metres.
        query_stride, window, exact, block: see above.
        pairs: ``(P, 2)`` frame indices (``a != b``); all ``a < b`` pairs by default.
        combine: ``"sum"`` (paper) or ``"max"`` (:func:`combine_overlap`).
        threads: target frames processed in parallel threads (the compiled kernel and the KD-tree
            release the GIL); the result does not depend on it.

    Returns:
        ``overlap`` ``(P,)`` float64, the ``pairs`` array used, and :class:`MiningStats`.
    """
    from scipy.spatial import cKDTree

    from pri3d.geometry.window_match import match_into_frame, segment_bounds

    depth = np.asarray(depth, dtype=np.float32)
    valid = (depth > 0) & np.isfinite(depth)
    depth = np.where(valid, depth, np.float32(0))
    F, H, W = depth.shape
    K = np.asarray(K, dtype=np.float64)
    poses = np.asarray(poses, dtype=np.float64)
    pairs = _all_pairs(F) if pairs is None else np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    stats = MiningStats(pairs=len(pairs))
    rx, ry = _np_pixel_rays(K, (H, W))
    fx, fy, cx, cy = float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])

    n_full = valid.reshape(F, -1).sum(axis=1)
    # Query points of every frame, in world coordinates (relative to a scene centre for precision),
    # stacked: frame k at rows offsets[k]:offsets[k + 1].
    centre = poses[:, :3, 3].mean(axis=0)
    per_frame = [frame_points(depth[k], K, poses[k], query_stride).astype(np.float64) - centre for k in range(F)]
    n_q = np.array([len(q) for q in per_frame])
    offsets = np.concatenate([[0], np.cumsum(n_q)]).astype(np.int64)
    queries = np.concatenate(per_frame) if F else np.zeros((0, 3))
    full_boxes = np.stack([_frame_box(depth[k], K, poses[k]) for k in range(F)]) - centre

    gap = np.maximum(
        full_boxes[pairs[:, 0], 0] - full_boxes[pairs[:, 1], 1], full_boxes[pairs[:, 1], 0] - full_boxes[pairs[:, 0], 1]
    ).max(axis=1)
    live = (gap <= radius) & (n_q[pairs[:, 0]] > 0) & (n_q[pairs[:, 1]] > 0)
    stats.culled_box = int((~live).sum())

    # For each target frame t, the queries of every live partner s, projected into t.
    by_target: dict[int, list[tuple[int, int, int]]] = {}
    for idx in np.nonzero(live)[0]:
        a, b = pairs[idx]
        by_target.setdefault(int(b), []).append((int(idx), 0, int(a)))  # a's queries into b
        by_target.setdefault(int(a), []).append((int(idx), 1, int(b)))  # b's queries into a

    def match_into(item):
        t, jobs = item
        sources = np.array([s for _, _, s in jobs], dtype=np.int64)
        R_t, t_t = poses[t, :3, :3], poses[t, :3, 3] - centre
        D = depth[t]
        seg_lo, seg_hi = segment_bounds(D, block)
        dmin = float(D[D > 0].min()) if n_full[t] else np.inf
        hits = np.zeros(len(jobs), np.int64)
        near = np.empty(int(n_q[sources].sum()), np.int64)
        n_near = match_into_frame(
            queries,
            offsets,
            sources,
            np.ascontiguousarray(R_t),
            t_t,
            D,
            rx,
            ry,
            fx,
            fy,
            cx,
            cy,
            float(radius),
            -1 if exact else int(window),
            seg_lo,
            seg_hi,
            int(block),
            dmin,
            hits,
            near,
        )
        near = near[:n_near]
        if n_near and exact:
            # Rare: query points within `radius` of the camera centre; a KD-tree decides them.
            tree = cKDTree(frame_points(D, K, None, 1))
            dist, _ = tree.query((queries[near] - t_t) @ R_t, k=1, distance_upper_bound=radius)
            found = near[np.isfinite(dist)]
            src_of = np.searchsorted(offsets, found, side="right") - 1
            for j, s in enumerate(sources):
                hits[j] += int((src_of == s).sum())
        return hits, int(n_q[sources].sum()), n_near

    matched = np.zeros((len(pairs), 2), dtype=np.int64)  # [a matched in b, b matched in a]
    items = list(by_target.items())
    with _pool(threads) as run:
        results = run(match_into, items)
    for (_t, jobs), (hits, n, n_near) in zip(items, results):
        stats.queries += n
        stats.kd_queries += n_near if exact else 0
        for (idx, direction, _s), h in zip(jobs, hits):
            matched[idx, direction] = h

    # Scale sampled match fractions by the full valid-pixel counts.
    fa = matched[:, 0] / np.maximum(n_q[pairs[:, 0]], 1)
    fb = matched[:, 1] / np.maximum(n_q[pairs[:, 1]], 1)
    overlap = combine_overlap(
        fa * n_full[pairs[:, 0]], fb * n_full[pairs[:, 1]], n_full[pairs[:, 0]], n_full[pairs[:, 1]], combine
    )
    overlap[~live] = 0.0
    return overlap, pairs, stats
