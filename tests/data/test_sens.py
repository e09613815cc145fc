"""ScanNet .sens reader and writer."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from rgbd_fixtures import make_frames

from pri3d.data.formats import detect_format, open_dataset
from pri3d.data.formats.sens import SensScene, read_sens_header, write_sens
from pri3d.errors import DataError


@pytest.fixture
def frames():
    # ScanNet-like: colour twice the depth size, one lost-tracking (-inf) pose.
    fr = make_frames(4, color_hw=(24, 32), depth_hw=(12, 16), seed=1)
    fr[2].pose = np.full((4, 4), -np.inf)
    return fr


def test_round_trip(tmp_path, frames):
    path = tmp_path / "scene0000_00.sens"
    assert write_sens(path, frames) == 4
    with open(path, "rb") as f:
        h = read_sens_header(f, path)
    assert h["num_frames"] == 4
    assert h["color_size"] == (24, 32) and h["depth_size"] == (12, 16)
    assert h["color_compression"] == "jpeg" and h["depth_compression"] == "zlib_ushort"
    assert h["depth_shift"] == 1000.0

    scene = SensScene(path)
    assert scene.scene_id == "scene0000_00"
    assert scene.frame_ids == [0, 1, 2, 3]
    np.testing.assert_array_equal(scene.K_color, frames[0].color_intrinsics.astype(np.float32).astype(np.float64))
    np.testing.assert_array_equal(scene.K_depth, frames[0].depth_intrinsics.astype(np.float32).astype(np.float64))
    for src in reversed(frames):  # out of order: every frame is found by its own offset
        fr = scene.load_frame(src.frame_id)
        assert fr.pose.dtype == np.float64
        np.testing.assert_array_equal(fr.pose, src.pose.astype(np.float32).astype(np.float64))
        assert fr.pose_valid == (src.frame_id != 2)
        assert fr.depth.dtype == np.float32 and fr.depth.shape == (12, 16)
        np.testing.assert_array_equal(fr.depth, src.depth)  # whole millimetres: exact
        assert fr.color.shape == (24, 32, 3) and fr.color.dtype == np.uint8
        assert np.abs(fr.color.astype(int) - src.color.astype(int)).mean() < 3.0  # JPEG tolerance
    assert np.array_equal(scene.load_pose(3), frames[3].pose.astype(np.float32).astype(np.float64))


def test_png_colour_is_lossless_and_generator_input(tmp_path, frames):
    path = tmp_path / "s.sens"
    write_sens(path, (f for f in frames), color_compression="png", depth_shift=1000.0)
    scene = SensScene(path)
    for src in frames:
        np.testing.assert_array_equal(scene.load_frame(src.frame_id).color, src.color)
    only_pose = scene.load_frame(1, color=False, depth=False)
    assert only_pose.color is None and only_pose.depth is None


def test_layouts_and_surface(tmp_path, frames):
    scans = tmp_path / "scans"
    for sid in ("scene0001_00", "scene0000_00"):
        (scans / sid).mkdir(parents=True)
        write_sens(scans / sid / f"{sid}.sens", frames[:2])
    (scans / "scene0000_00" / "scene0000_00_vh_clean_2.ply").write_text("ply\n")
    # A folder of scans, one scan folder, one file.
    assert detect_format(scans) == "scannet-sens"
    scenes = open_dataset(scans)
    assert [s.scene_id for s in scenes] == ["scene0000_00", "scene0001_00"]
    assert scenes[0].surface_path.name == "scene0000_00_vh_clean_2.ply"
    assert scenes[1].surface_path is None
    assert [s.scene_id for s in open_dataset(scans / "scene0001_00")] == ["scene0001_00"]
    assert len(open_dataset(scans / "scene0000_00" / "scene0000_00.sens")[0]) == 2
    assert [s.scene_id for s in open_dataset(scans, split=["scene0001_00"])] == ["scene0001_00"]


def test_truncated_and_bad_files(tmp_path, frames):
    path = tmp_path / "s.sens"
    write_sens(path, frames)
    data = path.read_bytes()
    cut = tmp_path / "cut.sens"
    cut.write_bytes(data[:-10])
    with pytest.raises(DataError, match=r"cut\.sens.*truncated"):
        SensScene(cut)
    bad = tmp_path / "bad.sens"
    bad.write_bytes(struct.pack("<I", 3) + data[4:])
    with pytest.raises(DataError, match=r"bad\.sens.*version"):
        SensScene(bad)
    with pytest.raises(DataError, match="missing.sens"):
        SensScene(tmp_path / "missing.sens")
    scene = SensScene(path)
    with pytest.raises(DataError, match="no frame 9"):
        scene.load_frame(9)
