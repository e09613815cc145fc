"""Training correspondences (resample_depth, view_correspondences) on hand-built cameras."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pri3d.geometry.camera import scale_intrinsics
from pri3d.geometry.correspondences import (
    resample_depth,
    sample_per_group,
    sample_view_matches,
    sample_voxel_matches,
    sample_without_replacement,
    view_correspondences,
)


def _K(f, cx, cy):
    return torch.tensor([[f, 0, cx], [0, f, cy], [0, 0, 1]], dtype=torch.float64)


def _pose(t=(0.0, 0.0, 0.0)):
    T = torch.eye(4, dtype=torch.float64)
    T[:3, 3] = torch.tensor(t, dtype=torch.float64)
    return T


def test_resample_depth_identity_and_half_resolution():
    d = torch.arange(1, 8 * 6 + 1, dtype=torch.float32).reshape(1, 6, 8)
    K = _K(10.0, 3.5, 2.5)
    same = resample_depth(d, K, K, (6, 8))
    assert torch.equal(same, d)
    K2 = scale_intrinsics(K, 0.5, 0.5)
    half = resample_depth(d, K, K2, (3, 4))
    # Target pixel (u', v') has its centre at source (2u'+0.5, 2v'+0.5): nearest = (2u'+1, 2v'+1).
    assert torch.equal(half[0], d[0, 1::2, 1::2])


def test_resample_depth_other_intrinsics_and_outside_is_zero():
    d = torch.full((2, 4, 4), 2.0)
    d[1, 1, 1] = 0.0
    K_depth = _K(4.0, 1.5, 1.5)
    # Target camera with a wider field of view: its border pixels fall outside the depth image.
    K_t = _K(2.0, 3.5, 3.5)
    out = resample_depth(d, K_depth, K_t, (8, 8))
    assert out.shape == (2, 8, 8)
    assert out[0, 0, 0] == 0 and out[0, 7, 7] == 0  # outside
    assert out[0, 3, 3] == 2.0 and out[0, 4, 4] == 2.0  # centre
    # Target pixel u' samples source column floor((u' - 3.5) / 2 * 4 + 1.5 + 0.5) = 2u' - 5.
    assert out[1, 3, 3] == 0 and out[1, 3, 4] == 2.0 and out[1, 4, 3] == 2.0
    # Only target columns/rows 3 and 4 fall inside the 4x4 depth image (source 1 and 3).
    assert int((out[0] > 0).sum()) == 4 and out[1, 2, 3] == 0


def test_resample_depth_numpy_matches_torch():
    rng = np.random.default_rng(0)
    d = rng.uniform(0.5, 3.0, (2, 12, 16)).astype(np.float32)
    d[:, 3, 4] = 0.0
    K_depth = np.array([[14.0, 0, 7.5], [0, 14.0, 5.5], [0, 0, 1]])
    K_t = np.array([[9.0, 0, 4.7], [0, 9.5, 4.1], [0, 0, 1]])  # another grid, partly outside the source
    want = resample_depth(torch.from_numpy(d), torch.from_numpy(K_depth), torch.from_numpy(K_t), (9, 11)).numpy()
    got = resample_depth(d, K_depth, K_t, (9, 11))
    assert isinstance(got, np.ndarray) and got.dtype == np.float32 and np.array_equal(got, want)
    one = resample_depth(d[1], K_depth, K_t, (9, 11))  # one (Hd, Wd) map
    assert one.shape == (9, 11) and np.array_equal(one, want[1])
    assert (want == 0).any() and (want > 0).any()


def test_view_correspondences_identity():
    d = torch.full((1, 5, 7), 2.0)
    d[0, 1, 1] = 0.0
    K = _K(10.0, 3.0, 2.0)
    m = view_correspondences(d, K, _pose(), d, K, _pose())
    assert m.dtype == torch.int64 and m.shape == (5 * 7 - 1, 3)
    assert torch.equal(m[:, 1], m[:, 2])
    assert 1 * 7 + 1 not in m[:, 1].tolist()


def test_view_correspondences_translation_shifts_by_known_disparity():
    # Fronto-parallel plane at Z = 2 m; B is 0.04 m to the right of A; f = 100 -> 2 px disparity.
    h, w = 6, 10
    d = torch.full((1, h, w), 2.0)
    K = _K(100.0, 4.5, 2.5)
    m = view_correspondences(d, K, _pose(), d, K, _pose((0.04, 0, 0)))
    ua, ub = m[:, 1] % w, m[:, 2] % w
    assert torch.equal(ub, ua - 2)
    assert torch.equal(m[:, 1] // w, m[:, 2] // w)
    assert set(ua.tolist()) == set(range(2, w))  # columns 0, 1 project out of B


def test_view_correspondences_depth_test_and_behind():
    h, w = 4, 4
    K = _K(5.0, 1.5, 1.5)
    da = torch.full((1, h, w), 2.0)
    db = torch.full((1, h, w), 2.0)
    db[0, 0, :] = 2.2  # occluded/misregistered row in B: fails the 5 cm test
    m = view_correspondences(da, K, _pose(), db, K, _pose(), depth_threshold=0.05)
    assert (m[:, 2] // w).min() == 1 and m.shape[0] == (h - 1) * w
    m2 = view_correspondences(da, K, _pose(), db, K, _pose(), depth_threshold=0.25)
    assert m2.shape[0] == h * w
    # B looking backwards (rotated 180 deg about y): everything is behind it.
    T = torch.diag(torch.tensor([-1.0, 1.0, -1.0, 1.0], dtype=torch.float64))
    assert view_correspondences(da, K, _pose(), db, K, T).shape == (0, 3)


def test_view_correspondences_batched_with_different_grids():
    # A at 8x8, B at 4x4 (half resolution intrinsics): identity pose, pixel p of A -> p // 2 in B.
    K_a = _K(8.0, 3.5, 3.5)
    K_b = scale_intrinsics(K_a, 0.5, 0.5)
    da = torch.full((2, 8, 8), 1.5)
    db = torch.full((2, 4, 4), 1.5)
    da[1] = 0.0
    da[1, 2, 3] = 1.5
    m = view_correspondences(da, K_a[None].expand(2, 3, 3), _pose(), db, K_b, _pose())
    assert (m[:, 0] == 1).sum() == 1
    ua, va = m[:, 1] % 8, m[:, 1] // 8
    ub, vb = m[:, 2] % 4, m[:, 2] // 4
    # pixel centre u maps to (u + 0.5) / 2 - 0.5; nearest pixel = floor((u + 0.5) / 2) = u // 2
    assert torch.equal(ub, ua // 2) and torch.equal(vb, va // 2)
    assert m.shape[0] == 64 + 1


def test_view_correspondences_rotation_known_answer():
    # B rotated 90 deg about the optical axis... use a yaw of +90 deg and a point straight ahead of B.
    K = _K(2.0, 1.0, 1.0)
    da = torch.zeros((1, 3, 3))
    da[0, 1, 1] = 3.0  # centre pixel of A sees (0, 0, 3) in world
    c, s = 0.0, 1.0
    Tb = torch.eye(4, dtype=torch.float64)
    # B at (3, 0, 3) looking along -x (its z axis = world -x): a point (0,0,3) is 3 m ahead.
    Tb[:3, :3] = torch.tensor([[c, 0, -s], [0, 1, 0], [s, 0, c]], dtype=torch.float64)
    Tb[:3, 3] = torch.tensor([3.0, 0, 3.0], dtype=torch.float64)
    db = torch.full((1, 3, 3), 3.0)
    m = view_correspondences(da, K, _pose(), db, K, Tb)
    assert m.tolist() == [[0, 4, 4]]


def test_view_correspondences_empty():
    d = torch.zeros((1, 3, 3))
    K = _K(2.0, 1.0, 1.0)
    assert view_correspondences(d, K, _pose(), d, K, _pose()).shape == (0, 3)
    with pytest.raises(ValueError):
        view_correspondences(d[0], K, _pose(), d, K, _pose())


def test_view_correspondences_on_real_7scenes_frames():
    from pri3d.data.formats import open_dataset
    from pri3d.geometry.camera import backproject_depth
    from realdata import shared_data

    root = shared_data("7scenes-redkitchen-150-199")
    scene = open_dataset(root, "7scenes")[0]
    fa, fb = (scene.load_frame(i, color=False, labels=False) for i in (150, 160))
    # Training resolution 320x240 -> feature map 160x120 (half the input), batched (B = 2: a->b, b->a).
    Kd = torch.from_numpy(fa.depth_intrinsics)
    Kf = scale_intrinsics(Kd, 160 / 640, 120 / 480)
    d = torch.from_numpy(np.stack([fa.depth, fb.depth]))
    feat = resample_depth(d, Kd, Kf, (120, 160))
    assert feat.shape == (2, 120, 160)
    poses = torch.from_numpy(np.stack([fa.pose, fb.pose]))
    m = view_correspondences(feat, Kf, poses, feat.flip(0), Kf, poses.flip(0), depth_threshold=0.05)
    ab, ba = m[m[:, 0] == 0], m[m[:, 0] == 1]
    n_valid = int((feat[0] > 0).sum())
    assert 0.5 * n_valid < len(ab) < n_valid  # frames 10 apart overlap a lot, but not entirely
    # Matched pixels back-project to nearby world points (< 5 cm depth test + pixel quantisation).
    P = backproject_depth(feat.double(), Kf, poses).reshape(2, -1, 3)
    dist = (P[0, ab[:, 1]] - P[1, ab[:, 2]]).norm(dim=1)
    assert dist.median() < 0.02 and (dist < 0.10).float().mean() > 0.95
    # Cycle consistency: following a->b then b->a lands within a pixel of the start for most pixels.
    back = torch.full((120 * 160,), -1, dtype=torch.int64)
    back[ba[:, 1]] = ba[:, 2]
    end = back[ab[:, 2]]
    ok = end >= 0
    du = (end[ok] % 160 - ab[ok, 1] % 160).abs()
    dv = (end[ok] // 160 - ab[ok, 1] // 160).abs()
    assert ok.float().mean() > 0.9 and ((du <= 1) & (dv <= 1)).float().mean() > 0.9


def test_sampling_without_replacement():
    g = torch.Generator().manual_seed(1)
    idx = sample_without_replacement(10, 4, g)
    assert len(idx) == 4 and len(set(idx.tolist())) == 4 and idx.max() < 10
    few = sample_without_replacement(3, 1024, g)  # fewer than K: all of them, no duplicates
    assert sorted(few.tolist()) == [0, 1, 2]
    group = torch.tensor([0] * 50 + [1] * 3 + [2] * 20)
    keep = sample_per_group(group, 10, g)
    assert len(set(keep.tolist())) == len(keep)
    assert torch.bincount(group[keep]).tolist() == [10, 3, 10]
    # uniform: over many draws, every row of group 0 is picked about equally often
    hits = torch.zeros(50)
    for s in range(200):
        hits += torch.bincount(sample_per_group(group, 10, torch.Generator().manual_seed(s)), minlength=73)[:50]
    assert hits.min() > 0.5 * hits.mean() and hits.max() < 1.5 * hits.mean()


def test_the_pair_samplers_draw_at_most_k_distinct_matches_of_the_pair():
    from pri3d.geometry.voxels import pixel_voxel_correspondences, voxelize_points

    K = torch.tensor([[20.0, 0, 7.5], [0, 20.0, 5.5], [0, 0, 1]], dtype=torch.float64)
    depth = torch.full((12, 16), 2.0)
    depth[:2] = 0
    pose = torch.eye(4, dtype=torch.float64)
    pose_b = pose.clone()
    pose_b[0, 3] = 0.1
    every = view_correspondences(depth[None], K, pose, depth[None], K, pose_b)[:, 1:]
    m = sample_view_matches(depth, K, pose, depth, K, pose_b, 25, torch.Generator().manual_seed(0))
    assert m.shape == (25, 2) and len({tuple(r) for r in m.tolist()}) == 25
    assert {tuple(r) for r in m.tolist()} <= {tuple(r) for r in every.tolist()}
    assert len(sample_view_matches(depth, K, pose, depth, K, pose_b, 10**6, None)) == len(every)
    # pixel -> voxel: every sampled pixel is valid, and its voxel is the nearest one within the radius
    from pri3d.geometry.camera import backproject_depth

    pts = backproject_depth(depth.double()[None], K, pose)[0].reshape(-1, 3)
    coords, origin = voxelize_points(pts[depth.reshape(-1) > 0], 0.05)
    coords = torch.from_numpy(coords)
    mv = sample_voxel_matches(depth, K, pose, coords, origin, 0.05, 0.05, 30, torch.Generator().manual_seed(0))
    assert mv.shape == (30, 2) and bool((depth.reshape(-1)[mv[:, 0]] > 0).all())
    assert torch.equal(pixel_voxel_correspondences(pts[mv[:, 0]], coords, origin, 0.05, 0.05), mv[:, 1])
    assert sample_voxel_matches(depth, K, pose, coords[:0], origin, 0.05, 0.05, 30, None).shape == (0, 2)
