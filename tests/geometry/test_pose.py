"""Relative pose geometry: viewpoint angles, the essential-matrix path on exact correspondences, pose
errors and SuperGlue's pose AUC."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pri3d.geometry.pose import (
    estimate_relative_pose,
    intrinsics_are_valid,
    pose_auc,
    pose_errors,
    relative_pose,
    relative_rotation_deg,
    rotation_angle_deg,
)


def rot(axis, deg):
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return {
        "x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
        "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
        "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
    }[axis]


def pose(R, t):
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    return T


def test_rotation_angle_of_known_rotations():
    for axis in "xyz":
        for deg in (0.0, 10.0, 45.0, 90.0, 179.0):
            assert rotation_angle_deg(rot(axis, deg)) == pytest.approx(deg, abs=1e-6)
    assert rotation_angle_deg(rot("z", -30.0)) == pytest.approx(30.0)
    # the relative angle of two camera-to-world poses ignores translation and the common world rotation
    W = rot("x", 33.0) @ rot("z", 12.0)
    a = pose(W, [1.0, 2.0, 3.0])
    b = pose(W @ rot("y", 25.0), [-4.0, 0.5, 2.0])
    assert relative_rotation_deg(a, b) == pytest.approx(25.0)
    assert relative_rotation_deg(b, a) == pytest.approx(25.0)
    # batched
    poses_b = np.stack([pose(rot("y", d), [0, 0, 0]) for d in (5.0, 20.0, 70.0)])
    np.testing.assert_allclose(relative_rotation_deg(np.eye(4)[None], poses_b), [5.0, 20.0, 70.0], atol=1e-9)


def test_relative_pose_maps_camera0_to_camera1():
    T0 = pose(rot("y", 20.0) @ rot("x", 5.0), [0.3, -0.2, 1.0])
    T1 = pose(rot("z", -15.0), [1.0, 0.4, 0.0])
    T01 = relative_pose(T0, T1)
    X0 = np.array([0.2, -0.1, 2.5, 1.0])  # a point in camera 0
    np.testing.assert_allclose(T01 @ X0, np.linalg.inv(T1) @ (T0 @ X0), atol=1e-12)


def test_intrinsics_validity():
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    assert intrinsics_are_valid(K)
    assert not intrinsics_are_valid(np.zeros((3, 3)))
    bad = K.copy()
    bad[0, 0] = np.nan
    assert not intrinsics_are_valid(bad)
    bad = K.copy()
    bad[2] = [0, 0, 0]
    assert not intrinsics_are_valid(bad)


def _project(X_world, T_c2w, K):
    Xc = (X_world - T_c2w[:3, 3]) @ T_c2w[:3, :3]  # R^T (X - t), row vectors
    uv = Xc[:, :2] / Xc[:, 2:3] * K[[0, 1], [0, 1]] + K[[0, 1], [2, 2]]
    return uv, Xc[:, 2]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ground_truth_correspondences_give_zero_pose_error(seed):
    rng = np.random.default_rng(seed)
    K0 = np.array([[290.0, 0, 159.5], [0, 291.0, 119.5], [0, 0, 1]])
    K1 = np.array([[310.0, 0, 161.0], [0, 305.0, 118.0], [0, 0, 1]])
    T0 = pose(np.eye(3), [0.0, 0.0, 0.0])
    T1 = pose(rot("y", -20.0 - 10 * seed) @ rot("x", 5.0), [0.6, 0.1, 0.2])
    X = rng.uniform([-1.5, -1.0, 2.0], [1.5, 1.0, 5.0], size=(300, 3))  # a scene in front of camera 0
    uv0, z0 = _project(X, T0, K0)
    uv1, z1 = _project(X, T1, K1)
    ok = (z0 > 0) & (z1 > 0)
    assert ok.sum() > 100
    R, t, inliers = estimate_relative_pose(uv0[ok], uv1[ok], K0, K1, threshold_px=1.0)
    e_t, e_R = pose_errors(relative_pose(T0, T1), R, t)
    assert max(e_t, e_R) < 0.05, (e_t, e_R)
    assert inliers.mean() > 0.95
    # the same answer when the seed repeats (OpenCV's RNG is seeded)
    R2, t2, _ = estimate_relative_pose(uv0[ok], uv1[ok], K0, K1, threshold_px=1.0)
    np.testing.assert_array_equal(R, R2)
    np.testing.assert_array_equal(t, t2)


def test_too_few_matches_is_a_failed_solve():
    K = np.eye(3)
    assert estimate_relative_pose(np.zeros((4, 2)), np.zeros((4, 2)), K, K) is None


def test_pose_errors_translation_is_sign_invariant():
    T = pose(rot("z", 10.0), [1.0, 0.0, 0.0])
    e_t, e_R = pose_errors(T, rot("z", 10.0), np.array([-1.0, 0.0, 0.0]))
    assert e_t == pytest.approx(0.0) and e_R == pytest.approx(0.0, abs=1e-6)
    e_t, e_R = pose_errors(T, rot("z", 13.0), np.array([math.cos(math.radians(100)), math.sin(math.radians(100)), 0]))
    assert e_t == pytest.approx(80.0) and e_R == pytest.approx(3.0)


def _superglue_pose_auc(errors, thresholds):
    """Verbatim from magicleap/SuperGluePretrainedNetwork models/utils.py (np.trapz renamed
    np.trapezoid in numpy 2)."""
    sort_idx = np.argsort(errors)
    errors = np.array(errors.copy())[sort_idx]
    recall = (np.arange(len(errors)) + 1) / len(errors)
    errors = np.r_[0.0, errors]
    recall = np.r_[0.0, recall]
    aucs = []
    for t in thresholds:
        last_index = np.searchsorted(errors, t)
        r = np.r_[recall[:last_index], recall[last_index - 1]]
        e = np.r_[errors[:last_index], t]
        aucs.append(np.trapezoid(r, x=e) / t)
    return aucs


def test_pose_auc_hand_computed_cases():
    # curve (0, 0) (1, 1/2) (3, 1): up to 2 the area is 1/4 + 1/2 = 3/4; up to 4 it is 1/4 + 3/2 + 1
    assert pose_auc([3.0, 1.0], [2, 4]) == pytest.approx([0.375, 0.6875])
    assert pose_auc([0.0, 0.0], [5, 10, 20]) == pytest.approx([1.0, 1.0, 1.0])
    assert pose_auc([np.inf, np.inf], [5, 10, 20]) == [0.0, 0.0, 0.0]
    # one exact pair, one failure: half the pairs at error 0
    assert pose_auc([0.0, np.inf], [5]) == pytest.approx([0.5])
    # all errors above the threshold
    assert pose_auc([30.0, 40.0], [5, 10, 20]) == [0.0, 0.0, 0.0]
    assert all(math.isnan(v) for v in pose_auc([], [5, 10]))


def test_pose_auc_matches_the_superglue_definition():
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 100):
        errors = rng.exponential(8.0, size=n)
        errors[rng.random(n) < 0.2] = np.inf  # failed solves
        np.testing.assert_allclose(
            pose_auc(errors, [5, 10, 20]), _superglue_pose_auc(errors, [5, 10, 20]), rtol=0, atol=1e-12
        )


def test_degenerate_matches_are_a_failed_solve_not_an_exception():
    # most matches at the same point in both views (no motion): OpenCV 5's five-point solver raises on
    # such samples; the solve reports a failure (an infinite pose error) instead
    rng = np.random.default_rng(0)
    k = rng.uniform(0, 300, (400, 2))
    k1 = k.copy()
    k1[:100] = rng.uniform(0, 300, (100, 2))
    K = np.array([[300.0, 0, 150], [0, 300, 150], [0, 0, 1]])
    assert estimate_relative_pose(k, k1, K, K) is None
