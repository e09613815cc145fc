"""The synthetic generator: layout, geometry/label agreement, determinism, resume and bad input.

One tiny dataset (2 scenes x 4 frames at 60x80) is generated per module and shared.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from plyfile import PlyData
from scipy.spatial import cKDTree

from pri3d.cli import main
from pri3d.data.formats import detect_format, open_dataset, read_split_file
from pri3d.data.synth import CLASSES, SCANNET20_IDS, generate, parse_resolution, split_scene_ids
from pri3d.data.synth.render import RenderParams, compile_scene, render_frame
from pri3d.data.synth.scene import ROOM_TYPES, build_scene, obb_overlap, scene_rng
from pri3d.data.synth.trajectory import camera_poses, intrinsics
from pri3d.errors import ConfigError, DataError
from pri3d.geometry.camera import backproject_depth, pose_is_valid

SEED = 7
N_SCENES, N_FRAMES, RES = 2, 4, (60, 80)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "ds"
    generate(out, scenes=N_SCENES, frames_per_scene=N_FRAMES, seed=SEED, resolution=RES, workers=1, progress=False)
    return out


# ----------------------------------------------------------------------------- mesh helpers


def read_mesh(path: Path):
    ply = PlyData.read(str(path))
    v = ply["vertex"].data
    V = np.stack([v["x"], v["y"], v["z"]], 1).astype(np.float64)
    F = np.stack(ply["face"].data["vertex_indices"]).astype(np.int64)
    return V, F, np.asarray(v["label"]), np.asarray(v["instance"]), ply


def _closest_on_triangles(p, a, b, c):
    """Distances from points ``p`` (N, 3) to triangles (a, b, c) (N, 3) each (Ericson, vectorised)."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(1), (ac * ap).sum(1)
    bp = p - b
    d3, d4 = (ab * bp).sum(1), (ac * bp).sum(1)
    cp = p - c
    d5, d6 = (ab * cp).sum(1), (ac * cp).sum(1)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    denom = np.where(np.abs(va + vb + vc) < 1e-18, 1e-18, va + vb + vc)
    v = vb / denom
    w = vc / denom
    q = a + ab * v[:, None] + ac * w[:, None]  # interior by default
    with np.errstate(divide="ignore", invalid="ignore"):
        cases = [
            ((d1 <= 0) & (d2 <= 0), a),
            ((d3 >= 0) & (d4 <= d3), b),
            ((d6 >= 0) & (d5 <= d6), c),
            ((vc <= 0) & (d1 >= 0) & (d3 <= 0), a + ab * np.nan_to_num(d1 / (d1 - d3))[:, None]),
            ((vb <= 0) & (d2 >= 0) & (d6 <= 0), a + ac * np.nan_to_num(d2 / (d2 - d6))[:, None]),
            (
                (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0),
                b + (c - b) * np.nan_to_num((d4 - d3) / ((d4 - d3) + (d5 - d6)))[:, None],
            ),
        ]
    done = np.zeros(len(p), bool)
    out = q.copy()
    for m, pt in cases:
        m = m & ~done
        out[m] = pt[m]
        done |= m
    return np.linalg.norm(p - out, axis=1)


def mesh_distance(V, F, p, *, face_instance=None, instance=None, spacing=0.025, k=32):
    """Exact distances from points ``p`` ``(N, 3)`` to a triangle mesh (and, given per-face and
    per-point instance ids, to the triangles of each point's own instance; inf when none is near).

    Only triangles near the points are used; their candidates come from a KD-tree of samples laid
    on a regular barycentric grid, so every point of a triangle is within about ``spacing`` of one
    of its own samples, even where thin parts stack several faces.
    """
    a, b, c = V[F[:, 0]], V[F[:, 1]], V[F[:, 2]]
    centroid = (a + b + c) / 3
    radius = np.maximum.reduce([np.linalg.norm(x - centroid, axis=1) for x in (a, b, c)])
    near = cKDTree(p).query(centroid, distance_upper_bound=float(radius.max()) + 0.05)[0] <= radius + 0.05
    sel_f = np.nonzero(near)[0]
    a, b, c = a[sel_f], b[sel_f], c[sel_f]
    edge = np.maximum.reduce(
        [np.linalg.norm(b - a, axis=1), np.linalg.norm(c - b, axis=1), np.linalg.norm(a - c, axis=1)]
    )
    m_all = np.maximum(1, np.ceil(edge / spacing)).astype(np.int64)
    pts, tri = [], []
    for m in np.unique(m_all):
        sel = np.nonzero(m_all == m)[0]
        i, j = np.meshgrid(np.arange(m + 1), np.arange(m + 1), indexing="ij")
        keep = i + j <= m
        u, v = i[keep] / m, j[keep] / m
        P = a[sel, None] + (b[sel] - a[sel])[:, None] * u[None, :, None] + (c[sel] - a[sel])[:, None] * v[None, :, None]
        pts.append(P.reshape(-1, 3))
        tri.append(np.repeat(sel, len(u)))
    tri, pts = np.concatenate(tri), np.concatenate(pts)

    def nearest(q, tri_q, pts_q):
        _, idx = cKDTree(pts_q).query(q, k=min(k, len(pts_q)))
        idx = idx.reshape(len(q), -1)
        best = np.full(len(q), np.inf)
        for t in tri_q[idx].T:
            best = np.minimum(best, _closest_on_triangles(q, a[t], b[t], c[t]))
        return best

    best = nearest(p, tri, pts)
    if instance is None:
        return best
    own = np.full(len(p), np.inf)
    sample_inst = face_instance[sel_f[tri]]
    for k_id in np.unique(instance):  # each point against its own instance's triangles only
        q, s_ = instance == k_id, sample_inst == k_id
        if s_.any():
            own[q] = nearest(p[q], tri[s_], pts[s_])
    return best, own


def backproject(depth: np.ndarray, K: np.ndarray, pose: np.ndarray) -> np.ndarray:
    pts = backproject_depth(
        torch.from_numpy(depth[None].astype(np.float64)), torch.from_numpy(K), torch.from_numpy(pose)
    )
    return pts[0].numpy()


def sensor_sigma(z):
    a, b, _ = RenderParams().depth_sigma
    return a + b * (z - 0.4) ** 2


# ----------------------------------------------------------------------------- the written dataset


def test_layout_and_reader(dataset):
    meta = json.loads((dataset / "meta.json").read_text())
    assert meta["generator"] == "pri3d-synth" and meta["seed"] == SEED
    assert meta["resolution"] == list(RES) and meta["frames_per_scene"] == N_FRAMES
    assert meta["scenes"] == ["scene0000_00", "scene0001_00"]
    assert {int(k) for k in meta["classes"]} >= set(SCANNET20_IDS)
    assert read_split_file(dataset / "splits" / "train.txt") == ["scene0000_00"]
    assert read_split_file(dataset / "splits" / "val.txt") == ["scene0001_00"]
    assert not list(dataset.glob(".tmp-*"))

    assert detect_format(dataset) == "scannet"
    scenes = open_dataset(dataset)
    assert [s.scene_id for s in scenes] == meta["scenes"]
    for s in scenes:
        assert s.frame_ids == list(range(N_FRAMES))
        assert s.surface_path is not None and s.surface_path.name == "surface.ply"
        smeta = json.loads((s.root / "meta.json").read_text())
        assert smeta["seed"] == SEED and smeta["version"] == meta["version"]
        inst_ids = {o["id"] for o in smeta["objects"]}
        fr = s.load_frame(1)
        assert fr.color.shape == (*RES, 3) and fr.color.dtype == np.uint8
        assert fr.depth.shape == RES and fr.depth.dtype == np.float32
        valid = fr.depth > 0
        assert 0.5 < valid.mean() <= 1.0
        assert fr.depth[valid].min() >= 0.3 and fr.depth[valid].max() <= 6.0
        # millimetre quantisation at the file boundary
        assert np.allclose(fr.depth * 1000, np.round(fr.depth * 1000), atol=1e-3)
        assert set(np.unique(fr.label)) <= set(CLASSES)
        assert set(np.unique(fr.instance)) <= inst_ids
        assert pose_is_valid(fr.pose)
        np.testing.assert_allclose(fr.color_intrinsics, intrinsics(*RES))
        np.testing.assert_allclose(fr.depth_intrinsics, fr.color_intrinsics)
        # each instance carries one class, the one in meta.json
        cls = {o["id"]: o["class_id"] for o in smeta["objects"]}
        for k in np.unique(fr.instance):
            assert set(np.unique(fr.label[fr.instance == k])) == {cls[int(k)]}


def test_ply_format(dataset):
    V, F, lab, inst, ply = read_mesh(dataset / "scene0000_00" / "surface.ply")
    assert ply.text is False
    names = [p.name for p in ply["vertex"].properties]
    assert names == ["x", "y", "z", "red", "green", "blue", "label", "instance"]
    assert ply["vertex"].data["x"].dtype == np.float32
    assert ply["vertex"].data["label"].dtype == np.uint16 and ply["vertex"].data["instance"].dtype == np.uint16
    assert F.shape[1] == 3 and F.min() >= 0 and F.max() < len(V)
    smeta = json.loads((dataset / "scene0000_00" / "meta.json").read_text())
    assert set(np.unique(inst)) == {o["id"] for o in smeta["objects"]}
    assert set(np.unique(lab)) <= set(CLASSES)
    Lx, Ly, Lz = smeta["room_size"]
    assert V.min(0) == pytest.approx([0, 0, 0], abs=1e-4)
    assert V.max(0) == pytest.approx([Lx, Ly, Lz], abs=1e-4)


def test_depth_and_labels_lie_on_the_mesh(dataset):
    """Back-projected valid depth is within the sensor noise of the PLY surface, and the pixels of
    each instance back-project onto that instance's own triangles."""
    for s in open_dataset(dataset):
        V, F, _, inst_v, _ = read_mesh(s.surface_path)
        for fid in s.frame_ids:
            fr = s.load_frame(fid)
            valid = fr.depth > 0
            pts = backproject(fr.depth, fr.depth_intrinsics, fr.pose)[valid]
            z = fr.depth[valid]
            inst = fr.instance[valid]
            d, d_own = mesh_distance(V, F, pts, face_instance=inst_v[F[:, 0]], instance=inst)
            tol = 1.2 * 4 * sensor_sigma(z) + 0.003
            assert np.mean(d <= tol) > 0.99, f"{s.scene_id} frame {fid}: depth off the mesh"
            assert np.median(d) < 0.01
            for k in np.unique(inst):
                sel = inst == k
                if sel.sum() >= 5:
                    frac = np.mean(d_own[sel] <= tol[sel])
                    assert frac > 0.97, f"{s.scene_id} frame {fid}: instance {k} pixels off its surface ({frac:.3f})"


@pytest.mark.parametrize("index", [1, 3, 5])  # living room, bathroom (cylinders, basins), studio
def test_clean_render_matches_mesh_exactly(index, tmp_path):
    """Without sensor noise every pixel's depth is on the mesh (to mm quantisation and the polygonal
    approximation of cylinders), on the triangles of the pixel's own instance."""
    from pri3d.data.synth.writer import write_surface_ply

    spec = build_scene(SEED, index)
    cs = compile_scene(spec)
    poses = camera_poses(spec, 40)
    K = intrinsics(48, 64)
    write_surface_ply(spec, tmp_path / "s.ply")
    V, F, _, inst_v, _ = read_mesh(tmp_path / "s.ply")
    params = RenderParams(noise=False, min_depth=0.0, max_depth=100.0)
    for f in (0, 17, 39):
        fr = render_frame(cs, poses[f], K, 48, 64, np.random.default_rng(0), params)
        assert (fr.depth > 0).all()
        pts = backproject(fr.depth, K, poses[f]).reshape(-1, 3)
        d, d_own = mesh_distance(V, F, pts, face_instance=inst_v[F[:, 0]], instance=fr.instance.reshape(-1))
        assert d.max() < 0.002, np.quantile(d, [0.5, 0.99, 1.0])
        assert d_own.max() < 0.002


def test_same_seed_same_bytes_any_worker_count(dataset, tmp_path):
    out = tmp_path / "again"
    summary = generate(
        out, scenes=N_SCENES, frames_per_scene=N_FRAMES, seed=SEED, resolution=RES, workers=2, progress=False
    )
    assert summary["generated"] == N_SCENES and summary["frames_written"] == N_SCENES * N_FRAMES
    files_a = sorted(p.relative_to(dataset) for p in dataset.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (dataset / rel).read_bytes() == (out / rel).read_bytes(), rel
    # a different seed gives different scenes
    other = tmp_path / "other"
    generate(other, scenes=1, frames_per_scene=1, seed=SEED + 1, resolution=RES, progress=False)
    assert (other / "scene0000_00/color/0.jpg").read_bytes() != (dataset / "scene0000_00/color/0.jpg").read_bytes()


def test_rerun_keeps_finished_and_redoes_unfinished(dataset, tmp_path):
    out = tmp_path / "resume"
    generate(out, scenes=2, frames_per_scene=N_FRAMES, seed=SEED, resolution=RES, progress=False)
    done = out / "scene0000_00"
    stamp = (done / "color" / "0.jpg").stat().st_mtime_ns
    # simulate a run killed while writing scene 1: its temp dir is half written, no final dir
    (out / "scene0001_00").rename(out / ".tmp-scene0001_00")
    (out / ".tmp-scene0001_00" / "meta.json").unlink()
    (out / ".tmp-scene0001_00" / "color" / "3.jpg").write_bytes(b"garbage")
    assert [s.scene_id for s in open_dataset(out)] == ["scene0000_00"]  # readers skip unfinished scenes
    summary = generate(out, scenes=3, frames_per_scene=N_FRAMES, seed=SEED, resolution=RES, progress=False)
    assert summary["kept"] == 1 and summary["generated"] == 2
    assert (done / "color" / "0.jpg").stat().st_mtime_ns == stamp
    assert not list(out.glob(".tmp-*"))
    for rel in ("scene0001_00/color/3.jpg", "scene0001_00/surface.ply", "scene0001_00/depth/2.png"):
        assert (out / rel).read_bytes() == (dataset / rel).read_bytes()
    assert read_split_file(out / "splits" / "val.txt") == ["scene0002_00"]
    # other settings into the same folder: refused before any work
    with pytest.raises(DataError, match="different settings"):
        generate(out, scenes=3, frames_per_scene=N_FRAMES, seed=SEED + 1, resolution=RES, progress=False)
    with pytest.raises(DataError, match="frames_per_scene"):
        generate(out, scenes=3, frames_per_scene=N_FRAMES + 1, seed=SEED, resolution=RES, progress=False)


def test_preview(tmp_path):
    import cv2

    summary = generate(
        tmp_path / "p", scenes=1, frames_per_scene=2, seed=1, resolution=(32, 48), preview=True, progress=False
    )
    img = cv2.imread(summary["preview"])
    assert img.shape == (2 * 32, 3 * 48, 3)
    assert img.std() > 5


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "args, message",
    [
        (["--frames-per-scene", "0"], "frames_per_scene must be"),
        (["--scenes", "0"], "scenes must be"),
        (["--resolution=-240x320"], "resolution"),
        (["--resolution", "240by320"], "HEIGHTxWIDTH"),
        (["--resolution", "8x8"], "between"),
        (["--workers", "0"], "workers must be"),
        (["--seed", "-1"], "seed must be"),
    ],
)
def test_cli_rejects_impossible_parameters(tmp_path, capsys, args, message):
    out = tmp_path / "never"
    base = {"--out": str(out), "--scenes": "1", "--frames-per-scene": "2", "--resolution": "32x32"}
    argv = ["synth"]
    for k, v in base.items():
        if not any(a == k or a.startswith(k + "=") for a in args):
            argv += [k, v]
    rc = main(argv + args)
    err = capsys.readouterr().err
    assert rc == 1 and message in err and "error" in err
    assert not out.exists()  # nothing was started


def test_unwritable_output(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DataError, match="not a directory|not writable"):
        generate(blocker, scenes=1, frames_per_scene=1, seed=0, progress=False)
    assert main(["synth", "--out", str(blocker / "sub"), "--scenes", "1", "--frames-per-scene", "1"]) == 1
    assert "not writable" in capsys.readouterr().err
    foreign = tmp_path / "foreign"
    (foreign / "scene0000_00").mkdir(parents=True)
    with pytest.raises(DataError, match="not a finished"):
        generate(foreign, scenes=1, frames_per_scene=1, seed=0, progress=False)


def test_parse_resolution_and_splits():
    assert parse_resolution("240x320") == (240, 320)
    assert parse_resolution((60, 80)) == (60, 80)
    with pytest.raises(ConfigError):
        parse_resolution("-240x320")
    assert split_scene_ids(["a"]) == (["a"], ["a"])
    assert split_scene_ids(list("abcdefghij")) == (list("abcdefgh"), ["i", "j"])
    assert split_scene_ids(["a", "b"]) == (["a"], ["b"])


# ----------------------------------------------------------------------------- layouts and cameras


def _support_ok(o, spec, by_id) -> bool:
    lo_z = o.center[2] - o.size[2] / 2
    hi_z = o.center[2] + o.size[2] / 2
    Lx, Ly, Lz = spec.size
    if o.support == "floor":
        return abs(lo_z) < 1e-6
    if o.support == "ceiling":
        return abs(hi_z - Lz) < 1e-6
    if o.support == "wall":
        c, s = math.cos(o.yaw), math.sin(o.yaw)
        back = o.center[:2] - o.size[1] / 2 * np.array([-s, c])  # local -y face centre
        return min(back[0], Lx - back[0], back[1], Ly - back[1]) < 1e-6
    if o.support.startswith("on:"):
        base = by_id[int(o.support[3:])]
        return abs(lo_z - (base.center[2] + base.size[2] / 2)) < 1e-6
    return False


@pytest.mark.parametrize("seed", [0, 1])
def test_layouts_are_plausible(seed):
    seen = set()
    for index in range(len(ROOM_TYPES)):
        spec = build_scene(seed, index)
        Lx, Ly, Lz = spec.size
        assert 3.0 <= Lx <= 7.0 and 3.0 <= Ly <= 7.0 and 2.5 <= Lz <= 3.0
        objs = [o for o in spec.objects if o.support != "room"]
        by_id = {o.instance: o for o in spec.objects}
        assert len({o.instance for o in spec.objects}) == len(spec.objects)
        for i, a in enumerate(objs):
            seen.add(a.label)
            assert _support_ok(a, spec, by_id), (spec.room_type, a.name, a.support)
            for p in a.prims:  # every part lies inside the room and inside the object's box
                lo, hi = p.aabb()
                assert (lo >= -1e-6).all() and (hi <= spec.size + 1e-6).all()
            for b in objs[i + 1 :]:
                assert not obb_overlap((a.center, a.size, a.yaw), (b.center, b.size, b.yaw)), (a.name, b.name)
        # the camera walks through free space
        poses = camera_poses(spec, 150)
        for T in poses:
            assert pose_is_valid(T)
            c = T[:3, 3]
            assert 1.1 <= c[2] <= 1.9
            assert 0.5 <= c[0] <= Lx - 0.5 and 0.5 <= c[1] <= Ly - 0.5
            for o in objs:
                assert not obb_overlap((np.array([*c[:2], c[2]]), np.full(3, 0.2), 0.0), (o.center, o.size, o.yaw))
    assert set(SCANNET20_IDS) <= seen | {1, 2}  # walls and floor are room structure


def test_pair_overlap_mix():
    """Consecutive frames overlap heavily, distant ones weakly: pair mining gets both kinds."""
    spec = build_scene(SEED, 1)
    cs = compile_scene(spec)
    poses = camera_poses(spec, 60)
    K = intrinsics(30, 40)
    params = RenderParams(noise=False)
    clouds = []
    for f in range(0, 60, 3):
        fr = render_frame(cs, poses[f], K, 30, 40, scene_rng(SEED, 1, 2, f), params)
        clouds.append(backproject(fr.depth, K, poses[f])[fr.depth > 0])

    def overlap(a, b, r=0.08):  # ~ one pixel footprint at 3 m for 40 px wide (2 cm at 320 px)
        ma = cKDTree(b).query(a, distance_upper_bound=r)[0] < r
        mb = cKDTree(a).query(b, distance_upper_bound=r)[0] < r
        return (ma.sum() + mb.sum()) / (len(a) + len(b))

    near = [overlap(clouds[i], clouds[i + 1]) for i in range(len(clouds) - 1)]
    far = [overlap(clouds[i], clouds[j]) for i in range(len(clouds)) for j in range(i + 5, len(clouds))]
    assert np.median(near) > 0.4
    assert np.mean(np.array(far) < 0.3) > 0.5
    assert max(near) > 0.3


def test_pri3d_info_reads_the_dataset(dataset, capsys):
    assert main(["info", str(dataset)]) == 0
    out = capsys.readouterr().out
    assert "scene0000_00" in out and "scannet" in out


# ----------------------------------------------------------------------------- materials


def _brightness_eta2(mode: str) -> float:
    """Share of the variance of object instances' brightness explained by their class (eta squared)."""
    objects = {3, 4, 5, 6, 7, 10, 12, 14, 24, 33, 34, 36}  # furniture and fixtures (NYU-40 ids)
    by: dict[int, list[float]] = {}
    for i in range(30):
        for o in build_scene(SEED, i, materials=mode).objects:
            if o.label in objects:
                by.setdefault(o.label, []).append(float(np.mean([p.material.color0 for p in o.prims])))
    values = np.concatenate([np.asarray(v) for v in by.values()])
    between = sum(len(v) * (np.mean(v) - values.mean()) ** 2 for v in by.values())
    return between / (len(values) * values.var())


def test_shared_materials_do_not_give_the_class_away():
    # class-typical materials: white ceramics, dark chairs... brightness tells the class apart; with the
    # shared palette, the class explains no more than chance (about (classes - 1) / instances = 0.04)
    assert _brightness_eta2("class") > 0.3
    assert _brightness_eta2("shared") < 0.1


def test_materials_recorded_and_checked(tmp_path):
    out = tmp_path / "ds"
    generate(out, scenes=1, frames_per_scene=1, seed=0, resolution=(24, 32), materials="class", progress=False)
    assert json.loads((out / "meta.json").read_text())["materials"] == "class"
    assert json.loads((out / "scene0000_00" / "meta.json").read_text())["materials"] == "class"
    with pytest.raises(DataError, match="materials"):  # a re-run with the other palette is refused
        generate(out, scenes=1, frames_per_scene=1, seed=0, resolution=(24, 32), progress=False)
    with pytest.raises(ConfigError, match="materials"):
        generate(tmp_path / "x", scenes=1, frames_per_scene=1, seed=0, materials="pastel", progress=False)
    assert (
        main(
            [
                "synth",
                "--out",
                str(tmp_path / "y"),
                "--scenes",
                "1",
                "--frames-per-scene",
                "1",
                "--resolution",
                "24x32",
                "--materials",
                "shared",
                "--no-progress",
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "y" / "meta.json").read_text())["materials"] == "shared"


def test_info_and_prepare_refuse_a_synth_output_that_was_stopped_mid_way(tmp_path, capsys):
    """Issue 24: a synth output killed mid-way (finished scenes, no dataset meta.json) was accepted."""
    from pri3d.cli import main

    out = tmp_path / "sy"
    generate(out, scenes=2, frames_per_scene=2, seed=0, resolution=(24, 32), progress=False)
    (out / "meta.json").unlink()  # the dataset's meta.json is written last
    assert main(["info", str(out), "--no-progress"]) == 1
    assert "an unfinished 'pri3d synth' output" in capsys.readouterr().err
    assert main(["prepare", "--input", str(out), "--output", str(tmp_path / "p"), "--no-progress"]) == 1
    assert "an unfinished 'pri3d synth' output" in capsys.readouterr().err
    generate(out, scenes=2, frames_per_scene=2, seed=0, resolution=(24, 32), progress=False)  # finishes it
    assert main(["info", str(out), "--no-progress"]) == 0


def test_synth_refuses_an_output_folder_holding_something_else(tmp_path):
    other = tmp_path / "seven"
    other.mkdir()
    (other / "camera-intrinsics.txt").write_text("585 0 320\n0 585 240\n0 0 1\n")
    with pytest.raises(DataError, match="holds files that are not a pri3d-synth dataset"):
        generate(other, scenes=1, frames_per_scene=2, seed=0, resolution=(24, 32), progress=False)
    assert sorted(p.name for p in other.iterdir()) == ["camera-intrinsics.txt"]
