"""Relative camera pose: viewpoint change between two views, the essential-matrix solve, pose errors and
the cumulative-error AUC of SuperGlue / LoFTR. Pure numpy functions (OpenCV for the RANSAC solve).

Conventions (as everywhere in pri3d): poses are camera-to-world 4x4 (``X_world = T @ X_cam``), OpenCV
camera axes (x right, y down, z forward). ``T_0to1`` maps camera-0 coordinates to camera-1 coordinates
(``X_1 = T_0to1 @ X_0``), the ground truth of the ScanNet test pairs of SuperGlue and LoFTR. Pixel
coordinates are ``(u, v)`` = (column, row) with the centre of the top-left pixel at ``(0, 0)``.

The solve and the errors follow SuperGlue's ``models/utils.py`` (``estimate_pose``,
``compute_pose_error``, ``pose_auc``; LoFTR's ``src/utils/metrics.py`` has the same definitions):
keypoints are normalised by their own K, ``cv2.findEssentialMat`` runs RANSAC with the pixel threshold
divided by the mean focal length, ``cv2.recoverPose`` picks the solution with the most points in
front of both cameras, the translation error is the angle between unit vectors made sign-invariant
(``min(e, 180 - e)``: E fixes ``t`` only up to sign), and a failed solve counts as an infinite error.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "rotation_angle_deg",
    "relative_rotation_deg",
    "relative_pose",
    "intrinsics_are_valid",
    "estimate_relative_pose",
    "angle_error_mat",
    "angle_error_vec",
    "pose_errors",
    "pose_auc",
]


def rotation_angle_deg(R) -> np.ndarray:
    """Angle of rotation matrices in degrees, in ``[0, 180]``.

    Args:
        R: ``(..., 3, 3)`` rotation matrices.
    Returns:
        ``(...)`` float64 angles (``arccos((trace - 1) / 2)``, the cosine clipped to ``[-1, 1]``).
    """
    R = np.asarray(R, dtype=np.float64)
    cos = (np.trace(R, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.rad2deg(np.arccos(np.clip(cos, -1.0, 1.0)))


def relative_rotation_deg(pose_a, pose_b) -> np.ndarray:
    """Viewpoint change between two cameras: the angle of their relative rotation, in degrees.

    Args:
        pose_a, pose_b: ``(..., 4, 4)`` camera-to-world poses (or ``(..., 3, 3)`` rotations).
    Returns:
        ``(...)`` float64 angles in ``[0, 180]``: the angle of ``R_a^T R_b`` (symmetric in a and b;
        translation plays no part).
    """
    Ra = np.asarray(pose_a, dtype=np.float64)[..., :3, :3]
    Rb = np.asarray(pose_b, dtype=np.float64)[..., :3, :3]
    return rotation_angle_deg(np.swapaxes(Ra, -1, -2) @ Rb)


def relative_pose(pose_0, pose_1) -> np.ndarray:
    """``T_0to1 = inv(T_1) @ T_0``: camera-0 coordinates to camera-1 coordinates.

    Args:
        pose_0, pose_1: ``(..., 4, 4)`` rigid camera-to-world poses.
    Returns:
        ``(..., 4, 4)`` float64 (the rigid inverse ``[R^T, -R^T t]``, no general matrix inverse).
    """
    T0 = np.asarray(pose_0, dtype=np.float64)
    T1 = np.asarray(pose_1, dtype=np.float64)
    R1t = np.swapaxes(T1[..., :3, :3], -1, -2)
    inv1 = np.zeros_like(T1)
    inv1[..., :3, :3] = R1t
    inv1[..., :3, 3:] = -R1t @ T1[..., :3, 3:]
    inv1[..., 3, 3] = 1.0
    return inv1 @ T0


def intrinsics_are_valid(K) -> bool:
    """True when ``K`` (3x3) is finite, has positive focal lengths and last row ``[0, 0, 1]``
    (a singular or non-finite K cannot normalise pixel coordinates)."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.isfinite(K).all():
        return False
    if not (K[0, 0] > 0 and K[1, 1] > 0):
        return False
    return bool(np.allclose(K[2], [0.0, 0.0, 1.0]))


def estimate_relative_pose(
    kpts0, kpts1, K0, K1, *, threshold_px: float = 1.0, confidence: float = 0.99999, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Relative pose from matched pixels: essential matrix with RANSAC, then the cheirality check.

    SuperGlue's ``estimate_pose``: pixels are normalised with their own K; the RANSAC threshold is
    ``threshold_px`` divided by the mean focal length (their formula, ``mean(fx0, fy1, fx0, fy1)``);
    ``cv2.recoverPose`` is run on each returned essential matrix and the one with the most inliers wins.

    Args:
        kpts0, kpts1: ``(N, 2)`` matched pixel coordinates ``(u, v)`` in images 0 and 1.
        K0, K1: ``(3, 3)`` intrinsics of those images (at the resolution of the pixel coordinates).
        threshold_px: RANSAC inlier threshold, pixels (SuperGlue: 1 at 640x480).
        confidence: RANSAC confidence (SuperGlue and LoFTR: 0.99999).
        seed: seeds OpenCV's RNG, so the solve repeats exactly.

    Returns:
        ``(R (3, 3), t (3,) unit vector, inliers (N,) bool)`` with ``X_1 = R X_0 + s t`` for some
        scale ``s``, or None when there are fewer than 5 matches or no solution (OpenCV errors on
        degenerate matches included).
    """
    import cv2

    kpts0 = np.asarray(kpts0, dtype=np.float64).reshape(-1, 2)
    kpts1 = np.asarray(kpts1, dtype=np.float64).reshape(-1, 2)
    if len(kpts0) != len(kpts1):
        raise ValueError(f"kpts0 and kpts1 differ in length: {len(kpts0)} vs {len(kpts1)}")
    if len(kpts0) < 5:
        return None
    K0 = np.asarray(K0, dtype=np.float64)
    K1 = np.asarray(K1, dtype=np.float64)
    f_mean = np.mean([K0[0, 0], K1[1, 1], K0[0, 0], K1[1, 1]])
    norm_thresh = threshold_px / f_mean
    n0 = (kpts0 - K0[[0, 1], [2, 2]][None]) / K0[[0, 1], [0, 1]][None]
    n1 = (kpts1 - K1[[0, 1], [2, 2]][None]) / K1[[0, 1], [0, 1]][None]
    cv2.setRNGSeed(int(seed))
    try:
        E, mask = cv2.findEssentialMat(n0, n1, np.eye(3), threshold=norm_thresh, prob=confidence, method=cv2.RANSAC)
        if E is None or E.shape[0] < 3 or E.shape[0] % 3:
            return None
        best, ret = 0, None
        for _E in np.split(E, len(E) // 3):
            # keywords pick the overload with a distance threshold (SuperGlue's call); positional
            # arguments select another overload in OpenCV 5
            n, R, t, _, _ = cv2.recoverPose(
                E=_E, points1=n0, points2=n1, cameraMatrix=np.eye(3), distanceThresh=1e9, mask=mask.copy()
            )
            if n > best:
                best = n
                ret = (R, t[:, 0], mask.ravel() > 0)
    except cv2.error:
        # OpenCV 5's five-point solver raises on degenerate minimal samples ("solvePoly" assertion), e.g.
        # when most matches sit at the same pixel in both views (an untrained network's features are
        # dominated by position); retrying with other seeds does not help there: a failed solve
        return None
    return ret


def angle_error_mat(R1, R2) -> float:
    """Angle in degrees of the rotation taking ``R1`` to ``R2`` (both ``(3, 3)``)."""
    return float(rotation_angle_deg(np.asarray(R1, dtype=np.float64).T @ np.asarray(R2, dtype=np.float64)))


def angle_error_vec(v1, v2) -> float:
    """Angle in degrees between two 3-vectors (not sign-invariant; ``nan``-free for non-zero vectors)."""
    v1 = np.asarray(v1, dtype=np.float64)
    v2 = np.asarray(v2, dtype=np.float64)
    n = np.linalg.norm(v1) * np.linalg.norm(v2)
    return float(np.rad2deg(np.arccos(np.clip(np.dot(v1, v2) / n, -1.0, 1.0))))


def pose_errors(T_0to1, R, t) -> tuple[float, float]:
    """``(translation error, rotation error)`` in degrees of an estimate ``(R, t)`` against ``T_0to1``.

    Args:
        T_0to1: ``(4, 4)`` ground truth, camera 0 to camera 1.
        R: ``(3, 3)`` estimated rotation; t: ``(3,)`` estimated translation direction.
    Returns:
        The translation error is the angle between ``t`` and the true translation, made sign-invariant
        as in SuperGlue (``min(e, 180 - e)``); the rotation error is the angle of ``R^T R_gt``. A pure
        rotation (zero true translation) has an undefined direction: its translation error is 0 only
        when ``t`` is zero too, else ``nan`` (callers must decide; :func:`pose_auc` counts it a miss).
    """
    T = np.asarray(T_0to1, dtype=np.float64)
    e_t = angle_error_vec(t, T[:3, 3])
    e_t = min(e_t, 180.0 - e_t)
    return e_t, angle_error_mat(R, T[:3, :3])


def pose_auc(errors, thresholds) -> list[float]:
    """Area under the cumulative error curve up to each threshold, normalised to ``[0, 1]``.

    Exactly SuperGlue's ``pose_auc`` (``models/utils.py``; LoFTR's ``error_auc`` is the same curve):
    errors sorted, recall ``i / n`` at the i-th error, the curve starting at ``(0, 0)``, cut at the
    threshold with the last recall below it, integrated with the trapezoidal rule and divided by the
    threshold. Infinite (failed) errors count in ``n`` but never below a threshold; ``nan`` counts as a
    failure too.

    Args:
        errors: ``(N,)`` pose errors in degrees (``max(rotation, translation)`` per pair).
        thresholds: e.g. ``(5, 10, 20)``.
    Returns:
        One AUC per threshold (``nan`` for no errors).
    """
    errors = np.asarray(errors, dtype=np.float64).ravel()
    if len(errors) == 0:
        return [float("nan")] * len(thresholds)
    errors = np.where(np.isnan(errors), np.inf, errors)
    errors = np.sort(errors)
    recall = (np.arange(len(errors)) + 1) / len(errors)
    errors = np.r_[0.0, errors]
    recall = np.r_[0.0, recall]
    aucs = []
    for t in thresholds:
        last_index = np.searchsorted(errors, t)
        r = np.r_[recall[:last_index], recall[last_index - 1]]
        e = np.r_[errors[:last_index], t]
        aucs.append(float(np.trapezoid(r, x=e) / t))
    return aucs
