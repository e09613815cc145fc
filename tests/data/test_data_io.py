"""data/io.py: the small readers name the file in every error."""

from __future__ import annotations

import numpy as np
import pytest

from pri3d.data.io import check_fits, intrinsics3, read_color, read_depth, write_color
from pri3d.errors import DataError


@pytest.mark.parametrize("keep", [0.5, 0.98])
def test_a_truncated_jpeg_is_a_data_error_not_grey_rows(tmp_path, keep):
    """OpenCV decodes a cut JPEG with only a warning on stderr; read_color refuses it."""
    path = tmp_path / "frame.jpg"
    rng = np.random.default_rng(0)
    write_color(path, rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    assert read_color(path).shape == (48, 64, 3)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(DataError, match="frame.jpg: truncated JPEG"):
        read_color(path)


def test_an_empty_or_garbage_image_is_a_data_error(tmp_path):
    path = tmp_path / "frame.png"
    path.write_bytes(b"")
    with pytest.raises(DataError, match="frame.png: unreadable image"):
        read_color(path)
    path.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="frame.png: unreadable image"):
        read_color(path)


def test_depth_must_be_16_bit_and_intrinsics_finite_with_positive_focal_lengths(tmp_path):
    import cv2

    path = tmp_path / "d.png"
    cv2.imwrite(str(path), np.full((4, 6), 100, np.uint8))
    with pytest.raises(DataError, match="d.png: expected a single-channel 16-bit depth PNG, got 8-bit"):
        read_depth(path, 1000.0)
    good = np.array([[500.0, 0, 319.5], [0, 500.0, 239.5], [0, 0, 1]])
    assert intrinsics3(good, "k.txt").dtype == np.float64
    for i, j, v in [(0, 0, 0.0), (1, 1, -5.0), (0, 2, np.nan), (0, 0, np.inf)]:
        bad = good.copy()
        bad[i, j] = v
        with pytest.raises(DataError, match="k.txt: intrinsics must be finite with positive focal lengths"):
            intrinsics3(bad, "k.txt")
    check_fits(good, (480, 640), "img.png")
    with pytest.raises(DataError, match="img.png: the 320x240 image does not fit the intrinsics"):
        check_fits(good, (240, 320), "img.png")


def test_read_surface_ply_and_resize_color(tmp_path):
    from plyfile import PlyData, PlyElement

    from pri3d.data.io import read_surface_ply, resize_color

    v = np.array(
        [(0.0, 0.0, 0.0, 1, 2, 3), (1.0, 0.0, 0.0, 4, 5, 6), (0.0, 1.0, 0.0, 7, 8, 9)],
        dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")],
    )
    f = np.array([([0, 1, 2],)], dtype=[("vertex_indices", "i4", (3,))])
    PlyData([PlyElement.describe(v, "vertex"), PlyElement.describe(f, "face")]).write(str(tmp_path / "m.ply"))
    V, faces, col = read_surface_ply(tmp_path / "m.ply")
    assert V.dtype == np.float64 and faces.tolist() == [[0, 1, 2]] and col[2].tolist() == [7, 8, 9]
    (tmp_path / "bad.ply").write_text("not a ply")
    with pytest.raises(DataError, match="bad.ply: unreadable PLY"):
        read_surface_ply(tmp_path / "bad.ply")
    img = np.full((8, 12, 3), 77, np.uint8)
    assert resize_color(img, (8, 12)) is img
    assert resize_color(img, (4, 6)).shape == (4, 6, 3) and (resize_color(img, (16, 24)) == 77).all()
