"""NYUv2 reader: a hand-made labelled .mat (HDF5, MATLAB's transposed layout), PNG exports, and
the real PNG samples."""

from __future__ import annotations

import pickle

import cv2
import h5py
import numpy as np
import pytest
import scipy.io
from rgbd_fixtures import write_nyu_png

from pri3d.data.formats import detect_format, open_dataset
from pri3d.data.formats.nyuv2 import NYU_K, png_labels_to_nyu40
from pri3d.errors import DataError
from realdata import shared_data

N, H, W = 5, 6, 8


def _arrays(seed=0):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, size=(N, H, W, 3), dtype=np.uint8)
    depth = rng.uniform(0.5, 9.0, size=(N, H, W)).astype(np.float32)
    raw = rng.integers(0, 895, size=(N, H, W)).astype(np.uint16)
    return rgb, depth, raw


def _write_mat(path, rgb, depth, raw, labels40=None):
    """The official file's layout as h5py sees it: MATLAB (H, W, 3, N) stored column-major."""
    with h5py.File(path, "w") as f:
        f["images"] = rgb.transpose(0, 3, 2, 1)  # (N, 3, W, H)
        f["depths"] = depth.transpose(0, 2, 1)  # (N, W, H)
        f["rawDepths"] = np.where(depth > 5, 0, depth).transpose(0, 2, 1)
        f["labels"] = raw.transpose(0, 2, 1)
        if labels40 is not None:
            f["labels40"] = labels40.transpose(0, 2, 1)


def test_mat_with_labels40_and_split(tmp_path):
    rgb, depth, raw = _arrays()
    lab40 = (raw % 41).astype(np.uint8)
    mat = tmp_path / "nyu_depth_v2_labeled.mat"
    _write_mat(mat, rgb, depth, raw, lab40)
    assert detect_format(mat) == "nyuv2" and detect_format(tmp_path) == "nyuv2"
    (scene,) = open_dataset(mat)
    assert scene.scene_id == "nyuv2" and scene.frame_ids == [1, 2, 3, 4, 5]
    assert scene.label_space == "nyu40" and not scene.has_poses
    fr = scene.load_frame(4)  # 1-based: array index 3
    np.testing.assert_array_equal(fr.color, rgb[3])
    np.testing.assert_array_equal(fr.depth, depth[3])
    np.testing.assert_array_equal(fr.label, lab40[3].astype(np.int32))
    assert fr.color.shape == (H, W, 3) and fr.depth.dtype == np.float32 and fr.label.dtype == np.int32
    np.testing.assert_array_equal(fr.pose, np.eye(4))
    np.testing.assert_array_equal(fr.color_intrinsics, NYU_K)
    assert NYU_K[0, 0] == 518.857901 and NYU_K[1, 2] == 253.736166
    assert any("identity" in n for n in scene.notes)
    raw_depth = open_dataset(mat, depth="raw")[0].load_frame(4).depth
    np.testing.assert_array_equal(raw_depth, np.where(depth[3] > 5, 0, depth[3]))

    # The standard split file (MATLAB v5, 1-based indices), given or found beside the .mat.
    split = tmp_path / "my_splits.mat"
    scipy.io.savemat(split, {"trainNdxs": np.array([[1], [3], [4]]), "testNdxs": np.array([[2], [5]])})
    scenes = open_dataset(mat, split_file=split)
    assert [(s.scene_id, s.frame_ids) for s in scenes] == [("nyuv2_test", [2, 5]), ("nyuv2_train", [1, 3, 4])]
    np.testing.assert_array_equal(scenes[0].load_frame(5).color, rgb[4])
    with pytest.raises(DataError, match="not in scene nyuv2_test"):
        scenes[0].load_frame(1)
    split.rename(tmp_path / "splits.mat")
    assert [s.scene_id for s in open_dataset(tmp_path, split=["nyuv2_train"])] == ["nyuv2_train"]
    # Scenes survive pickling (DataLoader workers) and reopen the file lazily.
    s2 = pickle.loads(pickle.dumps(scenes[1]))
    np.testing.assert_array_equal(s2.load_frame(3).depth, depth[2])


def test_mat_raw_labels_and_label_map(tmp_path):
    rgb, depth, raw = _arrays(1)
    mat = tmp_path / "nyu.mat"
    _write_mat(mat, rgb, depth, raw)
    (scene,) = open_dataset(mat, format="nyuv2")
    assert scene.label_space == "nyu894"
    assert any("894" in n for n in scene.notes)
    np.testing.assert_array_equal(scene.load_frame(1).label, raw[0].astype(np.int32))
    # A mapping like classMapping40.mat's mapClass: raw class k (1..894) -> NYU-40 id.
    mapclass = (np.arange(1, 895) % 40) + 1
    scipy.io.savemat(tmp_path / "classMapping40.mat", {"mapClass": mapclass[None]})
    txt = tmp_path / "map.txt"
    np.savetxt(txt, mapclass, fmt="%d")
    lut = np.concatenate([[0], mapclass])
    for m in (tmp_path / "classMapping40.mat", txt):
        (s,) = open_dataset(mat, label_map=m)
        assert s.label_space == "nyu40"
        np.testing.assert_array_equal(s.load_frame(2).label, lut[raw[1]])
    np.savetxt(txt, np.arange(10), fmt="%d")
    with pytest.raises(DataError, match=r"map\.txt: expected 894"):
        open_dataset(mat, label_map=txt)
    bad = tmp_path / "bad_splits.mat"
    scipy.io.savemat(bad, {"trainNdxs": np.array([[1], [99]]), "testNdxs": np.array([[2]])})
    with pytest.raises(DataError, match="out of range"):
        open_dataset(mat, split_file=bad)
    scipy.io.savemat(bad, {"train": np.array([[1]])})
    with pytest.raises(DataError, match="trainNdxs"):
        open_dataset(mat, split_file=bad)


def test_png_export(tmp_path):
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, size=(2, H, W, 3), dtype=np.uint8)
    depth = rng.integers(1, 40000, size=(2, H, W)).astype(np.float32) / 5000
    depth[0, 0, 0] = 0
    segm = rng.integers(0, 40, size=(2, H, W)).astype(np.uint8)
    segm[:, 0, :3] = [0, 39, 255]
    root = tmp_path / "nyu_export"
    write_nyu_png(root / "train", [433, 7], rgb, depth, segm)
    write_nyu_png(root / "test", [464], rgb[:1], depth[:1], segm[:1])
    assert detect_format(root) == "nyuv2" and detect_format(root / "train") == "nyuv2"
    scenes = open_dataset(root)
    assert [(s.scene_id, s.frame_ids) for s in scenes] == [("test", [464]), ("train", [7, 433])]
    fr = scenes[1].load_frame(433)
    np.testing.assert_array_equal(fr.color, rgb[0])
    np.testing.assert_allclose(fr.depth, depth[0], atol=1e-6)
    assert fr.depth[0, 0] == 0
    assert fr.label[0, :3].tolist() == [1, 40, 0]
    np.testing.assert_array_equal(fr.label, np.where(segm[0] == 255, 0, segm[0].astype(np.int32) + 1))
    # Out-of-range label values are an error naming the file.
    bad = segm[1].copy()
    bad[1, 1] = 50
    cv2.imwrite(str(root / "train" / "segm_gt_000007.png"), bad)
    with pytest.raises(DataError, match=r"segm_gt_000007\.png: label values \[50\]"):
        scenes[1].load_frame(7)
    with pytest.raises(DataError, match="applies to the .mat only"):
        open_dataset(root, format="nyuv2", split_file=tmp_path / "splits.mat")


def test_png_label_mapping():
    seg = np.array([[0, 1, 39, 255]], dtype=np.uint8)
    assert png_labels_to_nyu40(seg).tolist() == [[1, 2, 40, 0]]


def test_real_nyuv2_samples():
    root = shared_data("nyuv2-labeled-samples")
    (scene,) = open_dataset(root)
    assert scene.frame_ids == [433, 464]
    for fid in scene.frame_ids:
        fr = scene.load_frame(fid)
        assert fr.color.shape == (480, 640, 3) and fr.depth.shape == (480, 640) and fr.label.shape == (480, 640)
        raw_d = cv2.imread(str(root / f"depth_gt_{fid:06d}.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_allclose(fr.depth, raw_d.astype(np.float32) / 5000, rtol=1e-6)
        valid = fr.depth[fr.depth > 0]
        assert 0.2 < valid.min() and valid.max() < 10.0  # metres in an indoor room
        assert 0.1 < (fr.depth == 0).mean() < 0.6  # raw depth with holes
        seg = cv2.imread(str(root / f"segm_gt_{fid:06d}.png"), cv2.IMREAD_UNCHANGED)
        assert (seg == 255).any()
        np.testing.assert_array_equal(fr.label == 0, seg == 255)  # ignore -> 0 exactly
        np.testing.assert_array_equal(fr.label[seg != 255], seg[seg != 255].astype(np.int32) + 1)
        assert fr.label.min() >= 0 and fr.label.max() <= 40
        assert fr.pose_valid and np.array_equal(fr.pose, np.eye(4))
