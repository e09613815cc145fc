"""Pinhole camera geometry: pure, batched torch functions (:func:`scale_intrinsics` also takes numpy).

Conventions (everywhere in pri3d):

* OpenCV camera frame: x right, y down, z forward. Depth is the z coordinate, in metres.
* Intrinsics ``K`` are 3x3: ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``. Pixel ``(u, v)`` addresses
  column ``u`` and row ``v``; the centre of the top-left pixel is ``(0, 0)``.
* Poses are camera-to-world 4x4 matrices (``X_world = T @ X_cam``), float64 on disk.

Every function accepts a leading batch dimension ``B``; shapes are given in each docstring. The
pinhole formula itself (pixel -> ray) is :func:`pri3d.geometry.rays.pixel_rays`, the one place it is
written (torch-free, so that the synthetic renderer shares it).
Nothing here holds state or module constants: thresholds and sizes are arguments.
"""

from __future__ import annotations

import numpy as np
import torch

from pri3d.geometry.rays import pixel_rays

__all__ = [
    "pixel_grid",
    "backproject_depth",
    "transform_points",
    "invert_pose",
    "project_points",
    "scale_intrinsics",
    "color_to_depth_pixels",
    "depth_to_color_pixels",
    "pose_is_valid",
]


def pixel_grid(height: int, width: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Pixel centre coordinates. Returns ``(H, W, 2)`` holding ``(u, v)`` = (column, row)."""
    v, u = torch.meshgrid(
        torch.arange(height, device=device, dtype=dtype),
        torch.arange(width, device=device, dtype=dtype),
        indexing="ij",
    )
    return torch.stack([u, v], dim=-1)


def backproject_depth(depth: torch.Tensor, K: torch.Tensor, pose: torch.Tensor | None = None) -> torch.Tensor:
    """Back-project depth maps to 3D points.

    Args:
        depth: ``(B, H, W)`` metres, 0 = invalid (invalid pixels give the point ``(0, 0, 0)`` in the
            camera frame; mask them with ``depth > 0``).
        K: ``(B, 3, 3)`` or ``(3, 3)`` intrinsics of the depth image.
        pose: optional ``(B, 4, 4)`` or ``(4, 4)`` camera-to-world. When given, points are in world
            coordinates, otherwise in the camera frame.

    Returns:
        ``(B, H, W, 3)`` points, same dtype as ``depth``.
    """
    if depth.dim() != 3:
        raise ValueError(f"depth must be (B, H, W), got {tuple(depth.shape)}")
    B, H, W = depth.shape
    K = _batched(K, B, 3).to(depth.dtype)
    uv = pixel_grid(H, W, device=depth.device, dtype=depth.dtype)  # (H, W, 2)
    x, y = pixel_rays(uv[..., 0], uv[..., 1], K[:, None, None])  # (B, H, W) each
    pts = torch.stack([x * depth, y * depth, depth], dim=-1)
    if pose is not None:
        pts = transform_points(pts.view(B, H * W, 3), pose).view(B, H, W, 3)
    return pts


def transform_points(points: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    """Apply a rigid 4x4 transform.

    Args:
        points: ``(B, N, 3)`` (or ``(N, 3)`` with an unbatched ``T``).
        T: ``(B, 4, 4)`` or ``(4, 4)``.

    Returns:
        ``(B, N, 3)`` (or ``(N, 3)``), in the dtype of ``points``.
    """
    if points.dim() == 2:
        return transform_points(points[None], T if T.dim() == 3 else T[None])[0]
    B = points.shape[0]
    T = _batched(T, B, 4).to(points.dtype)
    return points @ T[:, :3, :3].transpose(1, 2) + T[:, None, :3, 3]


def invert_pose(T: torch.Tensor) -> torch.Tensor:
    """Invert rigid transforms ``(..., 4, 4)`` exactly (R^T, -R^T t), no general matrix inverse."""
    R = T[..., :3, :3]
    t = T[..., :3, 3:]
    out = torch.zeros_like(T)
    out[..., :3, :3] = R.transpose(-1, -2)
    out[..., :3, 3:] = -R.transpose(-1, -2) @ t
    out[..., 3, 3] = 1
    return out


def project_points(
    points_world: torch.Tensor, K: torch.Tensor, pose: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Project 3D points into a camera.

    Args:
        points_world: ``(B, N, 3)`` points (world frame if ``pose`` is given, else camera frame).
        K: ``(B, 3, 3)`` or ``(3, 3)`` intrinsics.
        pose: optional ``(B, 4, 4)`` or ``(4, 4)`` camera-to-world pose of the target camera.

    Returns:
        ``uv``: ``(B, N, 2)`` continuous pixel coordinates (column, row);
        ``z``: ``(B, N)`` depth in the target camera (<= 0 means behind the camera; ``uv`` is then
        meaningless and callers must mask it).
    """
    B = points_world.shape[0]
    pts = points_world
    if pose is not None:
        pts = transform_points(pts, invert_pose(_batched(pose, B, 4).to(torch.float64)).to(pts.dtype))
    K = _batched(K, B, 3).to(pts.dtype)
    z = pts[..., 2]
    safe_z = torch.where(z.abs() < 1e-12, torch.full_like(z, 1e-12), z)
    u = K[:, None, 0, 0] * pts[..., 0] / safe_z + K[:, None, 0, 2]
    v = K[:, None, 1, 1] * pts[..., 1] / safe_z + K[:, None, 1, 2]
    return torch.stack([u, v], dim=-1), z


def scale_intrinsics(K, sx: float, sy: float):
    """Intrinsics of an image resized by ``(sx, sy)`` = (new_width / old_width, new_height / old_height).

    Uses the pixel-centre convention: ``c' = (c + 0.5) * s - 0.5``, so that a resize done with
    ``align_corners=False`` (OpenCV / torch default) keeps every pixel on the same ray.

    Args:
        K: ``(..., 3, 3)`` tensor or numpy array.
    Returns:
        ``(..., 3, 3)``, a new tensor (a new numpy array for a numpy ``K``).
    """
    K = K.copy() if isinstance(K, np.ndarray) else K.clone()
    K[..., 0, 0] = K[..., 0, 0] * sx
    K[..., 1, 1] = K[..., 1, 1] * sy
    K[..., 0, 2] = (K[..., 0, 2] + 0.5) * sx - 0.5
    K[..., 1, 2] = (K[..., 1, 2] + 0.5) * sy - 0.5
    return K


def _map_pixels(uv: torch.Tensor, K_from: torch.Tensor, K_to: torch.Tensor) -> torch.Tensor:
    # Colour and depth cameras of RGB-D sensors are registered (same centre and axes) in every
    # format pri3d reads, so a pixel maps between the grids through normalised coordinates alone.
    K_from = K_from.to(uv.dtype)
    K_to = K_to.to(uv.dtype)
    x, y = pixel_rays(uv[..., 0], uv[..., 1], K_from[..., None, :, :])
    return torch.stack(
        [x * K_to[..., 0, 0, None] + K_to[..., 0, 2, None], y * K_to[..., 1, 1, None] + K_to[..., 1, 2, None]],
        dim=-1,
    )


def color_to_depth_pixels(uv_color: torch.Tensor, K_color: torch.Tensor, K_depth: torch.Tensor) -> torch.Tensor:
    """Map colour pixel coordinates to the depth image's pixel grid.

    Args:
        uv_color: ``(B, N, 2)``; K_color, K_depth: ``(B, 3, 3)``.
    Returns:
        ``(B, N, 2)`` continuous depth-image coordinates.
    """
    return _map_pixels(uv_color, K_color, K_depth)


def depth_to_color_pixels(uv_depth: torch.Tensor, K_depth: torch.Tensor, K_color: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`color_to_depth_pixels`: ``(B, N, 2)`` depth pixels -> colour pixels."""
    return _map_pixels(uv_depth, K_depth, K_color)


def pose_is_valid(pose, *, atol: float = 1e-3) -> bool:
    """True when ``pose`` (4x4, numpy or torch) is finite and rigid: orthonormal rotation with
    determinant +1 and last row ``[0, 0, 0, 1]``. ScanNet marks lost tracking with ``-inf`` poses."""
    T = torch.as_tensor(pose, dtype=torch.float64)
    if T.shape != (4, 4) or not torch.isfinite(T).all():
        return False
    R = T[:3, :3]
    if not torch.allclose(R @ R.T, torch.eye(3, dtype=torch.float64), atol=atol):
        return False
    if abs(float(torch.linalg.det(R)) - 1.0) > atol:
        return False
    return torch.allclose(T[3], torch.tensor([0, 0, 0, 1], dtype=torch.float64), atol=atol)


def _batched(M: torch.Tensor, B: int, n: int) -> torch.Tensor:
    M = torch.as_tensor(M)
    if M.dim() == 2:
        M = M[None].expand(B, n, n)
    if M.shape[-2:] != (n, n):
        raise ValueError(f"expected (B, {n}, {n}) matrices, got {tuple(M.shape)}")
    return M
