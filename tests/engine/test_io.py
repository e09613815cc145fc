"""engine.io: every atomic writer leaves the old file or the new one, never a torn one."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import torch

from pri3d.engine.io import atomic_open, atomic_save, atomic_savez, atomic_write_text, write_json


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "sub" / "a.txt"
    atomic_write_text(path, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_open(path, "w") as f:
            f.write("half of the new")
            raise RuntimeError("killed mid-write")
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.txt"]


def test_result_gets_umask_permissions_not_mkstemps(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "p.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "p.txt").stat().st_mode) == 0o644


def test_bad_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="modes"):
        with atomic_open(tmp_path / "x", "a"):
            pass


def test_write_json_converts_numpy_and_paths(tmp_path):
    obj = {"b": np.int64(3), "a": np.float32(0.5), "arr": np.arange(3), "path": tmp_path}
    write_json(tmp_path / "o.json", obj, sort_keys=True)
    text = (tmp_path / "o.json").read_text()
    assert text.endswith("\n") and text.index('"a"') < text.index('"b"')
    back = json.loads(text)
    assert back == {"a": 0.5, "arr": [0, 1, 2], "b": 3, "path": str(tmp_path)}


def test_npz_and_torch_writers_round_trip(tmp_path):
    atomic_savez(tmp_path / "g.npz", coords=np.arange(6).reshape(2, 3), w=np.ones(2, np.float32))
    with np.load(tmp_path / "g.npz") as z:
        assert z["coords"].tolist() == [[0, 1, 2], [3, 4, 5]] and z["w"].dtype == np.float32
    atomic_save({"step": 3, "t": torch.arange(4)}, tmp_path / "c.pt")
    back = torch.load(tmp_path / "c.pt")
    assert back["step"] == 3 and back["t"].tolist() == [0, 1, 2, 3]
