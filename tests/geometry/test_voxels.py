"""Voxel geometry: voxelization, mesh sampling, frustum boxes, cropping, pixel-voxel matches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from pri3d.geometry.voxels import (
    crop_voxels,
    frustum_aabb,
    pixel_voxel_correspondences,
    sample_mesh_surface,
    voxel_keys,
    voxel_keys_to_coords,
    voxelize_points,
)


def test_voxelize_points_unique_sorted_with_attrs():
    pts = np.array([[0.01, 0.01, 0.01], [0.015, 0.0, 0.019], [0.05, 0.0, 0.0], [-0.01, 0.0, 0.0]])
    coords, origin, attrs, counts = voxelize_points(
        pts, 0.02, attrs=np.array([[0.0], [2.0], [5.0], [7.0]]), return_counts=True
    )
    assert coords.dtype == np.int32 and origin.dtype == np.float64
    np.testing.assert_allclose(origin, [-0.02, 0.0, 0.0])
    assert coords.tolist() == [[0, 0, 0], [1, 0, 0], [3, 0, 0]]
    assert counts.tolist() == [1, 2, 1]
    np.testing.assert_allclose(attrs[:, 0], [7.0, 1.0, 5.0])
    keys = voxel_keys(coords)
    assert np.all(np.diff(keys) > 0)
    c2, o2 = voxelize_points(torch.tensor(pts), 0.02, origin=np.zeros(3))
    assert c2.min() == -1 and np.allclose(o2, 0)


def test_voxel_keys_round_trip_numpy_and_torch():
    c = np.array([[0, 0, 0], [-(2**20), 5, 2**20 - 1], [3, -7, 11], [2**20 - 1, -(2**20), 0]])
    keys = voxel_keys(c)
    back = voxel_keys_to_coords(keys)
    assert back.dtype == np.int64 and np.array_equal(back, c)
    tk = voxel_keys(torch.from_numpy(c))
    assert torch.equal(tk, torch.from_numpy(keys))
    assert torch.equal(voxel_keys_to_coords(tk), torch.from_numpy(c))
    with pytest.raises(ValueError):
        voxel_keys(np.array([[2**20, 0, 0]]))


def test_sample_mesh_surface_covers_big_triangles():
    V = np.array([[0, 0, 0], [2, 0, 0], [2, 1, 0], [0, 1, 0]], dtype=np.float64)
    F = np.array([[0, 1, 2], [0, 2, 3]])
    cols = np.array([[255, 0, 0], [255, 0, 0], [0, 0, 255], [0, 0, 255]], dtype=np.float64)
    pts, att = sample_mesh_surface(V, F, 0.05, vertex_attrs=cols)
    assert pts.shape[1] == 3 and att.shape == (len(pts), 3)
    assert np.abs(pts[:, 2]).max() == 0
    rng = np.random.default_rng(0)
    q = np.c_[rng.uniform(0, 2, 2000), rng.uniform(0, 1, 2000), np.zeros(2000)]
    d, _ = cKDTree(pts).query(q)
    assert d.max() <= 0.05
    # Colours interpolate linearly in y (red at y=0, blue at y=1).
    np.testing.assert_allclose(att[:, 2], 255 * pts[:, 1], atol=1e-6)
    with pytest.raises(ValueError):
        sample_mesh_surface(V, F, 0.0001, max_points=1000)
    # Chunked sampling (vertices added once by the caller) gives the same point set.
    parts = [V] + [sample_mesh_surface(V, F[i : i + 1], 0.05, include_vertices=False) for i in range(2)]
    assert sorted(map(tuple, np.round(np.concatenate(parts), 9))) == sorted(map(tuple, np.round(pts, 9)))


def test_frustum_aabb_identity_and_translated():
    K = np.array([[100.0, 0, 49.5], [0, 100.0, 39.5], [0, 0, 1]])
    lo, hi = frustum_aabb(K, np.eye(4), (80, 100), 0.5, 2.0)
    np.testing.assert_allclose(lo, [-1.0, -0.8, 0.5])
    np.testing.assert_allclose(hi, [1.0, 0.8, 2.0])
    T = np.eye(4)
    T[:3, 3] = [1, 2, 3]
    lo2, hi2 = frustum_aabb(K, T, (80, 100), 0.5, 2.0)
    np.testing.assert_allclose(lo2, lo + [1, 2, 3])
    np.testing.assert_allclose(hi2, hi + [1, 2, 3])


def test_crop_voxels_by_centre():
    coords = np.array([[0, 0, 0], [1, 0, 0], [5, 5, 5]], dtype=np.int32)
    m = crop_voxels(coords, np.zeros(3), 0.1, [0.0, 0.0, 0.0], [0.12, 0.1, 0.1])
    assert m.tolist() == [True, False, False]
    m = crop_voxels(coords, np.zeros(3), 0.1, [0.0, 0.0, 0.0], [0.16, 0.1, 0.1])
    assert m.tolist() == [True, True, False]


@pytest.mark.parametrize("radius", [0.02, 0.035])
def test_pixel_voxel_correspondences_matches_brute_force(radius):
    rng = np.random.default_rng(1)
    vs = 0.02
    coords = np.unique(rng.integers(-10, 10, size=(600, 3)), axis=0).astype(np.int32)
    origin = np.array([0.3, -0.2, 1.0])
    pts = origin + rng.uniform(-0.25, 0.25, size=(3000, 3))
    pts[0] = np.nan
    got = pixel_voxel_correspondences(torch.tensor(pts), coords, origin, vs, radius)
    centres = origin + (coords + 0.5) * vs
    d, idx = cKDTree(centres).query(np.nan_to_num(pts, nan=1e9), distance_upper_bound=radius)
    want = np.where(np.isfinite(d), idx, -1)
    assert got.dtype == torch.int64
    assert got[0] == -1
    np.testing.assert_array_equal(got.numpy(), want)
    assert (want >= 0).sum() > 100  # the test exercises real matches


def test_pixel_voxel_correspondences_empty():
    assert pixel_voxel_correspondences(np.zeros((0, 3)), np.zeros((5, 3)), np.zeros(3), 0.02).shape == (0,)
    out = pixel_voxel_correspondences(np.zeros((4, 3)), np.zeros((0, 3)), np.zeros(3), 0.02)
    assert out.tolist() == [-1] * 4


def test_fusion_samples_and_frame_boxes_of_a_flat_wall():
    from pri3d.geometry.voxels import frame_boxes, fusion_samples

    K = np.array([[20.0, 0, 7.5], [0, 20.0, 5.5], [0, 0, 1]])
    depth = np.full((12, 16), 2.0, np.float32)
    depth[0] = 0
    pose = np.eye(4)
    pose[:3, 3] = [1.0, 2.0, 3.0]
    color = np.zeros((24, 32, 3), np.uint8)
    color[..., 0] = np.arange(32)[None, :]  # red = colour column
    K_color = np.array([[40.0, 0, 15.5], [0, 40.0, 11.5], [0, 0, 1]])
    pts, col = fusion_samples(depth, K, pose, color, K_color, 2)
    assert pts.shape == (5 * 8, 3) and pts.dtype == np.float64 and col.dtype == np.uint8
    assert np.allclose(pts[:, 2], 5.0)  # z = 2 m in front of a camera at z = 3
    # the colour pixel of depth pixel u is the one on the same ray: 2u + 0.5 rounded
    u = np.tile(np.arange(0, 16, 2), 5)
    assert np.array_equal(col[:, 0], np.floor(2 * u + 0.5 + 0.5).astype(np.uint8))
    assert (fusion_samples(depth, K, pose, None, K_color, 2)[1] == 128).all()
    lo, hi = frame_boxes(depth[None], K, pose[None], crop_far=0.0)
    assert lo.shape == hi.shape == (1, 3)
    assert (pts >= lo[0] - 1e-9).all() and (pts <= hi[0] + 1e-9).all()
    lo2, hi2 = frame_boxes(depth[None], K, pose[None], crop_far=1.0)  # the far side capped: near = far = 1
    assert np.isclose(hi2[0, 2], 4.0) and np.isclose(lo2[0, 2], 4.0)


def test_voxelize_surface_and_fuse_depth():
    from pri3d.geometry.voxels import fuse_depth, voxelize_surface

    V = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    coords, origin, colors = voxelize_surface(V, np.array([[0, 1, 2]]), np.full((3, 3), 200, np.uint8), 0.1)
    assert coords.dtype == np.int32 and colors.dtype == np.uint8 and (colors == 200).all()
    assert len(coords) >= 50 and (coords[:, 2] == 0).all()  # the triangle covers its voxels, no holes
    cloud = voxelize_surface(V, None, None, 0.1)  # a point cloud: its points only, grey
    assert len(cloud[0]) == 3 and (cloud[2] == 128).all()
    pts = np.array([[0.01, 0, 0], [0.02, 0, 0], [0.5, 0, 0]])
    col = np.array([[10, 10, 10], [30, 30, 30], [0, 0, 0]])
    c1, _, cols = fuse_depth(pts, col, np.array([0, 1, 0]), 0.1)
    assert len(c1) == 2 and cols[0].tolist() == [20, 20, 20]
    c2, _, _ = fuse_depth(pts, col, np.array([0, 1, 0]), 0.1, min_views=2)  # seen by two frames
    assert c2.tolist() == [c1[0].tolist()]


def test_voxels_in_frustum():
    from pri3d.geometry.voxels import voxels_in_frustum

    K = torch.tensor([[10.0, 0, 4.5], [0, 10.0, 4.5], [0, 0, 1]], dtype=torch.float64)
    depth = torch.full((10, 10), 2.0)
    coords = torch.tensor([[0, 0, 15], [0, 0, 25], [0, 0, -5], [100, 0, 15]])  # voxel 0.1: z 1.55, 2.55, -0.45
    keep = voxels_in_frustum(coords, np.zeros(3), 0.1, K, torch.eye(4, dtype=torch.float64), depth)
    assert keep.tolist() == [True, False, False, False]
