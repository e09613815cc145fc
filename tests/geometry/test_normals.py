"""Normals from depth: a plane gives one normal (fronto-parallel and tilted), holes, edges and borders
are masked, orientation faces the camera; angles between vectors."""

import math

import pytest
import torch

from pri3d.geometry.camera import pixel_grid
from pri3d.geometry.normals import angle_between, normals_from_depth

H, W = 24, 32
K = torch.tensor([[30.0, 0, 15.5], [0, 30.0, 11.5], [0, 0, 1]], dtype=torch.float64)


def plane_depth(n, d0):
    """Depth of the plane ``n . X = -d0`` (camera frame, ``n`` facing the camera) seen through ``K``."""
    uv = pixel_grid(H, W, dtype=torch.float64)
    rays = torch.stack([(uv[..., 0] - K[0, 2]) / K[0, 0], (uv[..., 1] - K[1, 2]) / K[1, 1], torch.ones(H, W)], -1)
    n = torch.tensor(n, dtype=torch.float64)
    return (-d0 / (rays @ n))[None]  # (1, H, W): X = z * ray, n . X = -d0


def test_fronto_parallel_plane_gives_minus_z_everywhere_but_the_border():
    n, valid = normals_from_depth(torch.full((1, H, W), 2.0, dtype=torch.float64), K)
    assert n.shape == (1, H, W, 3) and valid.shape == (1, H, W)
    assert valid[0, 1:-1, 1:-1].all()
    assert not valid[0, 0].any() and not valid[0, -1].any() and not valid[0, :, 0].any() and not valid[0, :, -1].any()
    assert torch.allclose(n[valid], torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64), atol=1e-12)
    assert (n[~valid] == 0).all()


@pytest.mark.parametrize("step", [1, 2])
def test_tilted_plane_gives_its_one_normal(step):
    true = torch.tensor([0.3, -0.5, -0.8], dtype=torch.float64)
    true = true / true.norm()
    depth = plane_depth(true.tolist(), 2.0)
    assert (depth > 0).all()
    n, valid = normals_from_depth(depth, K, step=step, max_rel_jump=0.5)
    assert valid.sum() == (H - 2 * step) * (W - 2 * step)
    assert float(angle_between(n[valid], true.expand(int(valid.sum()), 3)).max()) < 1e-6


def test_smoothing_keeps_a_plane_and_removes_noise():
    true = torch.tensor([0.2, -0.3, -0.9], dtype=torch.float64)
    true = true / true.norm()
    depth = plane_depth(true.tolist(), 2.0)
    n, valid = normals_from_depth(depth, K, step=2, smooth=3, max_rel_jump=0.5)
    assert valid.sum() == (H - 4) * (W - 4)
    assert float(angle_between(n[valid], true.expand(int(valid.sum()), 3)).max()) < 1e-6
    noisy = depth * (
        1 + 0.01 * torch.randn(depth.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    )
    errs = []
    for smooth in (0, 3):
        m, ok = normals_from_depth(noisy, K, step=2, smooth=smooth, max_rel_jump=0.5)
        errs.append(float(angle_between(m[ok], true.expand(int(ok.sum()), 3)).median()))
    assert errs[1] < errs[0] / 3, errs


def test_orientation_faces_the_camera():
    # a ceiling seen from below (y down): its normal points down (+y) and back towards the camera (-z)
    true = torch.tensor([0.0, 0.6, -0.8], dtype=torch.float64)
    n, valid = normals_from_depth(plane_depth(true.tolist(), 1.5), K, max_rel_jump=0.5)
    assert torch.allclose(n[valid], true.expand(int(valid.sum()), 3), atol=1e-9)
    X = plane_depth(true.tolist(), 1.5)[0, 5, 5] * torch.tensor(
        [(5 - 15.5) / 30, (5 - 11.5) / 30, 1.0], dtype=torch.float64
    )
    assert float(n[0, 5, 5] @ X) < 0


def test_holes_and_depth_edges_are_masked():
    depth = torch.full((1, H, W), 2.0, dtype=torch.float64)
    depth[0, 10, 10] = 0  # a hole: itself and its 4 neighbours lose their normal
    depth[0, :, 20:] = 3.0  # a depth edge between columns 19 and 20 (50 % jump)
    n, valid = normals_from_depth(depth, K, max_rel_jump=0.1)
    for v, u in ((10, 10), (9, 10), (11, 10), (10, 9), (10, 11)):
        assert not valid[0, v, u]
    assert valid[0, 9, 9] and valid[0, 5, 15]
    assert not valid[0, 5, 19] and not valid[0, 5, 20]
    assert valid[0, 5, 18] and valid[0, 5, 21]
    # a looser threshold keeps the edge pixels (and gives them a slanted, wrong normal)
    _, loose = normals_from_depth(depth, K, max_rel_jump=0.6)
    assert loose[0, 5, 19] and loose[0, 5, 20]


def test_batched_and_dtype_follow_the_input():
    d = torch.full((3, H, W), 1.0, dtype=torch.float32)
    n, valid = normals_from_depth(d, K)
    assert n.dtype == torch.float32 and n.shape == (3, H, W, 3) and valid.sum() == 3 * (H - 2) * (W - 2)


def test_bad_arguments():
    with pytest.raises(ValueError, match="B, H, W"):
        normals_from_depth(torch.ones(H, W), K)
    with pytest.raises(ValueError, match="step"):
        normals_from_depth(torch.ones(1, H, W), K, step=0)
    with pytest.raises(ValueError, match="max_rel_jump"):
        normals_from_depth(torch.ones(1, H, W), K, max_rel_jump=0)
    with pytest.raises(ValueError, match="smooth"):
        normals_from_depth(torch.ones(1, H, W), K, smooth=-1)


def test_angle_between():
    a = torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [0, 2.0, 0], [1.0, 0, 0], [0.0, 0, 0]])
    b = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, -3.0, 0], [1.0, 1e-8, 0], [1.0, 0, 0]])
    ang = angle_between(a, b)
    assert ang[0] == 0 and math.isclose(float(ang[1]), 90.0, abs_tol=1e-5)
    assert math.isclose(float(ang[2]), 180.0, abs_tol=1e-5)
    assert 0 < float(ang[3]) < 1e-5  # atan2 keeps small angles (acos of a float32 dot would give 0)
    assert float(ang[4]) == 90.0  # a zero vector has no direction
