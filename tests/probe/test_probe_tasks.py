"""The three probes on hand-made frames where the answer is known.

The "backbones" here are functions of the colour image: frames are painted so that their colour encodes
the class, the depth bin or the normal, and the extractor decodes it into features. Features that encode
the answer must give (nearly) perfect scores; constant features must give the floor.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pri3d.data.scene import Frame
from pri3d.errors import DataError
from pri3d.geometry.camera import scale_intrinsics
from pri3d.geometry.normals import normals_from_depth
from pri3d.probe import FrameList, probe_depth, probe_normals, probe_semseg

H, W = 32, 48
K = np.array([[40.0, 0, 23.5], [0, 40.0, 15.5], [0, 0, 1]])
RAW_IDS = (1, 2, 5, 7)  # NYU-40 wall, floor, chair, table -> ScanNet-20 ids 0, 1, 4, 6


def frame(i, color, depth=None, label=None, K_depth=K):
    return Frame("s", i, color, depth, K.copy(), np.asarray(K_depth).copy(), np.eye(4), label=label)


def one_hot_of_red(step: int, n: int, down: int = 1):
    """Extractor: one-hot of ``red // step`` (``n`` classes), average-pooled by ``down``."""

    def extract(color):
        k = torch.from_numpy(color[..., 0].astype(np.int64) // step).clamp(0, n - 1)
        f = F.one_hot(k, n).permute(2, 0, 1).float()
        return F.avg_pool2d(f[None], down)[0] if down > 1 else f

    return extract


def constant(color):
    return torch.ones(3, H // 2, W // 2)


# ------------------------------------------------------------------------------------------ semseg


def semseg_frames(n, seed):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        v, u = np.mgrid[:H, :W]
        k = (u // 8 + 2 * (v // 8) + rng.integers(4)) % 4
        k[(u // 8) % 3 == 0] = 0  # wall is the majority class
        label = np.asarray(RAW_IDS)[k].astype(np.int32)
        label[:2, :2] = 0  # unannotated: ignored
        color = np.zeros((H, W, 3), np.uint8)
        color[..., 0] = 60 * k
        color[..., 1] = rng.integers(0, 255, (H, W))  # noise the extractor does not see
        out.append(frame(i, color, label=label))
    return FrameList(out)


def test_semseg_features_that_encode_the_class_give_100_miou():
    fit, test = semseg_frames(4, 0), semseg_frames(3, 1)
    r = probe_semseg(one_hot_of_red(60, 4), fit, test, pixels_per_frame=200)
    assert r["miou"] == pytest.approx(1.0) and r["pixel_acc"] == pytest.approx(1.0)
    assert {k for k, v in r["per_class_iou"].items() if v is not None} == {"wall", "floor", "chair", "table"}
    assert r["test_pixels"] == 3 * (H * W - 4)  # every labelled pixel, at label resolution
    assert r["fit_pixels"] == 4 * 200
    # at half resolution the predictions are upsampled: only block borders can go wrong
    r2 = probe_semseg(one_hot_of_red(60, 4, down=2), fit, test, pixels_per_frame=200)
    assert r2["miou"] > 0.9


def test_semseg_constant_features_give_the_majority_class():
    fit, test = semseg_frames(4, 0), semseg_frames(3, 1)
    r = probe_semseg(constant, fit, test, pixels_per_frame=300)
    assert r["majority"]["class"] == "wall"
    assert r["miou"] == pytest.approx(r["majority"]["miou"])
    assert r["pixel_acc"] == pytest.approx(r["majority"]["pixel_acc"])
    assert r["per_class_iou"]["floor"] == 0.0


def test_semseg_needs_labels():
    fit = semseg_frames(2, 0)
    nolabel = FrameList([frame(0, np.zeros((H, W, 3), np.uint8))])
    with pytest.raises(DataError, match="no label map"):
        probe_semseg(constant, fit, nolabel)
    unmapped = FrameList([frame(0, np.zeros((H, W, 3), np.uint8), label=np.full((H, W), 13, np.int32))])
    with pytest.raises(DataError, match="no labelled pixel"):
        probe_semseg(constant, unmapped, fit)


# ------------------------------------------------------------------------------------------- depth

EDGES = np.exp(np.linspace(np.log(0.5), np.log(8.0), 17))  # 16 log-spaced bins, ratio 1.19 < 1.25


def depth_frames(n, seed, half_depth=False):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        v, u = np.mgrid[:H, :W]
        b = (u // 4 + 3 * (v // 4) + i) % 16
        color = np.zeros((H, W, 3), np.uint8)
        color[..., 0] = 16 * b
        t = rng.uniform(0.05, 0.95, (H, W))
        depth = np.exp(np.log(EDGES[b]) * (1 - t) + np.log(EDGES[b + 1]) * t).astype(np.float32)
        Kd = K
        if half_depth:  # a depth camera at half the colour resolution (registered)
            depth, Kd = depth[::2, ::2].copy(), scale_intrinsics(K, 0.5, 0.5)
        depth[3, 3:9] = 0  # holes
        out.append(frame(i, color, depth=depth, K_depth=Kd))
    return FrameList(out)


@pytest.mark.parametrize("half_depth", [False, True])
def test_depth_features_that_encode_the_bin_give_delta1_of_1(half_depth):
    fit, test = depth_frames(4, 0, half_depth), depth_frames(3, 1, half_depth)
    r = probe_depth(one_hot_of_red(16, 16), fit, test, pixels_per_frame=400)
    assert r["delta1"] > 0.99 and r["delta1_median"] > 0.99
    assert r["abs_rel"] < 0.08
    assert r["constant"]["delta1"] < 0.3  # the floor is far below
    n_valid = sum(int((f.depth > 0).sum()) for f in test.frames)
    assert r["test_pixels"] == n_valid and r["test_frames"] == 3


def test_depth_constant_features_give_the_mean_depth_baseline():
    fit, test = depth_frames(4, 0), depth_frames(3, 1)
    r = probe_depth(constant, fit, test, pixels_per_frame=400)
    for k in ("abs_rel", "rmse", "delta1", "abs_rel_median", "rmse_median", "delta1_median"):
        assert r[k] == pytest.approx(r["constant"][k], rel=1e-5, abs=1e-6), k
    logs = np.concatenate([np.log(f.depth[f.depth > 0]) for f in fit.frames])
    assert 0.5 < r["constant"]["depth_m"] < 8.0
    assert abs(np.log(r["constant"]["depth_m"]) - logs.mean()) < 0.15  # a sample's mean of the same


def test_depth_probe_without_valid_test_depth_is_a_clear_error():
    fit = depth_frames(2, 0)
    empty = FrameList([frame(0, np.zeros((H, W, 3), np.uint8), depth=np.zeros((H, W), np.float32))], "nodepth")
    with pytest.raises(DataError, match="nodepth: no valid sensor depth"):
        probe_depth(constant, fit, empty)
    with pytest.raises(DataError, match="no valid sensor depth"):
        probe_depth(constant, empty, fit)


# ----------------------------------------------------------------------------------------- normals


def plane(n, d0=2.0):
    v, u = np.mgrid[:H, :W]
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones((H, W))], -1)
    return (-d0 / (rays @ np.asarray(n))).astype(np.float32)


def normal_frames(normals):
    out = []
    for i, n in enumerate(normals):
        n = np.asarray(n, np.float64) / np.linalg.norm(n)
        depth = plane(n)
        gt, valid = normals_from_depth(torch.from_numpy(depth).double()[None], torch.from_numpy(K), **GT)
        color = np.where(valid[0, ..., None].numpy(), (gt[0].numpy() + 1) * 127.5, 0).round().astype(np.uint8)
        out.append(frame(i, color, depth=depth))
    return FrameList(out)


def decode_normal(color):
    return torch.from_numpy(color.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)


GT = {"step": 2, "smooth": 3, "max_rel_jump": 0.5}
# one plane per frame; enough of them that every cross-validation fold sees several directions
NORMALS_FIT = [
    (0, 0, -1),
    (0.3, 0, -1),
    (0, 0.5, -1),
    (-0.4, -0.2, -1),
    (0.2, 0.6, -1),
    (-0.5, 0.3, -1),
    (0.4, -0.4, -1),
    (0.1, -0.6, -1),
    (-0.2, 0.1, -1),
]
NORMALS_TEST = [(0.1, 0.1, -1), (-0.3, 0.4, -1)]


def test_normals_features_that_encode_the_normal_give_near_zero_error():
    fit, test = normal_frames(NORMALS_FIT), normal_frames(NORMALS_TEST)
    r = probe_normals(decode_normal, fit, test, pixels_per_frame=300, **GT)
    assert r["median_deg"] < 1.0 and r["within_11_25"] == 1.0
    assert r["constant"]["median_deg"] > 5.0
    assert r["test_pixels"] == 2 * (H - 4) * (W - 4)


def test_normals_constant_features_give_the_mean_normal():
    fit, test = normal_frames(NORMALS_FIT), normal_frames(NORMALS_TEST)
    r = probe_normals(constant, fit, test, pixels_per_frame=300, **GT)
    for k in ("mean_deg", "median_deg", "within_11_25", "within_22_5", "within_30"):
        assert r[k] == pytest.approx(r["constant"][k], abs=1e-3), k
    assert r["constant"]["normal"][2] < -0.9
