"""Format registry behaviour across readers: detection, --format override, unknown formats, and
colour/depth images of different sizes (ScanNet layout)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rgbd_fixtures import intrinsics, make_frames, write_scannet

from pri3d.data.formats import detect_format, open_dataset, supported_formats
from pri3d.data.formats.sens import write_sens
from pri3d.errors import DataError
from pri3d.geometry.camera import color_to_depth_pixels, project_points, scale_intrinsics


def test_unknown_format_lists_supported(tmp_path):
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(DataError) as e:
        detect_format(tmp_path)
    msg = str(e.value)
    assert str(tmp_path) in msg and "unknown dataset format" in msg
    for name in supported_formats():
        assert name in msg
    assert set(supported_formats()) == {"scannet-sens", "scannet", "7scenes", "tum", "nyuv2"}
    with pytest.raises(DataError, match="unknown format 'kitti'; supported formats: scannet-sens"):
        open_dataset(tmp_path, format="kitti")
    with pytest.raises(DataError, match="no such file or directory"):
        open_dataset(tmp_path / "absent")


def test_format_override(tmp_path):
    # A ScanNet scan folder holding both the .sens and its export: autodetection takes the .sens,
    # --format scannet reads the exported frames instead.
    frames = make_frames(3)
    scan = tmp_path / "scene0000_00"
    write_scannet(scan, frames[:2])
    write_sens(scan / "scene0000_00.sens", frames)
    assert detect_format(scan) == "scannet-sens"
    assert len(open_dataset(scan)[0]) == 3
    (exported,) = open_dataset(scan, format="scannet")
    assert exported.frame_ids == [0, 1] and exported.format_name == "scannet"
    # Naming a format that does not fit gives that reader's clear error.
    with pytest.raises(DataError, match="no TUM sequence"):
        open_dataset(scan, format="tum")


def test_colour_twice_depth_size_maps_through_intrinsics(tmp_path):
    """A colour pixel and a depth pixel on the same ray map to each other via color_to_depth_pixels."""
    Hd, Wd = 30, 40
    Kd = intrinsics(Wd, Hd, f=35.0)
    Kc = scale_intrinsics(torch.from_numpy(Kd), 2.0, 2.0).numpy()
    frames = make_frames(1, color_hw=(2 * Hd, 2 * Wd), depth_hw=(Hd, Wd))
    fr = frames[0]
    fr.color_intrinsics, fr.depth_intrinsics = Kc, Kd
    fr.color[:] = 0
    fr.depth[:] = 2.0
    # A 3D point (camera frame) on the ray through depth pixel (29, 7) at 1.234 m.
    ud, vd, z = 29, 7, 1.234
    X = np.array([(ud - Kd[0, 2]) / Kd[0, 0] * z, (vd - Kd[1, 2]) / Kd[1, 1] * z, z])
    uvc, _ = project_points(torch.from_numpy(X)[None, None], torch.from_numpy(Kc))
    uc, vc = uvc[0, 0].numpy()
    # Mark it: a 2x2 white block in colour (centred on the ray), the depth value at the depth pixel.
    fr.color[int(np.floor(vc)) : int(np.floor(vc)) + 2, int(np.floor(uc)) : int(np.floor(uc)) + 2] = 255
    fr.depth[vd, ud] = z
    scene_dir = write_scannet(tmp_path / "scene0001_00", frames)

    (scene,) = open_dataset(scene_dir)
    got = scene.load_frame(0)
    assert got.color_size == (2 * Hd, 2 * Wd) and got.depth_size == (Hd, Wd)
    np.testing.assert_allclose(got.color_intrinsics, Kc, atol=1e-6)
    # Find the white block in the decoded (JPEG) colour and map its centre to depth pixels.
    ys, xs = np.nonzero(got.color.mean(axis=-1) > 128)
    uv_c = torch.tensor([[[xs.mean(), ys.mean()]]], dtype=torch.float64)
    Kc_t, Kd_t = torch.from_numpy(got.color_intrinsics)[None], torch.from_numpy(got.depth_intrinsics)[None]
    uv_d = color_to_depth_pixels(uv_c, Kc_t, Kd_t)
    u, v = uv_d[0, 0].numpy()
    np.testing.assert_allclose([u, v], [ud, vd], atol=0.3)
    assert got.depth[int(round(v)), int(round(u))] == pytest.approx(z, abs=1e-3)
