import math

import numpy as np
import pytest
import torch

from pri3d.geometry import (
    backproject_depth,
    color_to_depth_pixels,
    depth_to_color_pixels,
    invert_pose,
    pixel_grid,
    pose_is_valid,
    project_points,
    scale_intrinsics,
    transform_points,
)

K = torch.tensor([[100.0, 0, 50.0], [0, 200.0, 40.0], [0, 0, 1]], dtype=torch.float64)


def rot_z(a):
    c, s = math.cos(a), math.sin(a)
    return torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=torch.float64)


def make_pose(R, t):
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = R
    T[:3, 3] = torch.tensor(t, dtype=torch.float64)
    return T


def test_pixel_grid_is_column_row():
    g = pixel_grid(2, 3)
    assert g.shape == (2, 3, 2)
    assert g[1, 2].tolist() == [2.0, 1.0]


def test_known_pixel_to_known_point():
    depth = torch.zeros(1, 80, 100, dtype=torch.float64)
    depth[0, 40, 50] = 2.0  # principal point
    depth[0, 60, 70] = 4.0
    pts = backproject_depth(depth, K)
    assert pts[0, 40, 50].tolist() == [0.0, 0.0, 2.0]
    # u=70: x = (70-50)/100*4 = 0.8 ; v=60: y = (60-40)/200*4 = 0.4
    assert torch.allclose(pts[0, 60, 70], torch.tensor([0.8, 0.4, 4.0], dtype=torch.float64))


def test_world_point_with_pose():
    T = make_pose(rot_z(math.pi / 2), [1.0, 2.0, 3.0])
    depth = torch.zeros(1, 80, 100, dtype=torch.float64)
    depth[0, 60, 70] = 4.0
    p = backproject_depth(depth, K, T)[0, 60, 70]
    # camera point (0.8, 0.4, 4) rotated 90deg about z -> (-0.4, 0.8, 4), then + t
    assert torch.allclose(p, torch.tensor([0.6, 2.8, 7.0], dtype=torch.float64))


def test_backproject_project_round_trip():
    g = torch.Generator().manual_seed(0)
    depth = torch.rand(2, 80, 100, generator=g, dtype=torch.float64) * 5 + 0.5
    T = torch.stack([make_pose(rot_z(0.3), [0.1, -0.2, 0.5]), make_pose(rot_z(-1.0), [2, 1, 0])])
    pts = backproject_depth(depth, K, T).view(2, -1, 3)
    uv, z = project_points(pts, K, T)
    grid = pixel_grid(80, 100, dtype=torch.float64).view(1, -1, 2).expand(2, -1, -1)
    assert torch.allclose(uv, grid, atol=1e-9)
    assert torch.allclose(z, depth.view(2, -1), atol=1e-12)


def test_invert_pose_and_transform():
    T = make_pose(rot_z(0.7), [1, 2, 3])
    assert torch.allclose(invert_pose(T) @ T, torch.eye(4, dtype=torch.float64), atol=1e-12)
    p = torch.tensor([[1.0, 0, 0]], dtype=torch.float64)
    q = transform_points(p, T)
    assert torch.allclose(transform_points(q, invert_pose(T)), p, atol=1e-12)


def test_behind_camera_has_negative_depth():
    uv, z = project_points(torch.tensor([[[0.0, 0.0, -1.0]]], dtype=torch.float64), K)
    assert z.item() < 0


def test_scale_intrinsics_keeps_rays():
    # Halving a 100x80 image: pixel centre (u+0.5)/2-0.5 keeps the ray.
    K2 = scale_intrinsics(K, 0.5, 0.5)
    assert K2[0, 0] == 50 and K2[1, 1] == 100
    assert K2[0, 2] == pytest.approx((50 + 0.5) * 0.5 - 0.5)
    # the ray through original pixel (u, v) equals the ray through (u+.5)s-.5 in the half-size image
    u = 70.0
    x1 = (u - K[0, 2]) / K[0, 0]
    u2 = (u + 0.5) * 0.5 - 0.5
    x2 = (u2 - K2[0, 2]) / K2[0, 0]
    assert x1 == pytest.approx(float(x2))
    assert torch.equal(K, torch.tensor([[100.0, 0, 50.0], [0, 200.0, 40.0], [0, 0, 1]], dtype=torch.float64))
    # numpy in, numpy out, the same values; the input is not modified
    Kn = K.numpy().copy()
    K2n = scale_intrinsics(Kn, 0.5, 0.25)
    assert isinstance(K2n, np.ndarray) and np.array_equal(K2n, scale_intrinsics(K, 0.5, 0.25).numpy())
    assert np.array_equal(Kn, K.numpy())


def test_color_depth_mapping_round_trip():
    Kc = torch.tensor([[[1170.0, 0, 647.0], [0, 1170.0, 483.0], [0, 0, 1]]], dtype=torch.float64)
    Kd = torch.tensor([[[577.0, 0, 319.5], [0, 577.0, 239.5], [0, 0, 1]]], dtype=torch.float64)
    uv_c = torch.tensor([[[647.0, 483.0], [1000.0, 100.0]]], dtype=torch.float64)
    uv_d = color_to_depth_pixels(uv_c, Kc, Kd)
    assert torch.allclose(uv_d[0, 0], torch.tensor([319.5, 239.5], dtype=torch.float64))
    assert torch.allclose(uv_d[0, 1, 0], torch.tensor(319.5 + (1000 - 647) / 1170 * 577, dtype=torch.float64))
    assert torch.allclose(depth_to_color_pixels(uv_d, Kd, Kc), uv_c)


@pytest.mark.parametrize(
    "bad",
    [
        torch.full((4, 4), -float("inf"), dtype=torch.float64),
        torch.diag(torch.tensor([2.0, 1, 1, 1], dtype=torch.float64)),  # scale
        torch.diag(torch.tensor([-1.0, 1, 1, 1], dtype=torch.float64)),  # reflection
        torch.zeros(4, 4, dtype=torch.float64),
    ],
)
def test_pose_validity(bad):
    assert pose_is_valid(make_pose(rot_z(0.2), [1, 2, 3]))
    assert not pose_is_valid(bad)
