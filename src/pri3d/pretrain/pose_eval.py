"""Relative pose from dense features: the SuperGlue / LoFTR pose benchmark for a frozen backbone.

Per pair: the backbone's L2-normalised feature maps of both images (``(C, H/2, W/2)``), a grid of
feature pixels (every ``stride``-th row and column) in each, **mutual nearest neighbours** by cosine
similarity between the two grids, the matched feature-pixel centres mapped to input-image pixels at the
evaluated resolution, then the essential matrix with RANSAC and the cheirality check
(:func:`pri3d.geometry.pose.estimate_relative_pose`, SuperGlue's solve), and the rotation and
translation-direction errors against the ground truth. A pair's pose error is the larger of the two
(inf when the solve fails); the result is the AUC of the cumulative error curve at 5, 10 and 20 degrees
(:func:`pri3d.geometry.pose.pose_auc`, SuperGlue's definition).

The callers are in :mod:`pri3d.pretrain.matching_eval`: a prepared directory (``matching_recall(...,
pose=True)``: the ground truth is ``inv(T_b) @ T_a`` of the two camera-to-world poses) and a pair list
in the ScanNet test-pair format (``evaluate_pose_pairs``, no depth needed).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from pri3d.geometry.pose import estimate_relative_pose, pose_auc, pose_errors

__all__ = [
    "POSE_THRESHOLDS",
    "mutual_nn",
    "feature_matches",
    "solve_pair",
    "pose_summary",
]

POSE_THRESHOLDS = (5.0, 10.0, 20.0)


@torch.no_grad()
def mutual_nn(fa: torch.Tensor, fb: torch.Tensor, chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Mutual nearest neighbours by dot product (cosine for L2-normalised rows).

    Args:
        fa: ``(Na, C)``; fb: ``(Nb, C)``.
        chunk: rows of ``fa`` per similarity block (memory ``chunk * Nb`` floats).
    Returns:
        ``(ia, ib)``: ``(M,)`` int64 indices with ``fb[ib[k]]`` the nearest neighbour of ``fa[ia[k]]`` and
        the reverse.
    """
    Na, Nb = fa.shape[0], fb.shape[0]
    if Na == 0 or Nb == 0:
        return torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64)
    best_b = torch.empty(Na, dtype=torch.int64, device=fa.device)
    col_val = torch.full((Nb,), -math.inf, device=fa.device)
    col_idx = torch.zeros(Nb, dtype=torch.int64, device=fa.device)
    for s in range(0, Na, chunk):
        sim = fa[s : s + chunk] @ fb.t()  # (c, Nb)
        best_b[s : s + chunk] = sim.argmax(dim=1)
        v, i = sim.max(dim=0)
        better = v > col_val  # first maximum wins on ties, as one argmax over all rows would
        col_val = torch.where(better, v, col_val)
        col_idx = torch.where(better, i + s, col_idx)
    ia = torch.arange(Na, device=fa.device)
    keep = col_idx[best_b] == ia
    return ia[keep].cpu(), best_b[keep].cpu()


def _grid(h: int, w: int, stride: int, device) -> torch.Tensor:
    """Flat indices of the grid points (every ``stride``-th pixel, offset to centre the grid)."""
    rows = torch.arange(stride // 2, h, stride, device=device)
    cols = torch.arange(stride // 2, w, stride, device=device)
    return (rows[:, None] * w + cols[None, :]).reshape(-1)


@torch.no_grad()
def feature_matches(
    feat_a: torch.Tensor, feat_b: torch.Tensor, image_size, *, stride: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Mutual-nearest-neighbour matches between two feature maps, as input-image pixel coordinates.

    Args:
        feat_a, feat_b: ``(C, h, w)`` L2-normalised feature maps (the backbone's output, h = H/2).
        image_size: ``(H, W)`` of the evaluated input images.
        stride: grid step in feature pixels (2: every 4th input pixel).
    Returns:
        ``(kpts0, kpts1)``: ``(M, 2)`` float64 ``(u, v)`` in input-image pixels at the evaluated
        resolution: the centre of feature pixel ``j`` is input pixel ``(j + 0.5) * W / w - 0.5``.
    """
    C, h, w = feat_a.shape
    H, W = int(image_size[0]), int(image_size[1])
    idx = _grid(h, w, int(stride), feat_a.device)
    fa = feat_a.reshape(C, h * w)[:, idx].t()
    fb = feat_b.reshape(C, h * w)[:, idx].t()
    ia, ib = mutual_nn(fa, fb)
    idx = idx.cpu()

    def to_image(flat: torch.Tensor) -> np.ndarray:
        u = (flat % w).double()
        v = torch.div(flat, w, rounding_mode="floor").double()
        return torch.stack([(u + 0.5) * (W / w) - 0.5, (v + 0.5) * (H / h) - 0.5], dim=1).numpy()

    return to_image(idx[ia]), to_image(idx[ib])


def solve_pair(kpts0, kpts1, K0, K1, T_0to1, *, threshold_px: float = 1.0, seed: int = 0) -> dict:
    """Pose error of one pair: ``{"matches", "inliers", "err_R", "err_t", "err"}`` (degrees; ``err`` =
    max of the two, inf when the essential-matrix solve fails)."""
    ret = estimate_relative_pose(kpts0, kpts1, K0, K1, threshold_px=threshold_px, seed=seed)
    if ret is None:
        return {"matches": len(kpts0), "inliers": 0, "err_R": math.inf, "err_t": math.inf, "err": math.inf}
    R, t, inl = ret
    e_t, e_R = pose_errors(T_0to1, R, t)
    return {"matches": len(kpts0), "inliers": int(inl.sum()), "err_R": e_R, "err_t": e_t, "err": max(e_t, e_R)}


def pose_summary(records: list[dict], thresholds=POSE_THRESHOLDS) -> dict:
    """``{"pose_auc@5": ..., "pose_auc@10": ..., "pose_auc@20": ..., "pose_pairs": n, "pose_failures":
    failed solves, "pose_median_err": degrees, "median_matches": ...}`` of :func:`solve_pair` records."""
    errs = np.array([r["err"] for r in records], dtype=np.float64)
    out = {f"pose_auc@{t:g}": a for t, a in zip(thresholds, pose_auc(errs, thresholds))}
    out["pose_pairs"] = len(records)
    out["pose_failures"] = int(np.sum(~np.isfinite(errs)))
    out["pose_median_err"] = float(np.median(errs)) if len(errs) else float("nan")
    out["median_matches"] = float(np.median([r["matches"] for r in records])) if records else float("nan")
    return out
