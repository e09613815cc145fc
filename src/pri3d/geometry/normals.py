"""Surface normals from depth maps, and angles between normals: pure, batched torch functions.

Conventions: OpenCV camera frame (x right, y down, z forward), depth in metres with 0 = invalid.
Normals are unit vectors in the camera frame, oriented towards the camera (``n . X <= 0`` for the
surface point ``X``), so a wall seen head-on has the normal ``(0, 0, -1)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pri3d.geometry.camera import backproject_depth

__all__ = ["normals_from_depth", "angle_between"]


def normals_from_depth(
    depth: torch.Tensor, K: torch.Tensor, *, step: int = 1, max_rel_jump: float = 0.1, smooth: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera-frame unit normals of depth maps by the cross product of neighbour differences.

    Each pixel is back-projected with :func:`~pri3d.geometry.camera.backproject_depth`; the normal at
    ``(u, v)`` is ``(X[v, u+s] - X[v, u-s]) x (X[v+s, u] - X[v-s, u])`` (central differences over
    ``s = step`` pixels), normalised and flipped to face the camera.

    A normal is valid only where the pixel and its four neighbours have depth (holes are masked), where
    no neighbour's depth differs from the centre's by more than ``max_rel_jump`` times the centre's
    depth (depth edges: the two sides of an occlusion boundary are not one surface), and away from the
    image border (``step`` pixels). With ``smooth = r > 0`` each valid normal is then replaced by the
    normalised sum of the valid normals in its ``(2r+1) x (2r+1)`` window (sensor noise and depth
    quantisation make single-pixel differences noisy); the mask does not change.

    Args:
        depth: ``(B, H, W)`` metres, 0 = invalid.
        K: ``(B, 3, 3)`` or ``(3, 3)`` intrinsics of the depth image.
        step: neighbour distance in pixels (>= 1); larger steps smooth sensor noise.
        max_rel_jump: relative depth jump to a neighbour above which the pixel is a depth edge.
        smooth: radius of the window the normals are averaged over (0: none).

    Returns:
        ``normals``: ``(B, H, W, 3)`` unit vectors (zero where invalid), same dtype as ``depth``;
        ``valid``: ``(B, H, W)`` bool.
    """
    if depth.dim() != 3:
        raise ValueError(f"depth must be (B, H, W), got {tuple(depth.shape)}")
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    if max_rel_jump <= 0:
        raise ValueError(f"max_rel_jump must be > 0, got {max_rel_jump}")
    if smooth < 0:
        raise ValueError(f"smooth must be >= 0, got {smooth}")
    B, H, W = depth.shape
    s = int(step)
    X = backproject_depth(depth, K)  # (B, H, W, 3)
    # Pad so that every pixel has four neighbours; border pixels then see zero depth and are masked.
    Xp = F.pad(X.permute(0, 3, 1, 2), (s, s, s, s)).permute(0, 2, 3, 1)  # (B, H+2s, W+2s, 3)
    dp = F.pad(depth, (s, s, s, s))  # (B, H+2s, W+2s)

    def shifted(t, dv, du):
        return t[:, s + dv : s + dv + H, s + du : s + du + W]

    right, left, down, up = (shifted(Xp, 0, s), shifted(Xp, 0, -s), shifted(Xp, s, 0), shifted(Xp, -s, 0))
    n = torch.linalg.cross(right - left, down - up, dim=-1)
    norm = n.norm(dim=-1, keepdim=True)
    valid = (depth > 0) & (norm[..., 0] > 0)
    for dv, du in ((0, s), (0, -s), (s, 0), (-s, 0)):
        d_nb = shifted(dp, dv, du)
        valid &= (d_nb > 0) & ((d_nb - depth).abs() <= max_rel_jump * depth)
    n = n / norm.clamp_min(torch.finfo(n.dtype).tiny)
    facing_away = (n * X).sum(-1, keepdim=True) > 0
    n = torch.where(facing_away, -n, n)
    n = torch.where(valid[..., None], n, torch.zeros_like(n))
    if smooth:
        k = 2 * int(smooth) + 1
        summed = F.avg_pool2d(n.permute(0, 3, 1, 2), k, stride=1, padding=int(smooth), count_include_pad=False)
        summed = summed.permute(0, 2, 3, 1)
        norm = summed.norm(dim=-1, keepdim=True)
        valid = valid & (norm[..., 0] > 0)
        n = torch.where(valid[..., None], summed / norm.clamp_min(torch.finfo(n.dtype).tiny), torch.zeros_like(n))
    return n, valid


def angle_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle in degrees between vectors ``a`` and ``b`` (``(..., 3)``, any length > 0) -> ``(...)``.

    Uses ``atan2(|a x b|, a . b)``, accurate at small and large angles alike (``acos`` of a clamped dot
    product loses precision near 0 and 180 degrees). A zero vector has no direction: its angle to anything
    is 90 degrees (no better than a guess), never 0."""
    cross = torch.linalg.cross(a, b, dim=-1).norm(dim=-1)
    dot = (a * b).sum(-1)
    ang = torch.rad2deg(torch.atan2(cross, dot))
    zero = (a.norm(dim=-1) == 0) | (b.norm(dim=-1) == 0)
    return torch.where(zero, torch.full_like(ang, 90.0), ang)
