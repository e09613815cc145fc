"""PreparedData reads the documented on-disk layout (hand-written here)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pri3d.errors import DataError
from pri3d.pairs.store import Pair, PreparedData


def _write(out, tmp_path):
    (out / "scenes" / "s0").mkdir(parents=True)
    (out / "geometry").mkdir()
    (out / "params.json").write_text(json.dumps({"version": 1, "input": "../data", "format": "scannet"}))
    (out / "pairs.csv").write_text("scene,frame_a,frame_b,overlap\ns0,0,25,0.5123\n")
    (out / "scenes" / "s0" / "frames.json").write_text(json.dumps({"frame_ids": [0, 25]}))
    coords = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0]], dtype=np.int32)
    np.savez(
        out / "geometry" / "s0.npz",
        coords=coords,
        origin=np.zeros(3),
        voxel_size=np.float64(0.02),
        colors=np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype=np.uint8),
        frame_ids=np.array([0, 25]),
        bbox_min=np.array([[-1.0, -1, -1], [0.1, -1, -1]]),
        bbox_max=np.array([[0.1, 0.1, 0.1], [1.0, 1, 1]]),
        source=np.array("fused-depth"),
    )


def test_prepared_data_reads_layout(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    _write(out, tmp_path)
    p = PreparedData(out)
    assert p.pairs == [Pair("s0", 0, 25, 0.5123)]
    assert p.input_path == (tmp_path / "data").resolve()
    assert p.format == "scannet"
    assert p.scene_ids() == ["s0"]
    assert p.frame_ids("s0") == [0, 25]
    v = p.voxels("s0")
    assert v.coords.dtype == np.int32 and v.voxel_size == pytest.approx(0.02) and v.source == "fused-depth"
    c, col = p.frame_chunk("s0", 0)
    assert c.tolist() == [[0, 0, 0]] and col.tolist() == [[1, 2, 3]]
    c, col = p.frame_chunk("s0", 25)
    assert c.tolist() == [[10, 0, 0]]
    with pytest.raises(DataError):
        p.frame_chunk("s0", 99)
    with pytest.raises(DataError, match="does not exist"):
        p.scenes()


def test_prepared_data_errors(tmp_path):
    with pytest.raises(DataError, match="params.json"):
        PreparedData(tmp_path)
    (tmp_path / "params.json").write_text(json.dumps({"input": ".", "format": "scannet"}))
    (tmp_path / "pairs.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="header"):
        PreparedData(tmp_path)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_a_truncated_geometry_file_is_a_data_error_naming_it(tmp_path, keep):
    """Issue 24: a truncated geometry/*.npz under mode=geo raised BadZipFile (a traceback)."""
    from pri3d.pairs.store import load_scene_voxels

    out = tmp_path / "out"
    out.mkdir()
    _write(out, tmp_path)
    npz = out / "geometry" / "s0.npz"
    data = npz.read_bytes()
    npz.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(DataError, match="s0.npz: unreadable or truncated geometry file"):
        load_scene_voxels(npz)
