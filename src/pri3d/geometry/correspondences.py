"""Training-time pixel correspondences between RGB-D views (torch, batched).

:func:`resample_depth` puts a depth map on the pixel grid of another registered camera (for example
the half-resolution feature map of a resized colour image; it also takes numpy arrays, for the pair
miner); :func:`view_correspondences` matches the pixels of two views by reprojection with a depth
test. The match samplers of the pre-training dataset draw at most K matches of a pair without
replacement: :func:`sample_view_matches` (pixel to pixel), :func:`sample_voxel_matches` (pixel to
voxel), on :func:`sample_without_replacement` (and :func:`sample_per_group` for a batch). The pair
overlap used to mine frame pairs is in :mod:`pri3d.geometry.overlap`.

Conventions: depth in metres (0 = invalid); intrinsics ``(3, 3)`` (or ``(B, 3, 3)``); poses
camera-to-world ``(4, 4)`` in the OpenCV camera convention (x right, y down, z forward).
"""

from __future__ import annotations

import numpy as np
import torch

from pri3d.geometry.camera import _batched, backproject_depth, invert_pose
from pri3d.geometry.rays import pixel_rays
from pri3d.geometry.voxels import pixel_voxel_correspondences

__all__ = [
    "resample_depth",
    "view_correspondences",
    "sample_without_replacement",
    "sample_per_group",
    "sample_view_matches",
    "sample_voxel_matches",
]


def resample_depth(depth, K_depth, K_target, size):
    """Put depth maps on the pixel grid of a registered camera (same centre and axes).

    Nearest-neighbour sampling: each target pixel takes the depth of the source pixel its centre
    falls in, so depth is never interpolated across edges.

    Args:
        depth: ``(B, Hd, Wd)`` metres (0 = invalid) with intrinsics ``K_depth`` ``(B, 3, 3)`` or
            ``(3, 3)``. A numpy array may also be ``(Hd, Wd)`` (one map).
        K_target: ``(B, 3, 3)`` or ``(3, 3)`` intrinsics of the target grid.
        size: ``(h, w)`` of the target grid, e.g. the feature-map grid of a resized colour image.

    Returns:
        ``(B, h, w)`` depth in metres, 0 where invalid or outside the depth image; for a numpy
        ``depth``, a numpy array of its rank and dtype.
    """
    if isinstance(depth, np.ndarray):
        d = torch.from_numpy(np.ascontiguousarray(depth))
        out = resample_depth(d[None] if d.dim() == 2 else d, K_depth, K_target, size)
        return (out[0] if depth.ndim == 2 else out).numpy()
    if depth.dim() != 3:
        raise ValueError(f"depth must be (B, Hd, Wd), got {tuple(depth.shape)}")
    B, Hd, Wd = depth.shape
    h, w = int(size[0]), int(size[1])
    Kd = _batched(torch.as_tensor(K_depth), B, 3).to(device=depth.device, dtype=torch.float64)
    Kt = _batched(torch.as_tensor(K_target), B, 3).to(device=depth.device, dtype=torch.float64)
    u = torch.arange(w, device=depth.device, dtype=torch.float64)
    v = torch.arange(h, device=depth.device, dtype=torch.float64)
    # Normalised ray coordinates of the target pixel centres, then source pixel coordinates.
    x, y = pixel_rays(u[None, :], v[None, :], Kt[:, None])  # (B, w), (B, h)
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
    x, y = pixel_rays(u, v, Ka[bi])
    pts = torch.stack([x * z, y * z, z], dim=-1)  # (N, 3) in A's camera
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


def sample_without_replacement(n: int, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``(min(n, k),)`` distinct int64 indices in ``[0, n)``, in random order (CPU generator)."""
    if n < 0 or k < 0:
        raise ValueError(f"n and k must be >= 0, got n={n}, k={k}")
    return torch.randperm(n, generator=generator)[:k]


def sample_per_group(group: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Vectorised sampling of at most ``k`` rows per group, without replacement.

    Args:
        group: ``(N,)`` int64 group id of each row (e.g. the pair index of each match).
        k: maximum rows kept per group.
    Returns:
        ``(N',)`` int64 indices of the kept rows, sorted by group (random order inside a group).
    """
    n = group.numel()
    if n == 0:
        return torch.zeros(0, dtype=torch.int64, device=group.device)
    key = torch.rand(n, generator=generator, dtype=torch.float64).to(group.device)
    # Sort by (group, random key): group ids are integers, keys in [0, 1).
    order = torch.argsort(group.to(torch.float64) + key)
    g = group[order]
    counts = torch.bincount(g)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n, device=group.device) - starts[g]
    return order[rank < k]


def sample_view_matches(
    depth_a: torch.Tensor,
    K_a: torch.Tensor,
    pose_a: torch.Tensor,
    depth_b: torch.Tensor,
    K_b: torch.Tensor,
    pose_b: torch.Tensor,
    k: int,
    generator: torch.Generator | None = None,
    *,
    depth_threshold: float = 0.05,
) -> torch.Tensor:
    """At most ``k`` pixel matches of one pair of views (:func:`view_correspondences`), drawn without
    replacement (:func:`sample_without_replacement`, one draw from ``generator``).

    Args:
        depth_a: ``(ha, wa)`` metres (0 = invalid); ``K_a``: ``(3, 3)``; ``pose_a``: ``(4, 4)``
            camera-to-world. ``depth_b``, ``K_b``, ``pose_b``: the same for view B.

    Returns:
        ``(min(n, k), 2)`` int64 rows ``[flat_index_in_a, flat_index_in_b]``, in random order.
    """
    m = view_correspondences(
        depth_a[None], K_a[None], pose_a[None], depth_b[None], K_b[None], pose_b[None], depth_threshold=depth_threshold
    )[:, 1:]
    return m[sample_without_replacement(len(m), k, generator)]


def sample_voxel_matches(
    depth: torch.Tensor,
    K: torch.Tensor,
    pose: torch.Tensor,
    coords: torch.Tensor,
    origin,
    voxel_size: float,
    radius: float,
    k: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """At most ``k`` pixel-to-voxel matches of one view, drawn without replacement: each valid pixel,
    back-projected in float64, matches the nearest occupied voxel whose centre is within ``radius``
    (:func:`pri3d.geometry.voxels.pixel_voxel_correspondences`).

    Args:
        depth: ``(h, w)`` metres (0 = invalid); ``K``: ``(3, 3)`` intrinsics of that grid; ``pose``:
            ``(4, 4)`` camera-to-world.
        coords: ``(M, 3)`` int voxel coordinates (a chunk of the scene); ``origin`` ``(3,)``;
            ``voxel_size``, ``radius``: metres.
        k: matches kept; ``generator``: one draw from it (:func:`sample_without_replacement`).

    Returns:
        ``(min(n, k), 2)`` int64 rows ``[flat_pixel, voxel_row]`` (``voxel_row`` indexes ``coords``).
    """
    flat = torch.nonzero(depth.reshape(-1) > 0, as_tuple=True)[0]
    if len(coords) and len(flat):
        pts = backproject_depth(depth.double()[None], K, pose)[0].reshape(-1, 3)[flat]
        vidx = pixel_voxel_correspondences(pts, coords, origin, voxel_size, radius)
        ok = vidx >= 0
        m = torch.stack([flat[ok], vidx[ok]], dim=1)
    else:
        m = torch.zeros((0, 2), dtype=torch.int64)
    return m[sample_without_replacement(len(m), k, generator)]
