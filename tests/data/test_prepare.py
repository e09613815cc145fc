"""``pri3d prepare``: pair mining faithful to the exact KD-tree reference, geometry, output layout,
resuming, splits and bad input. Scenes are rendered analytically here (a box room with boxes)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pri3d.cli import main as cli_main
from pri3d.data.io import write_color, write_depth, write_matrix
from pri3d.data.prepare import PrepareParams, prepare
from pri3d.data.prepared import PreparedData
from pri3d.errors import DataError
from pri3d.geometry.matching import frame_points, overlap_fast, overlap_reference
from pri3d.geometry.voxels import pixel_voxel_correspondences

H, W = 96, 128
K = np.array([[110.0, 0, 63.5], [0, 110.0, 47.5], [0, 0, 1]])
ROOM = (np.zeros(3), np.array([4.0, 3.0, 2.5]))
BOXES = [(np.array([0.5, 0.4, 0.0]), np.array([1.3, 1.0, 0.9])), (np.array([2.8, 1.8, 0.0]), np.array([3.5, 2.6, 1.6]))]


def look_pose(pos, yaw, pitch=0.0) -> np.ndarray:
    """Camera-to-world pose (OpenCV axes) at ``pos`` looking along ``yaw`` (world z up)."""
    z = np.array([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), -np.sin(pitch)])
    up = np.array([0.0, 0.0, -1.0])
    x = np.cross(up, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, z], axis=1)
    T[:3, 3] = pos
    return T


def render_depth(pose, K=K, size=(H, W), noise=0.0, holes=0.0, rng=None) -> np.ndarray:
    """Ray-cast the box room: ``(H, W)`` float32 z-depth in metres."""
    h, w = size
    v, u = np.mgrid[0:h, 0:w]
    d_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u, float)], -1).reshape(-1, 3)
    d = d_cam @ pose[:3, :3].T
    o = pose[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        lo, hi = ROOM
        t_exit = np.where(d > 0, (hi - o) / d, np.where(d < 0, (lo - o) / d, np.inf)).min(axis=1)
        t = t_exit
        for blo, bhi in BOXES:
            t1, t2 = (blo - o) / d, (bhi - o) / d
            tn = np.nanmax(np.minimum(t1, t2), axis=1)
            tf = np.nanmin(np.maximum(t1, t2), axis=1)
            hit = (tn <= tf) & (tn > 0)
            t = np.where(hit & (tn < t), tn, t)
    z = t.reshape(h, w).astype(np.float64)  # d_cam has z = 1, so t is the z-depth
    rng = rng or np.random.default_rng(0)
    if noise:
        z = z + rng.normal(0.0, noise, z.shape) * (1 + z * z)
    if holes:
        z[rng.random(z.shape) < holes] = 0
    return z.astype(np.float32)


def trajectory(n, start=0.0, step=0.35):
    return [
        look_pose(np.array([2.0 + 0.3 * np.sin(i), 1.5 + 0.2 * np.cos(i), 1.3]), start + step * i, 0.25)
        for i in range(n)
    ]


def write_scene(root, name, poses, *, K=K, depths=None, ids=None, surface=False, noise=0.003, seed=0):
    """A ScanNet exported-layout scene (colour, depth in mm, poses, intrinsics)."""
    s = root / name
    for sub in ("color", "depth", "pose", "intrinsic"):
        (s / sub).mkdir(parents=True, exist_ok=True)
    K4 = np.eye(4)
    K4[:3, :3] = K
    write_matrix(s / "intrinsic" / "intrinsic_depth.txt", K4)
    write_matrix(s / "intrinsic" / "intrinsic_color.txt", K4)
    rng = np.random.default_rng(seed)
    ids = ids or [10 * i for i in range(len(poses))]
    for k, (fid, T) in enumerate(zip(ids, poses)):
        d = depths[k] if depths is not None else render_depth(T, noise=noise, holes=0.03, rng=rng)
        write_depth(s / "depth" / f"{fid}.png", np.where(np.isfinite(d), d, 0))
        write_color(s / "color" / f"{fid}.jpg", np.full((H, W, 3), (40 * k) % 255, dtype=np.uint8))
        write_matrix(s / "pose" / f"{fid}.txt", T)
    if surface:
        _write_room_ply(s / "surface.ply")
    return s


def _write_room_ply(path):
    from plyfile import PlyData, PlyElement

    lo, hi = ROOM
    V = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])], dtype=np.float32)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = [(a, b, c) for a, b, c, d in quads] + [(a, c, d) for a, b, c, d in quads]
    vert = np.array(
        [tuple(v) + (200, 100, 50) for v in V],
        dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")],
    )
    face = np.array([(list(f),) for f in faces], dtype=[("vertex_indices", "i4", (3,))])
    PlyData([PlyElement.describe(vert, "vertex"), PlyElement.describe(face, "face")]).write(str(path))


def _check_faithful(fast, ref, thr=0.30):
    agree = np.mean((fast >= thr) == (ref >= thr))
    err = np.abs(fast - ref).max()
    assert agree >= 0.97, (agree, fast, ref)
    assert err <= 0.05, (err, fast, ref)
    return agree, err


# --------------------------------------------------------------------------------------------------
# The miner against the exact reference
# --------------------------------------------------------------------------------------------------


def test_overlap_known_answer_plane_shift():
    # Two cameras 2 m in front of a wall, the second shifted sideways by a quarter of the view.
    Kp = np.array([[100.0, 0, 63.5], [0, 100.0, 47.5], [0, 0, 1]])
    d = np.full((H, W), 2.0, np.float32)
    shift = 0.25 * W / 100.0 * 2.0 + 0.005  # a quarter of the footprint width (+5 mm: no exact ties)
    T1 = np.eye(4)
    T2 = np.eye(4)
    T2[0, 3] = shift
    ref = overlap_reference([d, d], [Kp, Kp], [T1, T2], radius=0.02)
    fast, _, _ = overlap_fast(np.stack([d, d]), Kp, np.stack([T1, T2]), radius=0.02, query_stride=2)
    # 3/4 of each view overlaps, less 5 mm, plus the 2 cm margin: 96 - 0.25 + 1 of 128 columns.
    assert ref[0] == pytest.approx(96 / W, abs=0.005)
    assert fast[0] == pytest.approx(ref[0], abs=0.01)
    # Official settings (5 cm voxels, 7.5 cm radius, max of both directions) on the same pair.
    off = overlap_reference([d, d], [Kp, Kp], [T1, T2], radius=0.075, voxel_size=0.05, combine="max")
    assert 0.75 <= off[0] <= 0.85
    # A wall 6 cm further away in the second view: no match at 2 cm, all matched at 7.5 cm.
    ref6 = overlap_reference([d, d + 0.06], [Kp, Kp], [T1, T1], radius=0.02)
    off6 = overlap_reference([d, d + 0.06], [Kp, Kp], [T1, T1], radius=0.075, voxel_size=0.05, combine="max")
    fast6, _, _ = overlap_fast(np.stack([d, d + 0.06]), Kp, np.stack([T1, T1]))
    assert ref6[0] == 0 and fast6[0] == 0 and off6[0] > 0.95


def test_overlap_fast_faithful_on_synthetic_room():
    poses = trajectory(10)
    rng = np.random.default_rng(1)
    depth = np.stack([render_depth(T, noise=0.003, holes=0.05, rng=rng) for T in poses])
    ref = overlap_reference(list(depth), [K] * 10, poses, radius=0.02)
    fast, pairs, stats = overlap_fast(depth, K, np.stack(poses), radius=0.02)
    assert len(pairs) == 45 and stats.queries > 0
    _check_faithful(fast, ref)
    assert (ref >= 0.3).sum() >= 8 and (ref < 0.3).sum() >= 8  # both decisions are exercised
    # Threads only split the work.
    fast2, _, _ = overlap_fast(depth, K, np.stack(poses), radius=0.02, threads=2)
    np.testing.assert_array_equal(fast2, fast)


def test_points_near_a_camera_centre_are_resolved_exactly():
    # A surface 1.5 cm in front of the camera (closer than the 2 cm radius): every query lies within
    # `radius` of the other camera's centre, outside the pixel-window bound's domain (z > radius), and
    # is resolved by the KD-tree; without the exact search it counts as unmatched.
    d = np.full((H, W), 0.015, np.float32)
    poses = np.stack([np.eye(4), np.eye(4)])
    poses[1, 0, 3] = 0.001
    ref = overlap_reference([d, d], [K, K], list(poses), radius=0.02)
    fast, _, st = overlap_fast(np.stack([d, d]), K, poses, radius=0.02, query_stride=4)
    assert ref[0] == pytest.approx(1.0) and fast[0] == pytest.approx(1.0)
    assert st.kd_queries == st.queries > 0
    approx, _, _ = overlap_fast(np.stack([d, d]), K, poses, radius=0.02, query_stride=4, exact=False)
    assert approx[0] == 0.0


def test_overlap_fast_without_exact_fallback_is_biased_low():
    poses = trajectory(6)
    rng = np.random.default_rng(2)
    depth = np.stack([render_depth(T, noise=0.004, holes=0.02, rng=rng) for T in poses])
    exact, _, _ = overlap_fast(depth, K, np.stack(poses))
    approx, _, st = overlap_fast(depth, K, np.stack(poses), exact=False)
    assert st.kd_queries == 0
    assert np.all(approx <= exact + 1e-9) and (approx < exact - 0.01).any()


def test_overlap_fast_faithful_on_generator_scene(tmp_path):
    from pri3d.data.formats import open_dataset
    from pri3d.data.prepare import load_scene_frames
    from pri3d.data.synth import generate

    generate(tmp_path / "synth", scenes=1, frames_per_scene=8, seed=3, resolution=(72, 96), progress=False)
    scene = open_dataset(tmp_path / "synth", "scannet")[0]
    frames = load_scene_frames(scene, PrepareParams())
    F = len(frames.frame_ids)
    ref = overlap_reference(list(frames.depth), [frames.K] * F, list(frames.poses), radius=0.02)
    fast, _, _ = overlap_fast(frames.depth, frames.K, frames.poses, radius=0.02, query_stride=2)
    _check_faithful(fast, ref)


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
    rc = cli_main(["prepare", "--input", str(dataset), "--output", str(out), "--no-progress"])
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
    rc = cli_main(
        ["prepare", "--input", str(dataset), "--output", str(out), "--radius", "0.05", "--no-progress", "--no-geometry"]
    )
    assert rc == 1
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
    from pri3d.data.prepare import load_scene_frames

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
    from pri3d.errors import ConfigError

    with pytest.raises(ConfigError):
        prepare(dataset, tmp_path / "o", params=PrepareParams(frame_skip=0), progress=False)
