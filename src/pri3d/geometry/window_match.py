"""The inner kernel of the pair miner (:func:`pri3d.geometry.overlap.overlap_fast`), compiled with numba.

For each query point (in the target camera's frame) it answers exactly "does some valid pixel of the
target depth map back-project within ``radius`` of it?" by scanning only the pixels where such a
point can project. A point ``q`` with ``|q - p| <= r`` projects within

    |du| <= fx * r * (1 + |x/z|) / (z - r)      (and likewise for v with fy, |y/z|)

pixels of ``p``'s projection (``z > r``), so the scan over that window (+1 pixel for rounding) is
exact. It starts at the projection's row and works outwards, stops at the first match, and skips
row segments of ``block`` pixels whose depth range cannot come within ``radius`` of the query's depth
(per-row-segment minima and maxima, computed once per target frame).

Kept in its own module so that importing :mod:`pri3d.geometry` does not import numba
(:func:`~pri3d.geometry.overlap.overlap_fast` imports it when called); compiled functions are cached
on disk (``cache=True``). :func:`match_queries` is the Python entry; :func:`match_into_frame` the kernel.
"""

from __future__ import annotations

import math

import numba
import numpy as np

NEAR = 2  # status of a query within `radius` of the camera centre: the caller resolves it


def segment_bounds(depth: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the min and max valid depth of each ``block``-pixel column segment: two
    ``(H, ceil(W / block))`` arrays (+inf / -inf where a segment has no valid depth)."""
    H, W = depth.shape
    nb = -(-W // block)
    d = np.zeros((H, nb * block), np.float64)
    d[:, :W] = depth
    valid = d > 0
    lo = np.where(valid, d, np.inf).reshape(H, nb, block).min(axis=2)
    hi = np.where(valid, d, -np.inf).reshape(H, nb, block).max(axis=2)
    return lo, hi


@numba.njit(nogil=True, cache=True, inline="always")
def _match_point(x, y, z, depth, rx, ry, fx, fy, cx, cy, radius, window, seg_lo, seg_hi, block, dmin):
    """1 matched, 0 unmatched, ``NEAR`` (2) for a point within ``radius`` of the camera centre that
    the target's depth could still match (``dmin`` is its smallest valid depth)."""
    H, W = depth.shape
    if z <= radius:
        # Behind the camera or near its centre: only depths <= z + radius can be that close.
        return NEAR if (z > -radius and dmin <= z + radius) else 0
    a = x / z
    b = y / z
    u = math.floor(fx * a + cx + 0.5)
    v = math.floor(fy * b + cy + 0.5)
    if window >= 0:
        Ru = float(window)
        Rv = float(window)
    else:
        zr = z - radius
        Ru = min(math.ceil(fx * radius * (1.0 + abs(a)) / zr) + 1.0, 2.0 * W)
        Rv = min(math.ceil(fy * radius * (1.0 + abs(b)) / zr) + 1.0, 2.0 * H)
    u0 = int(max(u - Ru, 0.0))
    u1 = int(min(u + Ru, W - 1.0))
    v0 = int(max(v - Rv, 0.0))
    v1 = int(min(v + Rv, H - 1.0))
    if u0 > u1 or v0 > v1:
        return 0
    r2 = radius * radius
    zlo = z - radius
    zhi = z + radius
    vc = int(min(max(v, v0), v1))
    uc = int(min(max(u, u0), u1))
    d = depth[vc, uc]  # most matched points match the pixel they project to: try it first
    if d > 0:
        dx = rx[uc] * d - x
        dy = ry[vc] * d - y
        dz = d - z
        if dx * dx + dy * dy + dz * dz <= r2:
            return 1
    reach = max(vc - v0, v1 - vc)
    for k in range(2 * reach + 1):  # rows vc, vc+1, vc-1, vc+2, ...
        off = (k + 1) // 2
        vv = vc + off if k % 2 == 1 else vc - off
        if vv < v0 or vv > v1:
            continue
        yr = ry[vv]
        for s in range(u0 // block, u1 // block + 1):
            if seg_lo[vv, s] > zhi or seg_hi[vv, s] < zlo:
                continue
            for uu in range(max(u0, s * block), min(u1, s * block + block - 1) + 1):
                d = depth[vv, uu]
                if d < zlo or d > zhi:  # also skips invalid (0) depths: zlo > 0 here
                    continue
                dx = rx[uu] * d - x
                dy = yr * d - y
                dz = d - z
                if dx * dx + dy * dy + dz * dz <= r2:
                    return 1
    return 0


def match_queries(queries, offsets, sources, R, t, depth, rays, K, *, radius: float, window: int, block: int):
    """Match the query points of frames ``sources`` ``(J,)`` against one target frame: sets up what
    :func:`match_into_frame` reads (row-segment depth bounds, the smallest valid depth, the output
    arrays) and runs it.

    Args:
        queries, offsets, sources, R, t: as in :func:`match_into_frame`.
        depth: ``(H, W)`` float32 target depth (0 = invalid); ``K`` its ``(3, 3)`` intrinsics and
            ``rays`` the pixel rays ``((u - cx) / fx (W,), (v - cy) / fy (H,))``.
        radius: metres; ``window``: < 0 for the exact search, else the half-size of the window;
        block: pixels per row segment.

    Returns:
        ``hits`` ``(J,)`` int64 (matched points of each source) and the rows of ``queries`` whose
        status is ``NEAR`` (within ``radius`` of the camera centre), which the caller resolves.
    """
    seg_lo, seg_hi = segment_bounds(depth, block)
    valid = depth > 0
    dmin = float(depth[valid].min()) if valid.any() else np.inf
    hits = np.zeros(len(sources), np.int64)
    near = np.empty(int((offsets[sources + 1] - offsets[sources]).sum()), np.int64)
    cam = (float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))
    search = (float(radius), int(window), int(block), dmin)
    R = np.ascontiguousarray(R)
    n_near = match_into_frame(queries, offsets, sources, R, t, rays, cam, depth, (seg_lo, seg_hi), search, hits, near)
    return hits, near[:n_near]


@numba.njit(nogil=True, cache=True)
def match_into_frame(queries, offsets, sources, R, t, rays, cam, depth, segments, search, hits, near):
    """Match the query points of frames ``sources`` ``(J,)`` against one target frame.

    ``queries`` ``(N, 3)`` float64 holds every frame's query points in world coordinates, frame ``s``
    at rows ``offsets[s]:offsets[s + 1]``; the target camera is ``p_cam = (q - t) @ R`` (``R``, ``t``:
    the target's camera-to-world rotation and translation in the same world frame). Writes the number
    of matched points of each source into ``hits`` ``(J,)`` and the rows of the ``NEAR`` points (to be
    resolved by the caller) into ``near``; returns how many there are.

    ``rays`` = ``(rx (W,), ry (H,))`` are the pixel rays ``(u - cx) / fx`` and ``(v - cy) / fy``,
    ``cam`` = ``(fx, fy, cx, cy)``, ``segments`` = ``(seg_lo, seg_hi)`` from :func:`segment_bounds`, and
    ``search`` = ``(radius, window, block, dmin)``: ``window < 0`` scans each point's whole reachable
    window (exact); ``window >= 0`` only the ``(2 * window + 1)^2`` pixels around its projection
    (reprojection with a depth test: biased low); ``dmin`` is the smallest valid depth of ``depth``."""
    rx, ry = rays
    fx, fy, cx, cy = cam
    seg_lo, seg_hi = segments
    radius, window, block, dmin = search
    n_near = 0
    for j in range(sources.shape[0]):
        s = sources[j]
        h = 0
        for i in range(offsets[s], offsets[s + 1]):
            qx = queries[i, 0] - t[0]
            qy = queries[i, 1] - t[1]
            qz = queries[i, 2] - t[2]
            x = qx * R[0, 0] + qy * R[1, 0] + qz * R[2, 0]
            y = qx * R[0, 1] + qy * R[1, 1] + qz * R[2, 1]
            z = qx * R[0, 2] + qy * R[1, 2] + qz * R[2, 2]
            m = _match_point(x, y, z, depth, rx, ry, fx, fy, cx, cy, radius, window, seg_lo, seg_hi, block, dmin)
            if m == 1:
                h += 1
            elif m == NEAR:
                near[n_near] = i
                n_near += 1
        hits[j] = h
    return n_near
