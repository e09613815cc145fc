"""Dataset statistics (pri3d.data.info): counts, camera, depth statistics and counted skips."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rgbd_fixtures import make_frames, write_7scenes

from pri3d.data.formats.sens import write_sens
from pri3d.data.info import dataset_info, format_info, id_ranges, sample_frames, summary_line
from pri3d.data.io import write_depth, write_matrix
from realdata import shared_data


def test_sample_frames_rule():
    assert sample_frames([10], 100) == [list(range(10))]
    assert sample_frames([10], 3) == [[0, 4, 9]]  # evenly spaced, first and last included
    plan = sample_frames([100, 50, 0, 1], 30)
    assert [len(p) for p in plan] == [19, 9, 0, 1]  # proportional, at least one per non-empty scene
    assert plan[0][0] == 0 and plan[0][-1] == 99
    plan = sample_frames([5] * 10, 4)  # more scenes than budget: one middle frame of 4 scenes
    assert sum(len(p) for p in plan) == 4 and all(p in ([], [2]) for p in plan)
    with pytest.raises(ValueError):
        sample_frames([3], 0)


def test_id_ranges():
    assert id_ranges([9, 1, 2, 3, 7, 10]) == "1-3, 7, 9-10"
    assert id_ranges([]) == ""


def test_info_counts_bad_poses_and_zero_depth(tmp_path):
    frames = make_frames(6)
    seq = write_7scenes(tmp_path / "seq", frames, first_id=10)
    write_matrix(seq / "frame-000011.pose.txt", np.full((4, 4), -np.inf))  # ScanNet-style lost tracking
    nonrigid = frames[3].pose.copy()
    nonrigid[:3, :3] *= 2.0
    write_matrix(seq / "frame-000013.pose.txt", nonrigid)
    write_depth(seq / "frame-000014.depth.png", np.zeros_like(frames[4].depth))

    info = dataset_info(seq, max_frames=100, progress=False)
    json.dumps(info)  # JSON-serialisable
    assert info["format"] == "7scenes" and info["num_scenes"] == 1 and info["num_frames"] == 6
    assert info["poses"] == {
        "checked": 6,
        "invalid": 2,
        "invalid_frames": {"seq": [11, 13]},
        "scenes_without_poses": [],
    }
    assert info["all_zero_depth_frames"] == {"seq": [14]}
    assert info["skips"]["counts"] == {"invalid pose": 2, "all-zero depth": 1}
    assert info["skips"]["examples"]["invalid pose"] == ["seq:11", "seq:13"]
    (cam,) = info["cameras"]
    assert cam["color_size"] == {"width": 32, "height": 24} and cam["scenes"] == 1
    assert cam["depth_intrinsics"]["fx"] == pytest.approx(frames[0].depth_intrinsics[0, 0])
    # Depth statistics over the 5 frames with depth (the all-zero one counts as invalid pixels).
    d = np.stack([f.depth for i, f in enumerate(frames) if i != 4])
    v = d[d > 0]
    assert info["depth"]["sampled_frames"] == 6
    assert info["depth"]["min_m"] == pytest.approx(v.min()) and info["depth"]["max_m"] == pytest.approx(v.max())
    assert abs(info["depth"]["median_m"] - np.median(v)) <= 0.001
    n_pix = 6 * d[0].size
    assert info["depth"]["invalid_ratio"] == pytest.approx((n_pix - v.size) / n_pix)
    assert info["surface"] == {"scenes_with_surface": 0, "num_scenes": 1}

    text = format_info(info)
    assert "seq: 11, 13" in text and "2 invalid" in text and "seq: 14" in text
    assert "fx=" in text and "32x24" in text and "surface:   absent" in text
    assert summary_line(info) == "7scenes: 1 scenes, 6 frames, 2 invalid poses, 1 all-zero depth frames, 3 skips"

    info2 = dataset_info(seq, max_frames=2, progress=False)
    assert info2["depth"]["sampled_frames"] == 2 and info2["poses"]["invalid"] == 2


def test_info_sens_surface_and_split(tmp_path):
    for sid in ("scene0000_00", "scene0001_00"):
        (tmp_path / sid).mkdir()
        write_sens(tmp_path / sid / f"{sid}.sens", make_frames(2, color_hw=(24, 32), depth_hw=(12, 16)))
    (tmp_path / "scene0001_00" / "scene0001_00_vh_clean_2.ply").write_text("ply\n")
    info = dataset_info(tmp_path, progress=False)
    assert info["format"] == "scannet-sens" and info["num_frames"] == 4
    assert info["surface"]["scenes_with_surface"] == 1
    assert [e["surface"] is not None for e in info["scenes"]] == [False, True]
    assert info["scenes"][0]["notes"] == []
    assert info["scenes"][0]["color_size"] == {"width": 32, "height": 24}
    assert info["scenes"][0]["depth_size"] == {"width": 16, "height": 12}
    split = tmp_path / "val.txt"
    split.write_text("# val scenes\nscene0001_00\n")
    assert dataset_info(tmp_path, split=split, progress=False)["num_scenes"] == 1


def test_info_real_7scenes():
    info = dataset_info(shared_data("7scenes-redkitchen-150-199"), max_frames=10, progress=False)
    assert info["num_frames"] == 50 and info["depth"]["sampled_frames"] == 10
    (cam,) = info["cameras"]
    assert cam["color_size"] == {"width": 640, "height": 480} and cam["depth_intrinsics"]["fx"] == 585
    d = info["depth"]
    assert 0.3 < d["min_m"] < d["median_m"] < d["max_m"] < 6.0
    assert 0.02 < d["invalid_ratio"] < 0.2 and info["poses"]["invalid"] == 0
