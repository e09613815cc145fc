"""``pri3d prepare`` on the real 7-Scenes sample (skipped when ../shared/data is absent): the
written pairs agree with the exact KD-tree reference, and the geometry is usable."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pri3d.data.formats import open_dataset
from pri3d.geometry.overlap import frame_points, overlap_reference
from pri3d.geometry.voxels import pixel_voxel_correspondences
from pri3d.pairs.mine import PrepareParams, prepare
from pri3d.pairs.store import PreparedData
from realdata import shared_data


@pytest.mark.slow
def test_prepare_7scenes_matches_exact_reference(tmp_path):
    root = shared_data("7scenes-redkitchen-150-199")
    out = tmp_path / "out"
    summary = prepare(root, out, params=PrepareParams(frame_skip=16), progress=False)
    assert summary["frames"] == 4 and summary["pairs_tested"] == 6
    data = PreparedData(out)
    assert data.format == "7scenes"
    assert not json.loads((out / "params.json").read_text())["input"].startswith("/")
    got = {(p.frame_a, p.frame_b): p.overlap for p in data.pairs}

    scene = open_dataset(root, "7scenes")[0]
    ids = scene.frame_ids[::16]
    assert ids == [150, 166, 182, 198]
    frames = [scene.load_frame(i, color=False, labels=False) for i in ids]
    ref = overlap_reference(
        [f.depth for f in frames],
        [f.depth_intrinsics for f in frames],
        [f.pose for f in frames],
        radius=0.02,
        workers=2,
    )
    pairs = list(zip(*np.triu_indices(len(ids), 1)))
    agree = 0
    for (a, b), r in zip(pairs, ref):
        key = (ids[a], ids[b])
        agree += (key in got) == (r >= 0.3)
        if key in got:
            assert got[key] == pytest.approx(r, abs=0.05), key
    assert agree / len(pairs) >= 0.97
    assert 0 < len(got) < len(pairs)  # both decisions occur on this sample

    # Geometry: fused from depth (7-Scenes has no mesh); a frame's pixels find voxels within 2 cm.
    vox = data.voxels(scene.scene_id)
    assert vox.source == "fused-depth"
    coords, _ = data.frame_chunk(scene.scene_id, 166)
    pts = frame_points(frames[1].depth, frames[1].depth_intrinsics, frames[1].pose, stride=4)
    m = pixel_voxel_correspondences(pts, coords, vox.origin, vox.voxel_size, 0.02)
    assert (m >= 0).float().mean() > 0.95
