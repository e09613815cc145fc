"""TUM RGB-D reader: quaternions, timestamp association, a hand-made sequence."""

from __future__ import annotations

import numpy as np
import pytest
from rgbd_fixtures import make_frames
from scipy.spatial.transform import Rotation

from pri3d.data.formats import detect_format, open_dataset
from pri3d.data.formats.tum import associate, freiburg_intrinsics, nearest, quaternion_to_matrix
from pri3d.data.io import write_color, write_depth
from pri3d.errors import DataError


def test_quaternion_to_matrix():
    np.testing.assert_allclose(quaternion_to_matrix([0, 0, 0, 1]), np.eye(3), atol=1e-15)
    s = np.sqrt(0.5)
    Rz = quaternion_to_matrix([0, 0, s, s])  # +90 degrees about z: x -> y
    np.testing.assert_allclose(Rz @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    q = np.random.default_rng(0).normal(size=(20, 4))
    R = quaternion_to_matrix(q)
    assert R.shape == (20, 3, 3)
    np.testing.assert_allclose(R, Rotation.from_quat(q).as_matrix(), atol=1e-12)  # scipy: (x, y, z, w)
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)
    np.testing.assert_allclose(quaternion_to_matrix(-q), R, atol=1e-12)
    np.testing.assert_allclose(quaternion_to_matrix(2 * q[0]), R[0], atol=1e-12)  # normalised


def test_associate_is_one_to_one_within_max_dt():
    t_rgb = np.array([0.00, 0.033, 0.066, 0.100, 0.500])
    t_depth = np.array([0.010, 0.030, 0.031, 0.110, 0.470])
    m = associate(t_rgb, t_depth, 0.02)
    # 0.00 <-> 0.010, 0.033 <-> 0.031 (the nearest), 0.066 -> none within 0.02, 0.100 <-> 0.110, 0.5 -> none
    np.testing.assert_array_equal(m, [0, 2, -1, 3, -1])
    # Two colour frames nearest to one depth: only the closer one gets it.
    np.testing.assert_array_equal(associate([1.0, 1.004], [1.003], 0.02), [-1, 0])
    np.testing.assert_array_equal(associate([1.0], [], 0.02), [-1])
    np.testing.assert_array_equal(nearest([0.0, 0.5, 2.0], [0.49, 0.01, 0.52], 0.05), [1, 0, -1])


def test_freiburg_intrinsics_by_name():
    assert freiburg_intrinsics("rgbd_dataset_freiburg1_xyz")[1] == "fr1"
    assert freiburg_intrinsics("fr3_office")[1] == "fr3"
    K, key = freiburg_intrinsics("rgbd_dataset_freiburg2_desk")
    assert key == "fr2" and K[0, 0] == 520.9 and K[1, 2] == 249.7
    assert freiburg_intrinsics("my_sequence")[1] == "default"


def _write_sequence(root, n=6, with_gt=True):
    """n colour frames at 30 Hz; depth jittered by 4 ms and missing for frame 3; ground truth at
    100 Hz starting after the first colour frame."""
    frames = make_frames(n, seed=3, color_hw=(480, 640), depth_hw=(480, 640))  # the size Freiburg K describes
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    t0 = 1305031102.175304
    rgb_lines, depth_lines = ["# color images", "# timestamp filename"], ["# depth maps"]
    for i, fr in enumerate(frames):
        t = t0 + i / 30
        write_color(root / "rgb" / f"{t:.6f}.png", fr.color)
        rgb_lines.append(f"{t:.6f} rgb/{t:.6f}.png")
        if i != 3:
            td = t + 0.004
            write_depth(root / "depth" / f"{td:.6f}.png", fr.depth, 5000.0)
            depth_lines.append(f"{td:.6f} depth/{td:.6f}.png")
    (root / "rgb.txt").write_text("\n".join(rgb_lines) + "\n")
    (root / "depth.txt").write_text("\n".join(depth_lines) + "\n")
    if with_gt:
        gt = ["# timestamp tx ty tz qx qy qz qw"]
        for k in range(5, 30):
            t = t0 + k / 100
            q = Rotation.from_rotvec([0, 0.01 * k, 0]).as_quat()
            gt.append(f"{t:.4f} {0.01 * k:.4f} 0.5 1.0 " + " ".join(f"{x:.6f}" for x in q))
        (root / "groundtruth.txt").write_text("\n".join(gt) + "\n")
    return frames, t0


def test_sequence(tmp_path):
    root = tmp_path / "rgbd_dataset_freiburg1_desk"
    frames, t0 = _write_sequence(root)
    assert detect_format(tmp_path) == "tum"
    (scene,) = open_dataset(tmp_path)
    # colour 0 has no pose within 0.02 s (gt starts at t0+0.05), colour 3 has no depth.
    assert scene.frame_ids == [0, 1, 2, 3]
    assert scene.skips.total == 2 and len(scene.skips.counts) == 2
    np.testing.assert_allclose(scene.timestamps, t0 + np.array([1, 2, 4, 5]) / 30, atol=1e-6)
    fr = scene.load_frame(2)  # colour frame 4, t0 + 0.1333: nearest gt sample is k = 13
    np.testing.assert_allclose(fr.depth, frames[4].depth, atol=1e-6)  # uint16 / 5000 metres
    np.testing.assert_array_equal(fr.color, frames[4].color)
    np.testing.assert_allclose(fr.pose[:3, 3], [0.13, 0.5, 1.0], atol=1e-9)
    np.testing.assert_allclose(fr.pose[:3, :3], Rotation.from_rotvec([0, 0.13, 0]).as_matrix(), atol=1e-5)
    assert fr.pose_valid
    assert fr.color_intrinsics[0, 0] == 517.3 and np.array_equal(fr.color_intrinsics, fr.depth_intrinsics)

    K = np.array([[400.0, 0, 319.5], [0, 400.0, 239.5], [0, 0, 1]])
    assert open_dataset(root, intrinsics=K)[0].load_frame(0).color_intrinsics[0, 0] == 400.0
    # A looser tolerance associates colour 0 with a pose too.
    assert len(open_dataset(root, max_dt=0.06)[0]) == 5


def test_missing_groundtruth_and_files(tmp_path):
    root = tmp_path / "seq"
    _write_sequence(root, n=3, with_gt=False)
    (scene,) = open_dataset(root)
    assert len(scene) == 3
    assert not scene.load_frame(0, color=False, depth=False).pose_valid
    assert any("groundtruth" in n for n in scene.notes)
    next((root / "rgb").iterdir()).unlink()
    with pytest.raises(DataError, match="file not found"):
        for fid in scene.frame_ids:
            scene.load_frame(fid)
    (root / "depth.txt").write_text("1.0\n")
    with pytest.raises(DataError, match=r"depth\.txt:1: expected 2 columns"):
        open_dataset(root)


def test_images_that_do_not_fit_the_shared_k_are_refused(tmp_path):
    """Depth is registered to colour (one K): a half-size depth or colour image is a DataError naming it."""
    import cv2

    root = tmp_path / "rgbd_dataset_freiburg1_desk"
    _write_sequence(root)
    (scene,) = open_dataset(root)
    depth_file = sorted((root / "depth").iterdir())[2]
    d = cv2.imread(str(depth_file), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(depth_file), cv2.resize(d, (320, 240), interpolation=cv2.INTER_NEAREST))
    bad = [fid for fid in scene.frame_ids if _refused(scene, fid)]
    assert len(bad) == 1
    with pytest.raises(DataError, match=rf"{depth_file.name}: the 320x240 depth image does not fit the intrinsics"):
        scene.load_frame(bad[0])
    assert scene.load_frame(bad[0], depth=False).color.shape == (480, 640, 3)


def _refused(scene, fid) -> bool:
    try:
        scene.load_frame(fid)
    except DataError:
        return True
    return False
