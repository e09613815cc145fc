"""``pri3d prepare``: pair mining faithful to the exact KD-tree reference, geometry, output layout,
resuming, splits, the held-out time range (``--holdout``) and bad input. Scenes are rendered
analytically (the box room of ``tests/boxroom.py``); the miner's own tests against the reference are
in ``tests/geometry/test_overlap.py``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from boxroom import ROOM, H, K, W, check_faithful, render_depth, trajectory, write_scene
from pri3d.cli import main as cli_main
from pri3d.data.splits import read_split
from pri3d.errors import ConfigError, DataError
from pri3d.geometry.overlap import frame_points, overlap_fast, overlap_reference
from pri3d.geometry.voxels import pixel_voxel_correspondences
from pri3d.pairs.mine import PrepareParams, prepare
from pri3d.pairs.store import PreparedData


def _prepare_cli(data, out, *options: str) -> int:
    """``pri3d prepare --input DATA --output OUT --no-progress OPTIONS``; returns the exit code."""
    return cli_main(["prepare", "--input", str(data), "--output", str(out), "--no-progress", *options])


def test_overlap_fast_faithful_on_generator_scene(tmp_path):
    from pri3d.data.formats import open_dataset
    from pri3d.data.synth import generate
    from pri3d.pairs.mine import load_scene_frames

    generate(tmp_path / "synth", scenes=1, frames_per_scene=8, seed=3, resolution=(72, 96), progress=False)
    scene = open_dataset(tmp_path / "synth", "scannet")[0]
    frames = load_scene_frames(scene, PrepareParams())
    F = len(frames.frame_ids)
    ref = overlap_reference(list(frames.depth), [frames.K] * F, list(frames.poses), radius=0.02)
    fast, _, _ = overlap_fast(frames.depth, frames.K, frames.poses, radius=0.02, query_stride=2)
    check_faithful(fast, ref)


# --------------------------------------------------------------------------------------------------
# The command: outputs, resuming, splits, bad input
# --------------------------------------------------------------------------------------------------


@pytest.fixture()
def dataset(tmp_path):
    root = tmp_path / "data"
    poses = trajectory(6)
    write_scene(root, "scene_good", poses, surface=True)
    bad = [p.copy() for p in poses[:3]]
    for p in bad:
        p[0, 0] = -np.inf  # ScanNet's lost-tracking poses
    write_scene(root, "scene_badposes", bad)
    # One valid frame only: the others have no valid depth.
    depths = [render_depth(poses[0])] + [np.zeros((H, W), np.float32)] * 2
    write_scene(root, "scene_onevalid", poses[:3], depths=depths)
    write_scene(root, "scene_fused", trajectory(5, start=1.0), seed=5)
    return root


def test_prepare_writes_layout_and_counts_skips(dataset, tmp_path, capsys):
    out = tmp_path / "out"
    rc = _prepare_cli(dataset, out)
    assert rc == 0
    msg = capsys.readouterr().out
    assert "frames skipped" in msg and "invalid pose" in msg
    params = json.loads((out / "params.json").read_text())
    assert params["input"] == "../data" and params["format"] == "scannet" and params["radius"] == 0.02
    lines = (out / "pairs.csv").read_text().splitlines()
    assert lines[0] == "scene,frame_a,frame_b,overlap"
    rows = [line.split(",") for line in lines[1:]]
    assert rows and all(int(a) < int(b) for _, a, b, _ in rows)
    assert all(float(o) >= 0.3 and len(o.split(".")[1]) == 4 for *_, o in rows)
    assert {r[0] for r in rows} <= {"scene_good", "scene_fused"}
    assert all(int(r[1]) % 10 == 0 for r in rows)  # source frame ids, not indices
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scenes"] == 4 and summary["scenes_skipped"] == 2
    assert summary["frames"] == 11
    assert summary["pairs_tested"] == 15 + 10 and summary["pairs_kept"] == len(rows)
    assert summary["skipped_frames"]["counts"] == {"invalid pose": 3, "no valid depth": 2}
    info = json.loads((out / "scenes" / "scene_badposes" / "frames.json").read_text())
    assert info["status"] == "skipped" and "fewer than 2 valid frames" in info["reason"]

    data = PreparedData(out)
    assert data.scene_ids() == ["scene_fused", "scene_good"]
    assert data.input_path == dataset.resolve()
    assert set(data.scenes()) == {"scene_fused", "scene_good"}
    assert len(data.pairs) == len(rows)
    vg = data.voxels("scene_good")
    assert vg.source == "mesh:surface.ply" and vg.colors[0].tolist() == [200, 100, 50]
    vf = data.voxels("scene_fused")
    assert vf.source == "fused-depth" and len(vf.coords) > 100
    # Pixel-to-voxel matches on a frame's crop: nearly every valid pixel lies on the room's surface.
    scene = data.scenes()["scene_good"]
    fid = data.frame_ids("scene_good")[2]
    fr = scene.load_frame(fid, color=False, labels=False)
    coords, colors = data.frame_chunk("scene_good", fid)
    assert 0 < len(coords) < len(vg.coords) and colors.dtype == np.uint8
    pts = frame_points(fr.depth, fr.depth_intrinsics, fr.pose)
    # Points on the boxes (not in the PLY) stay unmatched; the walls/floor match.
    m = pixel_voxel_correspondences(torch.from_numpy(pts), coords, vg.origin, vg.voxel_size, 0.02)
    lo, hi = ROOM
    on_room = (np.abs(pts - lo) < 0.01).any(axis=1) | (np.abs(pts - hi) < 0.01).any(axis=1)
    assert (m[torch.from_numpy(on_room)] >= 0).float().mean() > 0.95


def test_prepare_resumes_and_refuses_other_parameters(dataset, tmp_path):
    out = tmp_path / "out"
    params = PrepareParams(geometry=False)
    s1 = prepare(dataset, out, params=params, progress=False)
    assert s1["scenes_done_before"] == 0
    pairs1 = (out / "pairs.csv").read_text()
    # Simulate an interrupted run: one scene unfinished (no frames.json), the global files stale.
    (out / "scenes" / "scene_fused" / "frames.json").unlink()
    (out / "pairs.csv").unlink()
    good_info = (out / "scenes" / "scene_good" / "frames.json").stat().st_mtime_ns
    s2 = prepare(dataset, out, params=params, progress=False)
    assert s2["scenes_done_before"] == 3
    assert (out / "scenes" / "scene_good" / "frames.json").stat().st_mtime_ns == good_info
    assert (out / "pairs.csv").read_text() == pairs1
    assert s2["pairs_kept"] == s1["pairs_kept"]
    # Another run's parameters: a clear error, unless overwrite.
    with pytest.raises(DataError, match="other parameters.*radius"):
        prepare(dataset, out, params=PrepareParams(geometry=False, radius=0.05), progress=False)
    assert _prepare_cli(dataset, out, "--radius", "0.05", "--no-geometry") == 1
    s3 = prepare(dataset, out, params=PrepareParams(geometry=False, radius=0.05), overwrite=True, progress=False)
    assert s3["scenes_done_before"] == 0
    assert json.loads((out / "params.json").read_text())["radius"] == 0.05


def test_prepare_split_file_and_official_mode(dataset, tmp_path):
    split = tmp_path / "train.txt"
    split.write_text("# training scenes\nscene_good\n")
    out = tmp_path / "out"
    s = prepare(dataset, out, params=PrepareParams(mode="official", geometry=False), split_file=split, progress=False)
    assert s["scenes"] == 1 and list(s["per_scene"]) == ["scene_good"]
    p = json.loads((out / "params.json").read_text())
    assert p["split"] == ["scene_good"] and p["official"] == {"voxel": 0.05, "radius": 0.075, "combine": "max"}
    # Values are the official definition computed exactly (5 cm voxel centroids, 7.5 cm, max).
    from pri3d.data.formats import open_dataset
    from pri3d.pairs.mine import load_scene_frames

    fr = load_scene_frames(open_dataset(dataset / "scene_good")[0], PrepareParams())
    data = PreparedData(out)
    assert len(data.pairs) == s["pairs_kept"] > 0
    for pair in data.pairs:
        a, b = fr.frame_ids.index(pair.frame_a), fr.frame_ids.index(pair.frame_b)
        want = overlap_reference(
            [fr.depth[a], fr.depth[b]],
            [fr.K] * 2,
            [fr.poses[a], fr.poses[b]],
            radius=0.075,
            voxel_size=0.05,
            combine="max",
        )[0]
        assert pair.overlap == pytest.approx(want, abs=1e-4)


def test_prepare_mismatched_depth_sizes_are_corrected_through_intrinsics(tmp_path):
    poses = trajectory(4)
    full = [render_depth(T, noise=0.0) for T in poses]
    # Frame 1's depth at half resolution, while the scene's intrinsics file describes full resolution.
    half = [d.copy() for d in full]
    K_half = K.copy()
    K_half[:2] *= 0.5
    K_half[0, 2], K_half[1, 2] = (K[0, 2] + 0.5) * 0.5 - 0.5, (K[1, 2] + 0.5) * 0.5 - 0.5
    half[1] = render_depth(poses[1], K=K_half, size=(H // 2, W // 2))
    root = tmp_path / "data"
    write_scene(root, "a_full", poses, depths=full)
    write_scene(root, "b_half", poses, depths=half)
    out = tmp_path / "out"
    prepare(root, out, params=PrepareParams(geometry=False, min_overlap=0.0), progress=False)
    data = PreparedData(out)
    ov = {}
    for p in data.pairs:
        ov.setdefault(p.scene, {})[(p.frame_a, p.frame_b)] = p.overlap
    assert set(ov["a_full"]) == set(ov["b_half"])
    for key, o in ov["a_full"].items():
        assert ov["b_half"][key] == pytest.approx(o, abs=0.06), key
    info = json.loads((out / "scenes" / "b_half" / "frames.json").read_text())
    assert info["notes"]["counts"] == {"depth intrinsics rescaled to the depth image size": 1}
    assert len(info["frame_ids"]) == 4


def test_prepare_bad_output_and_params(tmp_path, dataset):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("hello")
    with pytest.raises(DataError, match="not empty"):
        prepare(dataset, tmp_path / "junk", params=PrepareParams(geometry=False), progress=False)
    with pytest.raises(ConfigError):
        prepare(dataset, tmp_path / "o", params=PrepareParams(frame_skip=0), progress=False)


def test_prepare_holdout_writes_splits_and_pretrain_never_trains_on_held_out_frames(tmp_path):
    from boxroom import trajectory, write_scene
    from pri3d.pretrain.data import split_pairs

    root = tmp_path / "data"
    write_scene(root, "seq", trajectory(10, step=0.3))  # frames 0, 10, ..., 90; no mesh: geometry is fused
    out = tmp_path / "prep"
    assert _prepare_cli(root, out, "--holdout", "40-50", "--voxel-size", "0.1") == 0
    summary = json.loads((out / "summary.json").read_text())
    h = summary["holdout"]
    assert h["val_frames"] == 2 and h["train_frames"] + h["gap_frames"] == 8 and h["gap_frames"] >= 1
    data = PreparedData(out)
    val_split = read_split(out / "splits" / "val.txt")
    train_split = read_split(out / "splits" / "train.txt")
    assert val_split.scenes == {"seq": ((40, 50),)}
    train, val, note = split_pairs(data)  # the prepared splits are the defaults
    assert train and val and "used for neither" in note
    assert all(val_split.contains("seq", p.frame_a) and val_split.contains("seq", p.frame_b) for p in val)
    held = {40, 50}
    gap = set(range(0, 100, 10)) - held - {f for f in range(0, 100, 10) if train_split.contains("seq", f)}
    assert len(gap) == h["gap_frames"]
    for p in train:  # no training pair touches a held-out frame or a near-duplicate of one
        assert not {p.frame_a, p.frame_b} & (held | gap)
    # no mined pair (overlap >= 0.3) links a training frame and a held-out frame
    assert not any((p.frame_a in held) != (p.frame_b in held) and not {p.frame_a, p.frame_b} & gap for p in data.pairs)
    assert h["max_train_val_overlap"] == 0.0
    # the fused training geometry is made of the training frames' depth alone
    info = json.loads((out / "scenes" / "seq" / "frames.json").read_text())
    assert info["holdout"]["val_frames"] == [40, 50]
    from pri3d.data.formats import open_dataset
    from pri3d.geometry.voxels import fuse_depth
    from pri3d.pairs.mine import load_scene_frames

    params = PrepareParams(voxel_size=0.1)
    every = load_scene_frames(open_dataset(root)[0], params, want_fusion=True)
    only = load_scene_frames(open_dataset(root)[0], params, want_fusion=True, frame_ranges=train_split.scenes["seq"])
    stored = data.voxels("seq").coords
    assert np.array_equal(stored, fuse_depth(*only.fused, 0.1)[0])
    assert len(fuse_depth(*every.fused, 0.1)[0]) > len(stored)
    # a looser gap keeps more training frames and reports the largest training-held-out overlap left
    out2 = tmp_path / "prep2"
    assert _prepare_cli(root, out2, "--holdout", "40-50", "--no-geometry", "--holdout-overlap", "0.6") == 0
    h2 = json.loads((out2 / "summary.json").read_text())["holdout"]
    assert h2["train_frames"] > h["train_frames"] and 0.3 <= h2["max_train_val_overlap"] < 0.6
    # a gap that leaves no training frame is a clear error
    tight = tmp_path / "tight"
    write_scene(tight, "seq", trajectory(10, step=0.2))
    assert _prepare_cli(tight, tmp_path / "p3", "--holdout", "40-50", "--no-geometry") == 1
    with pytest.raises(ConfigError, match="holdout_overlap"):
        PrepareParams(holdout="40-50", holdout_overlap=0.1).check()
    with pytest.raises(ConfigError, match="bad frame range"):
        PrepareParams(holdout="50-40").check()
