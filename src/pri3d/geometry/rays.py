"""The pinhole back-projection formula, written once for all of pri3d: pixel ``(u, v)`` -> ray.

Every back-projection in pri3d (depth maps to points, pixel rays of the pair miner, frustum corners,
depth fusion, the training correspondences, the synthetic renderer's camera rays) goes through
:func:`pixel_rays`; ``tests/test_architecture.py`` fails if the formula appears anywhere else.

The module imports nothing, not even numpy or torch: the same function takes numpy arrays, torch
tensors or floats, so the torch-free synthetic renderer (:mod:`pri3d.data.synth.render`) uses it as
well as the torch code of :mod:`pri3d.geometry.camera`.
"""

from __future__ import annotations

__all__ = ["pixel_rays"]


def pixel_rays(u, v, K):
    """Normalised ray coordinates of pixels: ``x = (u - cx) / fx`` and ``y = (v - cy) / fy``.

    The camera-frame point of pixel ``(u, v)`` at depth ``z`` is ``(x * z, y * z, z)`` (OpenCV axes: x
    right, y down, z forward; pixel ``(0, 0)`` is the centre of the top-left pixel).

    Args:
        u, v: column and row coordinates (numpy arrays, torch tensors or floats); each broadcasts
            against ``K[..., 0, 2]``.
        K: ``(..., 3, 3)`` intrinsics ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` (numpy or torch). For
            a batch of cameras over a pixel grid, give ``K`` singleton axes: ``K[:, None, None]``
            ``(B, 1, 1, 3, 3)`` with ``u`` ``(H, W)`` gives ``(B, H, W)`` rays.

    Returns:
        ``(x, y)``, in the broadcast shape and the dtype the arithmetic of the inputs gives (the
        caller picks it: float32 or float64).
    """
    return (u - K[..., 0, 2]) / K[..., 0, 0], (v - K[..., 1, 2]) / K[..., 1, 1]
