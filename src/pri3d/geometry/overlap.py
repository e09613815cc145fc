"""Frame-pair overlap of RGB-D views (numpy, one scene at a time): the measure the pair miner keeps
pairs by.

The paper's overlap of two frames is ``(matched points of i + matched points of j) / (points of i +
points of j)``, where a point matches when the other frame has a point within ``radius``.
:func:`overlap_reference` computes it exactly with scipy KD-trees over every valid pixel (slow; the
yardstick for tests and the benchmark); :func:`overlap_fast` computes the same thing by reprojection
and an exact pixel-window search (see its docstring for every approximation and the parameter
controlling it; its compiled kernel is :mod:`pri3d.geometry.window_match`). The training-time
pixel correspondences are in :mod:`pri3d.geometry.correspondences`.

Conventions: depth in metres (0 = invalid); intrinsics ``(3, 3)``; poses camera-to-world ``(4, 4)``
in the OpenCV camera convention (x right, y down, z forward).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pri3d.geometry.rays import pixel_rays

__all__ = [
    "frame_points",
    "affine",
    "voxel_downsample_points",
    "combine_overlap",
    "overlap_reference",
    "overlap_fast",
    "MiningStats",
]


def _np_pixel_rays(K: np.ndarray, size) -> tuple[np.ndarray, np.ndarray]:
    """The float64 pixel rays of an image of ``size`` = ``(H, W)`` (:func:`pixel_rays`): ``x`` ``(W,)``
    per column and ``y`` ``(H,)`` per row."""
    H, W = int(size[0]), int(size[1])
    return pixel_rays(np.arange(W), np.arange(H), np.asarray(K, dtype=np.float64))


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
                x, y = pixel_rays(u, v, K)
                corners.append(np.stack([x * z, y * z, z], axis=1))
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
    depth = np.asarray(depth, dtype=np.float32)
    valid = (depth > 0) & np.isfinite(depth)
    depth = np.where(valid, depth, np.float32(0))
    F = depth.shape[0]
    pairs = _all_pairs(F) if pairs is None else np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    stats = MiningStats(pairs=len(pairs))
    fr = _QueryFrames.build(depth, np.asarray(K, dtype=np.float64), np.asarray(poses, dtype=np.float64), query_stride)
    live = _live_pairs(fr, pairs, radius)
    stats.culled_box = int((~live).sum())
    search = {"radius": float(radius), "window": -1 if exact else int(window), "block": int(block)}
    matched = _match_live_pairs(fr, pairs, live, search, threads, stats)

    # Scale sampled match fractions by the full valid-pixel counts.
    n_full, n_q = valid.reshape(F, -1).sum(axis=1), fr.counts
    fa = matched[:, 0] / np.maximum(n_q[pairs[:, 0]], 1)
    fb = matched[:, 1] / np.maximum(n_q[pairs[:, 1]], 1)
    overlap = combine_overlap(
        fa * n_full[pairs[:, 0]], fb * n_full[pairs[:, 1]], n_full[pairs[:, 0]], n_full[pairs[:, 1]], combine
    )
    overlap[~live] = 0.0
    return overlap, pairs, stats


@dataclass
class _QueryFrames:
    """One scene's frames as :func:`overlap_fast` reads them: depth (invalid = 0) on one grid with
    intrinsics ``K`` and pixel rays ``rays``, poses, and every frame's query points in world coordinates
    relative to ``centre`` (for precision), stacked: frame ``k`` at rows ``offsets[k]:offsets[k + 1]``
    (``counts[k]`` rows)."""

    depth: np.ndarray  # (F, H, W) float32
    K: np.ndarray  # (3, 3) float64
    rays: tuple[np.ndarray, np.ndarray]  # (W,), (H,)
    poses: np.ndarray  # (F, 4, 4) float64
    centre: np.ndarray  # (3,)
    points: np.ndarray  # (N, 3) float64
    counts: np.ndarray  # (F,)
    offsets: np.ndarray  # (F + 1,) int64

    @classmethod
    def build(cls, depth: np.ndarray, K: np.ndarray, poses: np.ndarray, query_stride: int) -> _QueryFrames:
        F, H, W = depth.shape
        centre = poses[:, :3, 3].mean(axis=0)
        per_frame = [frame_points(depth[k], K, poses[k], query_stride).astype(np.float64) - centre for k in range(F)]
        counts = np.array([len(q) for q in per_frame])
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        points = np.concatenate(per_frame) if F else np.zeros((0, 3))
        return cls(depth, K, _np_pixel_rays(K, (H, W)), poses, centre, points, counts, offsets)


def _live_pairs(fr: _QueryFrames, pairs: np.ndarray, radius: float) -> np.ndarray:
    """``(P,)`` bool: pairs whose frames both have query points and whose world boxes (conservative,
    :func:`_frame_box`) are at most ``radius`` apart; the others have overlap 0."""
    boxes = np.stack([_frame_box(fr.depth[k], fr.K, fr.poses[k]) for k in range(len(fr.depth))]) - fr.centre
    gap = np.maximum(boxes[pairs[:, 0], 0] - boxes[pairs[:, 1], 1], boxes[pairs[:, 1], 0] - boxes[pairs[:, 0], 1]).max(
        axis=1
    )
    return (gap <= radius) & (fr.counts[pairs[:, 0]] > 0) & (fr.counts[pairs[:, 1]] > 0)


def _match_live_pairs(fr: _QueryFrames, pairs, live, search: dict, threads: int, stats: MiningStats) -> np.ndarray:
    """``(P, 2)`` int64 matched query counts ``[a's queries matched in b, b's matched in a]`` of the
    live pairs (0 for the others). Each target frame is matched once against the queries of all its
    live partners, ``threads`` target frames at a time; ``stats`` gets the query counts."""
    by_target: dict[int, list[tuple[int, int, int]]] = {}
    for idx in np.nonzero(live)[0]:
        a, b = pairs[idx]
        by_target.setdefault(int(b), []).append((int(idx), 0, int(a)))  # a's queries into b
        by_target.setdefault(int(a), []).append((int(idx), 1, int(b)))  # b's queries into a

    def match(item):
        t, jobs = item
        return _match_into(fr, t, np.array([s for _, _, s in jobs], dtype=np.int64), **search)

    matched = np.zeros((len(pairs), 2), dtype=np.int64)
    items = list(by_target.items())
    with _pool(threads) as run:
        results = run(match, items)
    for (_t, jobs), (hits, n, n_kd) in zip(items, results):
        stats.queries += n
        stats.kd_queries += n_kd
        for (idx, direction, _s), h in zip(jobs, hits):
            matched[idx, direction] = h
    return matched


def _match_into(fr: _QueryFrames, t: int, sources: np.ndarray, *, radius: float, window: int, block: int):
    """Match the query points of frames ``sources`` in target frame ``t`` (``window < 0``: the exact
    search). Returns matched counts per source ``(J,)``, the number of queries, and how many of them
    a KD-tree decided (within ``radius`` of the camera centre; exact search only)."""
    from pri3d.geometry.window_match import match_queries

    R_t, t_t = fr.poses[t, :3, :3], fr.poses[t, :3, 3] - fr.centre
    D = fr.depth[t]
    hits, near = match_queries(
        fr.points, fr.offsets, sources, R_t, t_t, D, fr.rays, fr.K, radius=radius, window=window, block=block
    )
    n_kd = 0
    if window < 0:
        n_kd = len(near)
        if n_kd:  # rare: query points within `radius` of the camera centre; a KD-tree decides them
            hits += _near_hits(fr, D, R_t, t_t, near, sources, radius)
    return hits, int(fr.counts[sources].sum()), n_kd


def _near_hits(fr: _QueryFrames, D, R_t, t_t, near: np.ndarray, sources: np.ndarray, radius: float) -> np.ndarray:
    """Per source frame, how many of the query rows ``near`` have a valid pixel of ``D`` (the target
    frame at ``R_t``, ``t_t``) within ``radius``: exact, with a KD-tree over its back-projected pixels."""
    from scipy.spatial import cKDTree

    tree = cKDTree(frame_points(D, fr.K, None, 1))
    dist, _ = tree.query((fr.points[near] - t_t) @ R_t, k=1, distance_upper_bound=radius)
    found = near[np.isfinite(dist)]
    src_of = np.searchsorted(fr.offsets, found, side="right") - 1
    return np.array([int((src_of == s).sum()) for s in sources], dtype=np.int64)
