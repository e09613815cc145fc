"""7-Scenes / 3DMatch reader: fixtures and the real 7-Scenes sample."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from rgbd_fixtures import make_frames, write_7scenes
from scipy.spatial import cKDTree

from pri3d.data.formats import detect_format, open_dataset
from pri3d.data.formats.sevenscenes import DEFAULT_K
from pri3d.errors import DataError
from pri3d.geometry.camera import backproject_depth
from realdata import shared_data


def test_sequence_round_trip(tmp_path):
    frames = make_frames(3)
    seq = write_7scenes(tmp_path / "seqA", frames, first_id=150)
    assert detect_format(seq) == "7scenes"
    (scene,) = open_dataset(seq)
    assert scene.scene_id == "seqA"
    assert scene.frame_ids == [150, 151, 152]
    fr = scene.load_frame(151)
    np.testing.assert_array_equal(fr.color, frames[1].color)
    np.testing.assert_array_equal(fr.depth, frames[1].depth)
    np.testing.assert_allclose(fr.pose, frames[1].pose, atol=1e-8)
    np.testing.assert_allclose(fr.color_intrinsics, frames[0].depth_intrinsics, atol=1e-6)
    np.testing.assert_array_equal(fr.color_intrinsics, fr.depth_intrinsics)


def test_invalid_depth_65535_and_jpg_colour(tmp_path):
    frames = make_frames(1)
    seq = write_7scenes(tmp_path / "s", frames, color_ext="jpg")
    d = cv2.imread(str(seq / "frame-000000.depth.png"), cv2.IMREAD_UNCHANGED)
    d[0, :5] = 65535
    cv2.imwrite(str(seq / "frame-000000.depth.png"), d)
    fr = open_dataset(seq)[0].load_frame(0)
    assert (fr.depth[0, :5] == 0).all()
    assert fr.color.shape == frames[0].color.shape


def test_dataset_layouts_and_intrinsics(tmp_path):
    # 7-Scenes root: <scene>/seq-NN/, intrinsics missing -> published K and a note.
    root = tmp_path / "7scenes"
    write_7scenes(root / "redkitchen" / "seq-01", make_frames(2), intrinsics_file=False)
    write_7scenes(root / "chess" / "seq-02", make_frames(2), intrinsics_file=False)
    scenes = open_dataset(root)
    assert [s.scene_id for s in scenes] == ["chess_seq-02", "redkitchen_seq-01"]
    np.testing.assert_array_equal(scenes[0].load_frame(0, color=False, depth=False).depth_intrinsics, DEFAULT_K)
    assert any("585" in n for n in scenes[0].notes)
    with pytest.raises(DataError, match="the 32x24 colour image does not fit the intrinsics"):
        scenes[0].load_frame(0)  # the published K describes 640x480 images, not these
    # Override when no file is present.
    K = np.array([[100.0, 0, 10], [0, 100, 8], [0, 0, 1]])
    s = open_dataset(root / "chess", format="7scenes", intrinsics=K)[0]
    np.testing.assert_array_equal(s.load_frame(0).color_intrinsics, K)
    # 3DMatch: camera-intrinsics.txt one level up.
    frames = make_frames(2)
    tdm = tmp_path / "sun3d-home"
    write_7scenes(tdm / "seq-01", frames, intrinsics_file=False)
    np.savetxt(tdm / "camera-intrinsics.txt", frames[0].depth_intrinsics)
    np.testing.assert_allclose(open_dataset(tdm)[0].load_frame(1).depth_intrinsics, frames[0].depth_intrinsics)


def test_missing_and_unreadable_files(tmp_path):
    seq = write_7scenes(tmp_path / "s", make_frames(3))
    scene = open_dataset(seq)[0]
    (seq / "frame-000001.depth.png").unlink()
    with pytest.raises(DataError, match=r"frame-000001\.depth\.png: file not found"):
        scene.load_frame(1)
    (seq / "frame-000002.pose.txt").write_text("not a pose\n")
    with pytest.raises(DataError, match=r"frame-000002\.pose\.txt"):
        scene.load_pose(2)
    (seq / "frame-000000.color.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"frame-000000\.color\.png: unreadable"):
        scene.load_frame(0)
    with pytest.raises(DataError, match="no 7-Scenes"):
        open_dataset(tmp_path / "s" / "frame-000000.color.png", format="7scenes")


def test_real_7scenes_sample():
    root = shared_data("7scenes-redkitchen-150-199")
    (scene,) = open_dataset(root)
    assert scene.frame_ids == list(range(150, 200))
    f150, f151 = scene.load_frame(150), scene.load_frame(151)
    assert f150.color.shape == (480, 640, 3) and f150.depth.shape == (480, 640)
    assert f150.depth_intrinsics[0, 0] == 585 and f150.depth_intrinsics[1, 1] == 585
    assert f150.pose_valid and f151.pose_valid
    valid150 = f150.depth > 0
    assert 0.8 < valid150.mean() < 0.99 and f150.depth[valid150].max() < 10  # metres, not millimetres

    def world_points(fr):
        d = torch.from_numpy(fr.depth)[None]
        pts = backproject_depth(d.double(), torch.from_numpy(fr.depth_intrinsics), torch.from_numpy(fr.pose))[0]
        return pts[d[0] > 0].numpy()

    p150, p151 = world_points(f150), world_points(f151)
    dist, _ = cKDTree(p151).query(p150, k=1, distance_upper_bound=0.02, workers=1)
    frac = float(np.isfinite(dist).mean())
    assert frac >= 0.8, f"only {frac:.3f} of frame 150's points lie within 2 cm of frame 151's"


# ------------------------------------------------------------- geometry checked at the reader (issue 24)


def _b7(tmp_path):
    """A 7-Scenes-like sequence at 480x640 with the published K in camera-intrinsics.txt."""
    frames = make_frames(3, color_hw=(480, 640), depth_hw=(480, 640))
    for fr in frames:
        fr.depth_intrinsics = DEFAULT_K.copy()
    return write_7scenes(tmp_path / "b7", frames)


@pytest.mark.parametrize("which", ["depth", "color"])
def test_a_half_size_image_is_a_data_error_naming_it(tmp_path, which):
    seq = _b7(tmp_path)
    f = seq / f"frame-000001.{which}.png"
    img = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(f), cv2.resize(img, (320, 240), interpolation=cv2.INTER_NEAREST))
    scene = open_dataset(seq)[0]
    scene.load_frame(0)
    with pytest.raises(DataError, match=rf"frame-000001\.{which}\.png: the 320x240 .* does not fit the intrinsics"):
        scene.load_frame(1)


def test_8_bit_depth_and_bad_intrinsics_are_data_errors(tmp_path):
    seq = _b7(tmp_path)
    f = seq / "frame-000002.depth.png"
    cv2.imwrite(str(f), (cv2.imread(str(f), cv2.IMREAD_UNCHANGED) // 20).astype(np.uint8))
    with pytest.raises(
        DataError, match=r"frame-000002\.depth\.png: expected a single-channel 16-bit depth PNG, got 8-bit"
    ):
        open_dataset(seq)[0].load_frame(2)
    for fx in ("0", "nan"):
        (seq / "camera-intrinsics.txt").write_text(f"{fx} 0 320\n0 585 240\n0 0 1\n")
        with pytest.raises(DataError, match="camera-intrinsics.txt: intrinsics must be finite with positive focal"):
            open_dataset(seq)
