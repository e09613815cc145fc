"""``pri3d prepare``: overlapping-pair mining and voxel geometry for pre-training.

For every scene of a dataset (any format :func:`~pri3d.data.formats.open_dataset` reads):

1. **Frames.** Every ``frame_skip``-th frame is taken; frames with an invalid pose (non-finite or
   not rigid, e.g. ScanNet's ``-inf``) or without valid depth are skipped and counted. Depth is
   loaded once per frame onto one working pixel grid per scene (the first kept frame's depth grid;
   frames whose depth has another size are resampled onto it through their own intrinsics).
2. **Pairs.** The overlap of every pair of kept frames is computed
   (:func:`pri3d.geometry.overlap.overlap_fast`, the paper's definition with a documented query
   stride and an exact KD-tree fallback; or, with ``mode="official"``, the official code's 5 cm
   voxel / 7.5 cm radius / max-of-both-directions definition, computed exactly). Pairs with
   ``overlap >= min_overlap`` are kept.
3. **Geometry.** The scene surface is voxelized at ``voxel_size``: from the scene's mesh or point
   cloud when it has one (``Scene.surface_path``: ScanNet's ``_vh_clean_2.ply``, the generator's
   ``surface.ply``; faces are sampled every ``voxel_size / 2``), otherwise by fusing the kept
   frames' depth: every ``fuse_stride``-th pixel is back-projected, coloured from the colour image,
   and a voxel is kept when at least ``fuse_min_views`` frames put a point in it. Each frame's crop
   box is the axis-aligned box of its view frustum between its nearest and farthest valid depth
   (the far side capped at ``crop_far`` metres when set).

4. **Held-out time range (optional).** With ``holdout`` (frame ranges, e.g. ``"120-158"``), those
   frames of every scene become the validation split and training keeps the other frames except
   near-duplicates of a held-out frame (overlap ``>= holdout_overlap`` with one of them): a gap, so
   that validation measures views training never saw. The splits are written to
   ``OUT/splits/train.txt`` and ``OUT/splits/val.txt`` (frame ranges, :mod:`pri3d.data.splits`),
   which ``pri3d pretrain`` uses by default; fused geometry then uses the training frames only.

Output layout: see :mod:`pri3d.pairs.store` (the reader). Every scene is written atomically
(``scenes/<id>/pairs.csv`` and ``geometry/<id>.npz`` first, ``scenes/<id>/frames.json`` last); a
re-run skips the scenes that have ``frames.json`` and rebuilds ``pairs.csv`` and ``summary.json``
from the per-scene files. An output directory prepared with other parameters is refused unless
``overwrite=True``.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pri3d.data.io import fits, read_surface_ply
from pri3d.data.scene import Scene, SkipCounter
from pri3d.engine.io import atomic_savez, atomic_write_text
from pri3d.errors import DataError
from pri3d.geometry.camera import pose_is_valid, scale_intrinsics
from pri3d.geometry.correspondences import resample_depth
from pri3d.geometry.overlap import overlap_fast, overlap_reference
from pri3d.geometry.voxels import frame_boxes, fuse_depth, fusion_samples, voxelize_surface
from pri3d.pairs.output import claim_output, pairs_csv, rebuild_outputs, summary_message
from pri3d.pairs.store import Pair

__all__ = ["PrepareParams", "SceneResult", "prepare", "prepare_scene", "load_scene_frames", "OFFICIAL", "VERSION"]

VERSION = 1

# The official code's settings (PointContrast's compute_full_overlapping.py, reused by Pri3D):
# 5 cm voxel down-sampling, a 1.5 * 5 cm = 7.5 cm radius, overlap = max of the two directions.
OFFICIAL = {"voxel": 0.05, "radius": 0.075, "combine": "max"}


@dataclass
class PrepareParams:
    """Every parameter of a ``prepare`` run (all stored in ``OUT/params.json``).

    Mining:
        frame_skip: take every N-th frame of each scene (ScanNet: 25 on full sequences).
        min_overlap: keep pairs with overlap >= this.
        radius: a point matches when the other frame has a point within this distance (metres).
        mode: ``"paper"`` (the paper's definition, every valid pixel, ``radius``) or ``"official"``
            (the official code: 5 cm voxel centroids, 7.5 cm radius, max of both directions;
            ``radius`` is then ignored).
        query_stride: pixel stride of the query points of the fast miner; 0 = automatic (about
            3000 queries per frame: 10 for 640x480). The only approximation of the default.
        exact: search every pixel where a point within ``radius`` can project (True, faithful).
            False searches only a small window around each reprojection: faster, biased low
            (reprojection with a depth test only).
        window: with ``exact=False``, the half-size of that window (pixels).
    Geometry:
        voxel_size: edge of the occupancy voxels (metres).
        surface: ``"auto"`` (mesh/point cloud when the scene has one, else fused depth), ``"mesh"``
            (required) or ``"fuse"`` (always fuse depth).
        fuse_stride: pixel stride of the depth fusion.
        fuse_min_views: keep a fused voxel seen by at least this many frames.
        crop_far: cap (metres) on the far side of each frame's crop box; 0 = the frame's max depth.
        geometry: write ``geometry/<scene>.npz`` at all.
    Held-out validation frames:
        holdout: frame ranges (``"120-158"``, ``"0-9,200-248"``) held out in every scene; "" = none.
        holdout_overlap: training drops frames overlapping a held-out frame by at least this; 0 = the
            mining threshold ``min_overlap`` (no kept pair links a training and a held-out frame).
    """

    frame_skip: int = 1
    min_overlap: float = 0.30
    radius: float = 0.02
    mode: str = "paper"
    query_stride: int = 0
    window: int = 1
    exact: bool = True
    voxel_size: float = 0.02
    surface: str = "auto"
    fuse_stride: int = 4
    fuse_min_views: int = 1
    crop_far: float = 0.0
    geometry: bool = True
    holdout: str = ""
    holdout_overlap: float = 0.0

    def check(self) -> None:
        from pri3d.errors import ConfigError

        if self.frame_skip < 1:
            raise ConfigError(f"frame_skip must be >= 1, got {self.frame_skip}")
        if not 0.0 <= self.min_overlap <= 1.0:
            raise ConfigError(f"min_overlap must be in [0, 1], got {self.min_overlap}")
        if self.radius <= 0 or self.voxel_size <= 0:
            raise ConfigError("radius and voxel_size must be > 0")
        if self.mode not in ("paper", "official"):
            raise ConfigError(f"mode must be 'paper' or 'official', got {self.mode!r}")
        if self.surface not in ("auto", "mesh", "fuse"):
            raise ConfigError(f"surface must be 'auto', 'mesh' or 'fuse', got {self.surface!r}")
        if self.query_stride < 0 or self.window < 0 or self.fuse_stride < 1 or self.fuse_min_views < 1:
            raise ConfigError("query_stride, window >= 0 and fuse_stride, fuse_min_views >= 1 required")
        if self.crop_far < 0:
            raise ConfigError(f"crop_far must be >= 0, got {self.crop_far}")
        if self.holdout:
            from pri3d.data.splits import parse_ranges

            try:
                parse_ranges(self.holdout, "holdout: ")
            except DataError as e:
                raise ConfigError(str(e)) from e
        if self.holdout_overlap and not self.min_overlap <= self.holdout_overlap <= 1.0:
            raise ConfigError(
                f"holdout_overlap must be in [min_overlap={self.min_overlap}, 1] (overlaps below the "
                f"mining threshold are not measured), got {self.holdout_overlap}"
            )


@dataclass
class SceneFrames:
    """A scene's kept frames, loaded once on one working grid."""

    scene_id: str
    frame_ids: list[int]
    depth: np.ndarray  # (F, H, W) float32 metres
    K: np.ndarray  # (3, 3) intrinsics of the working grid
    poses: np.ndarray  # (F, 4, 4) camera-to-world
    fused: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # points, colours, frame index
    skips: SkipCounter = field(default_factory=SkipCounter)
    notes: SkipCounter = field(default_factory=SkipCounter)  # corrections that did not skip a frame


@dataclass
class SceneResult:
    scene_id: str
    status: str  # "ok" | "skipped" | "done-before"
    frames: int = 0
    pairs_tested: int = 0
    pairs_kept: int = 0
    voxels: int = 0
    skips: dict = field(default_factory=dict)
    seconds: float = 0.0
    message: str = ""


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def _depth_intrinsics(K: np.ndarray, size, ref_size, what: str) -> tuple[np.ndarray, bool]:
    """The intrinsics of a depth image of ``size``: ``K`` when it fits; else ``K`` rescaled from the
    scene's working size ``ref_size`` when that fits (the reader gave the intrinsics of another
    resolution, e.g. one intrinsics file for depth maps of several sizes). Returns (K, rescaled)."""
    H, W = size
    if not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise DataError(f"{what}: invalid depth intrinsics {K.tolist()}")
    if fits(K, size):
        return K, False
    if ref_size is not None and tuple(ref_size) != tuple(size):
        K2 = scale_intrinsics(K, W / ref_size[1], H / ref_size[0])
        if fits(K2, size):
            return K2, True
    raise DataError(
        f"{what}: depth intrinsics (cx={K[0, 2]:.1f}, cy={K[1, 2]:.1f}) do not fit the {W}x{H} depth "
        "image; they seem to describe another resolution"
    )


def load_scene_frames(
    scene: Scene, params: PrepareParams, *, want_fusion: bool = False, frame_ranges=None, strict: bool = False
) -> SceneFrames:
    """Load the kept frames of a scene (every ``frame_skip``-th, valid pose, some valid depth; within
    ``frame_ranges``, inclusive ``(start, end)`` frame ids, when given). A frame the reader refuses
    (unreadable, truncated, or images that do not fit the intrinsics) is a counted skip ("unreadable
    frame"), or with ``strict`` the reader's :class:`DataError`."""
    skips = SkipCounter()
    notes = SkipCounter()
    ids, depths, poses = [], [], []
    K_work = size = None
    fused_pts, fused_col, fused_idx = [], [], []
    for fid in scene.frame_ids[:: params.frame_skip]:
        if frame_ranges is not None and not any(lo <= int(fid) <= hi for lo, hi in frame_ranges):
            continue
        what = f"{scene.scene_id}/{fid}"
        pose = scene.load_pose(fid)
        if not pose_is_valid(pose):
            skips.add("invalid pose", what)
            continue
        try:
            frame = scene.load_frame(fid, color=want_fusion, depth=True, labels=False)
        except DataError as e:
            if strict:
                raise
            skips.add("unreadable frame", f"{what}: {e}")
            continue
        d = np.asarray(frame.depth, dtype=np.float32)
        d = np.where(np.isfinite(d) & (d > 0), d, 0).astype(np.float32)
        if not (d > 0).any():
            skips.add("no valid depth", what)
            continue
        Kd, rescaled = _depth_intrinsics(np.asarray(frame.depth_intrinsics, dtype=np.float64), d.shape, size, what)
        if rescaled:
            notes.add("depth intrinsics rescaled to the depth image size", what)
        if K_work is None:
            K_work, size = Kd.copy(), d.shape
        if d.shape != size or not np.allclose(Kd, K_work):
            d = resample_depth(d, Kd, K_work, size)
            if not (d > 0).any():
                skips.add("no valid depth", what)
                continue
        if want_fusion:
            pts, col = fusion_samples(d, K_work, pose, frame.color, frame.color_intrinsics, params.fuse_stride)
            fused_pts.append(pts)
            fused_col.append(col)
            fused_idx.append(np.full(len(pts), len(ids), dtype=np.int32))
        ids.append(int(fid))
        depths.append(d)
        poses.append(np.asarray(pose, dtype=np.float64))
    if ids:
        depth = np.stack(depths)
        P = np.stack(poses)
    else:
        depth = np.zeros((0, 1, 1), np.float32)
        P = np.zeros((0, 4, 4))
        K_work = np.eye(3)
    fused = None
    if want_fusion and ids:
        fused = (np.concatenate(fused_pts), np.concatenate(fused_col), np.concatenate(fused_idx))
    return SceneFrames(scene.scene_id, ids, depth, K_work, P, fused, skips, notes)


# --------------------------------------------------------------------------------------------------
# Mining
# --------------------------------------------------------------------------------------------------


def auto_query_stride(size) -> int:
    """About 3000 query points per frame: 10 for 640x480, 5 for 320x240."""
    H, W = size
    return max(1, int(round(math.sqrt(H * W / 3072.0))))


def mine_pairs(frames: SceneFrames, params: PrepareParams) -> tuple[list[Pair], int, dict]:
    """Pairs of kept frames with ``overlap >= min_overlap``; also the number of pairs tested and the
    miner's statistics."""
    F = len(frames.frame_ids)
    if F < 2:
        return [], 0, {}
    if params.mode == "official":
        ov = overlap_reference(
            list(frames.depth),
            [frames.K] * F,
            list(frames.poses),
            radius=OFFICIAL["radius"],
            voxel_size=OFFICIAL["voxel"],
            combine=OFFICIAL["combine"],
        )
        pairs = np.stack(np.triu_indices(F, k=1), axis=1)
        stats = {"pairs": len(pairs)}
    else:
        qs = params.query_stride or auto_query_stride(frames.depth.shape[1:])
        opts = {"radius": params.radius, "query_stride": qs, "window": params.window, "exact": params.exact}
        ov, pairs, st = overlap_fast(frames.depth, frames.K, frames.poses, **opts)
        stats = st.to_dict()
        stats["query_stride"] = qs
    keep = ov >= params.min_overlap
    out = []
    for (a, b), o in zip(pairs[keep], ov[keep]):
        fa, fb = frames.frame_ids[a], frames.frame_ids[b]
        if fa > fb:
            fa, fb = fb, fa
        out.append(Pair(frames.scene_id, fa, fb, round(float(o), 4)))
    out.sort(key=lambda p: (p.frame_a, p.frame_b))
    return out, len(pairs), stats


# --------------------------------------------------------------------------------------------------
# One scene, and the whole run
# --------------------------------------------------------------------------------------------------


def prepare_scene(scene: Scene, params: PrepareParams, out_dir, frame_ranges=None, strict: bool = False) -> SceneResult:
    """Mine and voxelize one scene and write its files atomically (``frames.json`` last). ``frame_ranges``:
    only frames in these inclusive ``(start, end)`` id ranges (from a split file with ranges)."""
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    sdir = out_dir / "scenes" / scene.scene_id
    sdir.mkdir(parents=True, exist_ok=True)
    surface = None
    if params.geometry and params.surface != "fuse":
        surface = scene.surface_path
        if surface is None and params.surface == "mesh":
            raise DataError(f"{scene.root}: scene {scene.scene_id} has no mesh/point cloud (surface='mesh')")
    want_fusion = params.geometry and surface is None
    frames = load_scene_frames(scene, params, want_fusion=want_fusion, frame_ranges=frame_ranges, strict=strict)
    F = len(frames.frame_ids)
    info = {
        "scene": scene.scene_id,
        "frame_ids": frames.frame_ids,
        "skips": frames.skips.to_dict(),
        "notes": frames.notes.to_dict(),
    }
    if F < 2:
        reason = "scene with fewer than 2 valid frames"
        info.update(status="skipped", reason=reason, pairs_tested=0, pairs_kept=0)
        atomic_write_text(sdir / "pairs.csv", pairs_csv([]))
        atomic_write_text(sdir / "frames.json", json.dumps(info, indent=1))
        return SceneResult(
            scene.scene_id, "skipped", F, skips=frames.skips.to_dict(), seconds=time.perf_counter() - t0, message=reason
        )
    pairs, tested, stats = mine_pairs(frames, params)
    atomic_write_text(sdir / "pairs.csv", pairs_csv(pairs))
    if params.holdout:
        split = _scene_holdout(scene.scene_id, frames, pairs, params)
        info["holdout"] = split
        if frames.fused is not None:  # the validation frames' depth stays out of the training geometry
            keep_idx = np.isin(np.asarray(frames.frame_ids), split["train_frames"])
            pts, col, fidx = frames.fused
            m = keep_idx[fidx]
            frames.fused = (pts[m], col[m], fidx[m])
    n_vox = 0
    if params.geometry:
        if surface is not None:
            V, faces, col = read_surface_ply(surface)
            coords, origin, colors = voxelize_surface(V, faces, col, params.voxel_size)
            source = f"mesh:{Path(surface).name}"
        else:
            coords, origin, colors = fuse_depth(*frames.fused, params.voxel_size, params.fuse_min_views)
            source = "fused-depth"
        bmin, bmax = frame_boxes(frames.depth, frames.K, frames.poses, params.crop_far)
        (out_dir / "geometry").mkdir(exist_ok=True)
        atomic_savez(
            out_dir / "geometry" / f"{scene.scene_id}.npz",
            coords=coords,
            origin=origin,
            voxel_size=np.float64(params.voxel_size),
            colors=colors,
            frame_ids=np.asarray(frames.frame_ids, dtype=np.int64),
            bbox_min=bmin,
            bbox_max=bmax,
            source=np.array(source),
        )
        n_vox = len(coords)
    info.update(status="ok", pairs_tested=tested, pairs_kept=len(pairs), voxels=n_vox, miner=stats)
    atomic_write_text(sdir / "frames.json", json.dumps(info, indent=1))
    return SceneResult(
        scene.scene_id, "ok", F, tested, len(pairs), n_vox, frames.skips.to_dict(), time.perf_counter() - t0
    )


def _scene_holdout(scene_id: str, frames: SceneFrames, pairs: list[Pair], params: PrepareParams) -> dict:
    """The held-out split of one scene (see :func:`pri3d.data.splits.holdout_split`)."""
    from pri3d.data.splits import holdout_split, parse_ranges

    ids = list(frames.frame_ids)
    train, val, stats = holdout_split(
        {scene_id: ids}, pairs, parse_ranges(params.holdout), params.holdout_overlap or params.min_overlap
    )
    tr, va = train.scenes.get(scene_id), val.scenes.get(scene_id)
    if not tr:
        st = stats[scene_id]
        raise DataError(
            f"{scene_id}: --holdout {params.holdout} leaves no training frame ({st['val_count']} held out, "
            f"{st['gap']} near-duplicates of them); hold out fewer frames or raise --holdout-overlap"
        )
    return {
        "train": [list(r) for r in tr] if tr else [],
        "val": [list(r) for r in va] if va else [],
        "train_frames": [f for f in ids if train.contains(scene_id, f)],
        "val_frames": [f for f in ids if val.contains(scene_id, f)],
        **stats[scene_id],
    }


def _params_record(params: PrepareParams, input_path: Path, fmt: str, out_dir: Path, split) -> dict:
    rec = {"version": VERSION}
    rec.update(asdict(params))
    rec["input"] = os.path.relpath(Path(input_path).resolve(), Path(out_dir).resolve())
    rec["format"] = fmt
    rec["split"] = None
    if split is not None:  # scene ids, with their frame ranges when the split file gives some
        rec["split"] = (
            sorted(split.scene_ids())
            if not split.has_frame_ranges
            else {s: [list(r) for r in rng] if rng else None for s, rng in sorted(split.scenes.items())}
        )
    if params.mode == "official":
        rec["official"] = dict(OFFICIAL)
    return rec


def _worker(args):
    scene, params, out_dir, ranges, strict = args
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    return prepare_scene(scene, params, out_dir, ranges, strict)


def prepare(
    input_path,
    output,
    *,
    format: str | None = None,
    params: PrepareParams | None = None,
    split_file=None,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    strict: bool = False,
) -> dict:
    """Run ``pri3d prepare`` and return the summary dict (also written to ``OUT/summary.json``).
    Frames the reader refuses are counted skips; ``strict`` makes the first one an error.

    Raises:
        DataError: unreadable dataset, or ``output`` holds a run with other parameters (unless
            ``overwrite``; then its previous results are removed first).
    """
    from pri3d.data.formats import detect_format, open_dataset
    from pri3d.data.splits import read_split

    params = params or PrepareParams()
    params.check()
    t0 = time.perf_counter()
    input_path = Path(input_path)
    out = Path(output)
    fmt = format or detect_format(input_path)
    split_obj = read_split(split_file) if split_file is not None else None
    split = split_obj.scene_ids() if split_obj is not None else None
    scenes = open_dataset(input_path, fmt, split=split)
    claim_output(out, _params_record(params, input_path, fmt, out, split_obj), overwrite)

    todo = [s for s in scenes if not (out / "scenes" / s.scene_id / "frames.json").is_file()]
    done_before = len(scenes) - len(todo)
    ranges = [split_obj.scenes.get(s.scene_id) if split_obj else None for s in todo]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(scenes), initial=done_before, desc="prepare", unit="scene")
    _run_scenes(todo, ranges, params, out, workers, bar, strict)
    if bar:
        bar.close()
    threshold = params.holdout_overlap or params.min_overlap
    summary = rebuild_outputs(out, [s.scene_id for s in scenes], params.holdout, threshold)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    summary["scenes_done_before"] = done_before
    summary["message"] = summary_message(summary, params.min_overlap, out)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    return summary


def _run_scenes(
    todo: list[Scene], ranges, params: PrepareParams, out: Path, workers: int, bar, strict: bool = False
) -> list[SceneResult]:
    """:func:`prepare_scene` on every scene of ``todo`` (with its frame ``ranges``), in ``workers``
    processes when > 1; ``bar`` (a progress bar or None) advances once per scene."""
    results: list[SceneResult] = []
    if workers > 1 and len(todo) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as ex:
            for res in ex.map(_worker, [(s, params, out, r, strict) for s, r in zip(todo, ranges)]):
                results.append(res)
                if bar:
                    bar.update(1)
    else:
        for s, r in zip(todo, ranges):
            results.append(prepare_scene(s, params, out, r, strict))
            if bar:
                bar.update(1)
    return results
