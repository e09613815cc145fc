"""data/io.py: the small readers name the file in every error."""

from __future__ import annotations

import numpy as np
import pytest

from pri3d.data.io import read_color, write_color
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
