"""The fast pair-overlap miner against the exact KD-tree reference (:mod:`pri3d.geometry.overlap`), on
known answers and on the analytic box room (``tests/boxroom.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from boxroom import H, K, W, check_faithful, render_depth, trajectory
from pri3d.geometry.overlap import overlap_fast, overlap_reference


def test_overlap_known_answer_plane_shift():
    # Two cameras 2 m in front of a wall, the second shifted sideways by a quarter of the view.
    Kp = np.array([[100.0, 0, 63.5], [0, 100.0, 47.5], [0, 0, 1]])
    d = np.full((H, W), 2.0, np.float32)
    shift = 0.25 * W / 100.0 * 2.0 + 0.005  # a quarter of the footprint width (+5 mm: no exact ties)
    T1 = np.eye(4)
    T2 = np.eye(4)
    T2[0, 3] = shift
    ref = overlap_reference([d, d], [Kp, Kp], [T1, T2], radius=0.02)
    fast, _, _ = overlap_fast(np.stack([d, d]), Kp, np.stack([T1, T2]), radius=0.02, query_stride=2)
    # 3/4 of each view overlaps, less 5 mm, plus the 2 cm margin: 96 - 0.25 + 1 of 128 columns.
    assert ref[0] == pytest.approx(96 / W, abs=0.005)
    assert fast[0] == pytest.approx(ref[0], abs=0.01)
    # Official settings (5 cm voxels, 7.5 cm radius, max of both directions) on the same pair.
    off = overlap_reference([d, d], [Kp, Kp], [T1, T2], radius=0.075, voxel_size=0.05, combine="max")
    assert 0.75 <= off[0] <= 0.85
    # A wall 6 cm further away in the second view: no match at 2 cm, all matched at 7.5 cm.
    ref6 = overlap_reference([d, d + 0.06], [Kp, Kp], [T1, T1], radius=0.02)
    off6 = overlap_reference([d, d + 0.06], [Kp, Kp], [T1, T1], radius=0.075, voxel_size=0.05, combine="max")
    fast6, _, _ = overlap_fast(np.stack([d, d + 0.06]), Kp, np.stack([T1, T1]))
    assert ref6[0] == 0 and fast6[0] == 0 and off6[0] > 0.95


def test_overlap_fast_faithful_on_synthetic_room():
    poses = trajectory(10)
    rng = np.random.default_rng(1)
    depth = np.stack([render_depth(T, noise=0.003, holes=0.05, rng=rng) for T in poses])
    ref = overlap_reference(list(depth), [K] * 10, poses, radius=0.02)
    fast, pairs, stats = overlap_fast(depth, K, np.stack(poses), radius=0.02)
    assert len(pairs) == 45 and stats.queries > 0
    check_faithful(fast, ref)
    assert (ref >= 0.3).sum() >= 8 and (ref < 0.3).sum() >= 8  # both decisions are exercised
    # Threads only split the work.
    fast2, _, _ = overlap_fast(depth, K, np.stack(poses), radius=0.02, threads=2)
    np.testing.assert_array_equal(fast2, fast)


def test_points_near_a_camera_centre_are_resolved_exactly():
    # A surface 1.5 cm in front of the camera (closer than the 2 cm radius): every query lies within
    # `radius` of the other camera's centre, outside the pixel-window bound's domain (z > radius), and
    # is resolved by the KD-tree; without the exact search it counts as unmatched.
    d = np.full((H, W), 0.015, np.float32)
    poses = np.stack([np.eye(4), np.eye(4)])
    poses[1, 0, 3] = 0.001
    ref = overlap_reference([d, d], [K, K], list(poses), radius=0.02)
    fast, _, st = overlap_fast(np.stack([d, d]), K, poses, radius=0.02, query_stride=4)
    assert ref[0] == pytest.approx(1.0) and fast[0] == pytest.approx(1.0)
    assert st.kd_queries == st.queries > 0
    approx, _, _ = overlap_fast(np.stack([d, d]), K, poses, radius=0.02, query_stride=4, exact=False)
    assert approx[0] == 0.0


def test_overlap_fast_without_exact_fallback_is_biased_low():
    poses = trajectory(6)
    rng = np.random.default_rng(2)
    depth = np.stack([render_depth(T, noise=0.004, holes=0.02, rng=rng) for T in poses])
    exact, _, _ = overlap_fast(depth, K, np.stack(poses))
    approx, _, st = overlap_fast(depth, K, np.stack(poses), exact=False)
    assert st.kd_queries == 0
    assert np.all(approx <= exact + 1e-9) and (approx < exact - 0.01).any()
