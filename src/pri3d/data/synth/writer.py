"""Write synthetic scenes to disk in ScanNet's exported layout (see :func:`generate`).

Layout of ``DIR``::

    meta.json                 generator, version, materials, seed, resolution [H, W], frames_per_scene, scenes,
                              classes (NYU-40 id -> name), splits
    splits/train.txt, splits/val.txt
    preview.png               with preview=True: colour | depth | labels of a few frames
    scene0000_00/
        color/<i>.jpg         RGB, JPEG quality 95
        depth/<i>.png         uint16 millimetres, 0 = invalid
        pose/<i>.txt          4x4 camera-to-world (OpenCV camera axes, z-up world)
        label/<i>.png         uint8 NYU-40 ids
        instance/<i>.png      uint16 instance ids (0 = none)
        intrinsic/intrinsic_color.txt, intrinsic/intrinsic_depth.txt   4x4, identical
        surface.ply           binary triangle mesh: x y z (float32), red green blue (uchar),
                              label (ushort, NYU-40), instance (ushort); faces (vertex_indices)
        meta.json             seed, version, classes, room, lights, objects (id, class, box)

Scene ``i`` depends only on ``(seed, i)``; each frame's noise only on ``(seed, i, frame)``. So the
output is byte-identical whatever the number of workers, and a dataset can be grown or resumed.
Every scene is written into ``DIR/.tmp-<scene>`` and renamed when complete: re-running into the
same directory keeps finished scenes and redoes unfinished ones.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from pri3d.data.io import (
    read_color,
    read_depth,
    read_label_png,
    write_color,
    write_depth,
    write_matrix,
    write_png,
)
from pri3d.data.synth.classes import CLASSES, SCANNET20_IDS
from pri3d.data.synth.primitives import tessellate, tessellate_room
from pri3d.data.synth.render import CompiledScene, RenderParams, compile_scene, render_frame
from pri3d.data.synth.scene import MATERIAL_MODES, ROOM_TYPES, build_scene, scene_rng
from pri3d.data.synth.textures import albedo, linear_to_srgb
from pri3d.data.synth.trajectory import camera_poses, intrinsics
from pri3d.engine.io import atomic_write_bytes, atomic_write_text
from pri3d.errors import ConfigError, DataError

__all__ = ["GENERATOR", "VERSION", "generate", "parse_resolution", "scene_ids", "split_scene_ids", "write_surface_ply"]

GENERATOR = "pri3d-synth"
VERSION = "1.1"  # 1.1: `materials` (shared palette by default; "class" = the 1.0 scenes)
MAX_SCENES = 10000  # scene ids are scene0000_00 .. scene9999_00
MIN_SIDE, MAX_SIDE = 16, 4096
FRAMES_PER_TASK = 8


def parse_resolution(text) -> tuple[int, int]:
    """``"240x320"`` (height x width) or a ``(H, W)`` pair -> ``(H, W)``; :class:`ConfigError` otherwise."""
    if isinstance(text, str):
        parts = text.lower().replace("*", "x").split("x")
        if len(parts) != 2:
            raise ConfigError(f"resolution {text!r}: expected HEIGHTxWIDTH, for example 240x320")
        try:
            h, w = int(parts[0]), int(parts[1])
        except ValueError:
            raise ConfigError(
                f"resolution {text!r}: expected HEIGHTxWIDTH with integers, for example 240x320"
            ) from None
    else:
        try:
            h, w = (int(v) for v in text)
        except (TypeError, ValueError):
            raise ConfigError(f"resolution {text!r}: expected (height, width)") from None
    if not (MIN_SIDE <= h <= MAX_SIDE and MIN_SIDE <= w <= MAX_SIDE):
        raise ConfigError(f"resolution {h}x{w}: height and width must be between {MIN_SIDE} and {MAX_SIDE} pixels")
    return h, w


def scene_ids(n: int) -> list[str]:
    return [f"scene{i:04d}_00" for i in range(n)]


def split_scene_ids(ids: list[str]) -> tuple[list[str], list[str]]:
    """(train, val): val is the last ``max(1, round(0.2 * N))`` scenes; with a single scene it is in
    both lists (there is nothing to hold out)."""
    if len(ids) == 1:
        return list(ids), list(ids)
    n_val = max(1, round(0.2 * len(ids)))
    return list(ids[:-n_val]), list(ids[-n_val:])


def _check_int(name: str, value, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"between {lo} and {hi}"
        raise ConfigError(f"{name} must be {bound}, got {value}")
    return value


def _prepare_out_dir(out_dir) -> Path:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: output path exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise DataError(f"{out}: output directory is not writable ({e.strerror or e})") from None
    return out


def _refuse_foreign(out: Path) -> None:
    """Refuse an output folder that holds something else than a (finished or unfinished) synth dataset:
    another dataset, a prepared folder, a run. Dot-files are ignored."""
    ours = {"meta.json", "splits", "preview.png"}
    foreign = sorted(
        p.name
        for p in out.iterdir()
        if not p.name.startswith(".") and p.name not in ours and not re.fullmatch(r"scene\d{4}_00", p.name)
    )
    if foreign:
        raise DataError(
            f"{out}: holds files that are not a {GENERATOR} dataset ({', '.join(foreign[:3])}"
            f"{f' and {len(foreign) - 3} more' if len(foreign) > 3 else ''}); choose another --out"
        )


def _settings(seed: int, resolution, frames: int, params: RenderParams, materials: str) -> dict:
    """What a finished scene or dataset must match to be kept on a re-run."""
    return {
        "generator": GENERATOR,
        "version": VERSION,
        "materials": materials,
        "seed": int(seed),
        "resolution": [int(resolution[0]), int(resolution[1])],
        "frames_per_scene": int(frames),
        "depth_range": [params.min_depth, params.max_depth],
        "sensor_noise": bool(params.noise),
    }


def _mismatch(path: Path, found: dict, wanted: dict) -> str | None:
    diffs = [f"{k}={found.get(k)!r} (asked {v!r})" for k, v in wanted.items() if found.get(k) != v]
    if diffs:
        return f"{path} was generated with different settings: {', '.join(diffs)}; use another --out or delete it"
    return None


def _dumps(obj, indent: int = 0) -> str:
    """JSON with one key per line but short lists of numbers kept on one line (readable meta files)."""
    pad = " " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{pad}{json.dumps(str(k))}: {_dumps(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(obj, list) and obj and all(isinstance(v, (dict, list)) for v in obj):
        # matrices and lists of objects: one row / object per line
        return "[\n" + ",\n".join(pad + json.dumps(v) for v in obj) + "\n" + " " * indent + "]"
    return json.dumps(obj)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: unreadable ({e})") from None


# ----------------------------------------------------------------------------- worker side

_CACHE: dict[tuple, tuple[CompiledScene, np.ndarray]] = {}


def _scene(seed: int, index: int, frames: int, materials: str) -> tuple[CompiledScene, np.ndarray]:
    key = (seed, index, frames, materials)
    if key not in _CACHE:
        _CACHE.clear()  # tasks arrive scene by scene: one cached scene is enough
        spec = build_scene(seed, index, materials=materials)
        _CACHE[key] = (compile_scene(spec), camera_poses(spec, frames))
    return _CACHE[key]


def _write_frames(task: tuple) -> tuple[str, int, int]:
    """Render and write frames ``f0..f1-1`` of one scene into its temp dir."""
    _, seed, index, frames, f0, f1, (H, W), tmp, params, materials = task
    cs, poses = _scene(seed, index, frames, materials)
    K = intrinsics(H, W)
    tmp = Path(tmp)
    for f in range(f0, f1):
        fr = render_frame(cs, poses[f], K, H, W, scene_rng(seed, index, 2, f), params)
        write_color(tmp / "color" / f"{f}.jpg", fr.color, quality=95)
        write_depth(tmp / "depth" / f"{f}.png", fr.depth, scale=1000.0)
        write_png(tmp / "label" / f"{f}.png", fr.label)
        write_png(tmp / "instance" / f"{f}.png", fr.instance)
        write_matrix(tmp / "pose" / f"{f}.txt", poses[f])
    return "frames", index, f1 - f0


def _write_surface(task: tuple) -> tuple[str, int, int]:
    _, seed, index, frames, tmp, materials = task
    cs, _ = _scene(seed, index, frames, materials)
    write_surface_ply(cs.spec, Path(tmp) / "surface.ply")
    return "surface", index, 0


def _run_task(task: tuple) -> tuple[str, int, int]:
    return _write_frames(task) if task[0] == "frames" else _write_surface(task)


def _worker_init() -> None:
    cv2.setNumThreads(1)


def write_surface_ply(spec, path, max_edge: float = 0.25) -> dict:
    """Write the scene's surface as a binary PLY triangle mesh with vertex colours (albedo, sRGB),
    NYU-40 labels and instance ids. Returns ``{"vertices": V, "faces": F}``."""
    from plyfile import PlyData, PlyElement

    V, F, C, L, I = [], [], [], [], []
    nv = 0
    il = spec.instance_labels()
    for face in range(6):
        v, f = tessellate_room(spec.size, face, max_edge)
        axis = np.full(len(v), face // 2, np.int8)
        V.append(v)
        F.append(f + nv)
        C.append(albedo(spec.room_materials[face], v.astype(np.float32), axis))
        inst = spec.room_instances[face]
        L.append(np.full(len(v), il[inst], np.uint16))
        I.append(np.full(len(v), inst, np.uint16))
        nv += len(v)
    for prim in spec.prims:
        v, f, ptex, axis = tessellate(prim, max_edge)
        V.append(v)
        F.append(f + nv)
        C.append(albedo(prim.material, ptex, axis))
        L.append(np.full(len(v), prim.label, np.uint16))
        I.append(np.full(len(v), prim.instance, np.uint16))
        nv += len(v)
    V = np.concatenate(V)
    F = np.concatenate(F)
    rgb = np.round(linear_to_srgb(np.concatenate(C)) * 255).astype(np.uint8)
    vert = np.empty(
        len(V),
        dtype=[
            ("x", "f4"),
            ("y", "f4"),
            ("z", "f4"),
            ("red", "u1"),
            ("green", "u1"),
            ("blue", "u1"),
            ("label", "u2"),
            ("instance", "u2"),
        ],
    )
    vert["x"], vert["y"], vert["z"] = V[:, 0], V[:, 1], V[:, 2]
    vert["red"], vert["green"], vert["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    vert["label"], vert["instance"] = np.concatenate(L), np.concatenate(I)
    faces = np.empty(len(F), dtype=[("vertex_indices", "i4", (3,))])
    faces["vertex_indices"] = F
    ply = PlyData([PlyElement.describe(vert, "vertex"), PlyElement.describe(faces, "face")], text=False, byte_order="<")
    ply.write(str(path))
    return {"vertices": int(len(V)), "faces": int(len(F))}


# ----------------------------------------------------------------------------- main side


def _scene_meta(seed: int, index: int, frames: int, resolution, params: RenderParams, materials: str) -> dict:
    spec = build_scene(seed, index, materials=materials)
    H, W = resolution
    return {
        **_settings(seed, resolution, frames, params, materials),
        "scene_id": spec.scene_id,
        "scene_index": int(index),
        "scene_seed": [int(seed), int(index)],
        "room_type": spec.room_type,
        "room_size": [round(float(v), 5) for v in spec.size],
        "world": "z up, floor at z = 0, room spans [0, Lx] x [0, Ly] x [0, Lz] metres",
        "intrinsics": intrinsics(H, W).round(6).tolist(),
        "depth_scale": 1000.0,
        "classes": {str(k): v for k, v in CLASSES.items()},
        "lights": [
            {"position": [round(float(v), 5) for v in li.position], "color": [round(float(v), 5) for v in li.color]}
            for li in spec.lights
        ],
        "objects": [o.to_dict() for o in spec.objects],
    }


_PALETTE = np.zeros((256, 3), np.uint8)
for _i in range(1, 256):
    _h = (_i * 0.61803398875) % 1.0
    _PALETTE[_i] = cv2.cvtColor(np.uint8([[[int(_h * 180), 200, 230 - 60 * (_i % 2)]]]), cv2.COLOR_HSV2RGB)[0, 0]


def label_colors(label: np.ndarray) -> np.ndarray:
    """``(H, W)`` integer labels -> ``(H, W, 3)`` uint8 RGB (a fixed colour per id, 0 black)."""
    return _PALETTE[np.clip(label, 0, 255)]


def depth_colors(depth: np.ndarray, max_depth: float = 6.0) -> np.ndarray:
    """``(H, W)`` metres -> ``(H, W, 3)`` uint8 RGB (turbo colour map, invalid black)."""
    d8 = np.clip(depth / max_depth * 255, 0, 255).astype(np.uint8)
    rgb = cv2.cvtColor(cv2.applyColorMap(d8, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
    rgb[depth <= 0] = 0
    return rgb


def write_preview(out: Path, ids: list[str], frames: int, path: Path, max_depth: float = 6.0) -> Path:
    """Contact sheet: one row per frame (colour | depth | labels) for up to 3 scenes x 2 frames."""
    rows = []
    for sid in ids[:3]:
        for f in sorted({0, frames // 2}):
            d = out / sid
            color = read_color(d / "color" / f"{f}.jpg")
            depth = read_depth(d / "depth" / f"{f}.png", 1000.0)
            label = read_label_png(d / "label" / f"{f}.png")
            row = np.concatenate([color, depth_colors(depth, max_depth), label_colors(label)], axis=1)
            cv2.putText(
                row, f"{sid} frame {f}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA
            )
            rows.append(row)
    sheet = np.concatenate(rows, axis=0)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise DataError(f"{path}: could not encode the preview")
    atomic_write_bytes(path, buf.tobytes())
    return path


def generate(
    out_dir,
    *,
    scenes: int,
    frames_per_scene: int,
    seed: int,
    resolution=(240, 320),
    workers: int = 1,
    preview: bool = False,
    progress: bool = True,
    render_params: RenderParams | None = None,
    materials: str = "shared",
) -> dict:
    """Generate ``scenes`` synthetic RGB-D scenes of ``frames_per_scene`` frames into ``out_dir``.

    Args:
        out_dir: dataset folder (created). Finished scenes already there are kept (their settings
            must match); unfinished ones (``.tmp-*``) are redone.
        scenes, frames_per_scene: how much to write (>= 1).
        seed: dataset seed (>= 0); the same seed gives the same scenes on any machine (see the README:
            labels, ids and depth identical; colour within 1/255 on a few pixels across CPUs).
        resolution: ``(H, W)`` or ``"HxW"``; colour and depth share it (and the intrinsics).
        workers: processes (scenes are split into chunks of frames across them).
        preview: also write ``out_dir/preview.png``.
        progress: show a tqdm bar.
        render_params: sensor settings (defaults: noisy Kinect-like depth, 0.3-6 m).
        materials: ``shared`` (objects' colours and textures from one palette for every class, so the
            class is not readable from colour; the default) or ``class`` (class-typical materials, the
            generator's only mode before version 1.1).

    Returns:
        A summary dict (``message`` holds a one-line summary).

    Raises:
        ConfigError: impossible parameters. DataError: unusable output directory or a dataset there
        made with other settings. Both before any work starts.
    """
    t_start = time.perf_counter()
    n_scenes = _check_int("scenes", scenes, 1, MAX_SCENES)
    n_frames = _check_int("frames_per_scene", frames_per_scene, 1, 1_000_000)
    seed = _check_int("seed", seed, 0, 2**63 - 1)
    workers = _check_int("workers", workers, 1, 256)
    H, W = parse_resolution(resolution)
    params = render_params or RenderParams()
    out = _prepare_out_dir(out_dir)
    if materials not in MATERIAL_MODES:
        raise ConfigError(f"materials must be one of {', '.join(MATERIAL_MODES)}, got {materials!r}")
    wanted = _settings(seed, (H, W), n_frames, params, materials)
    ids = scene_ids(n_scenes)
    todo, kept = _scenes_to_write(out, ids, wanted)

    # --- all checks passed: clean up unfinished scenes and go
    tasks = _start_scenes(out, ids, todo, seed, n_frames, (H, W), params, materials)

    def finish(index: int) -> None:
        tmp = out / f".tmp-{ids[index]}"
        meta = _scene_meta(seed, index, n_frames, (H, W), params, materials)
        atomic_write_text(tmp / "meta.json", _dumps(meta) + "\n")
        os.rename(tmp, out / ids[index])

    _run_tasks(tasks, workers, len(todo) * n_frames, progress, finish)
    _write_dataset_meta(out, ids, wanted)
    preview_path = write_preview(out, ids, n_frames, out / "preview.png", params.max_depth) if preview else None
    return _summary(out, ids, len(todo), len(kept), n_frames, (H, W), workers, t_start, preview_path)


def _scenes_to_write(out: Path, ids: list[str], wanted: dict) -> tuple[list[int], list[str]]:
    """``(indices of the scenes to generate, ids of the finished scenes kept)``. Raises :class:`DataError`
    when the dataset or a finished scene in ``out`` was made with other settings, when ``out`` holds
    something else, or when a scene folder is not a finished scene."""
    meta_path = out / "meta.json"
    if meta_path.exists():
        msg = _mismatch(meta_path, _read_json(meta_path), wanted)
        if msg:
            raise DataError(msg)
    _refuse_foreign(out)
    todo, kept = [], []
    for i, sid in enumerate(ids):
        d = out / sid
        if not d.exists():
            todo.append(i)
            continue
        sm = d / "meta.json"
        if not sm.is_file():
            raise DataError(
                f"{d} exists but is not a finished {GENERATOR} scene (no meta.json); remove it or use another --out"
            )
        msg = _mismatch(sm, _read_json(sm), wanted)
        if msg:
            raise DataError(msg)
        kept.append(sid)
    return todo, kept


def _start_scenes(
    out: Path, ids: list[str], todo: list[int], seed: int, n_frames: int, resolution, params, materials: str
) -> list[tuple]:
    """Remove unfinished scenes (``.tmp-*``), create the temp folder of each scene to generate (with its
    intrinsics) and return the worker tasks: chunks of :data:`FRAMES_PER_TASK` frames, then the surface."""
    for p in sorted(out.glob(".tmp-scene*")):
        shutil.rmtree(p)
    H, W = resolution
    tasks = []
    for i in todo:
        tmp = out / f".tmp-{ids[i]}"
        for sub in ("color", "depth", "pose", "label", "instance", "intrinsic"):
            (tmp / sub).mkdir(parents=True)
        K4 = np.eye(4)
        K4[:3, :3] = intrinsics(H, W)
        write_matrix(tmp / "intrinsic" / "intrinsic_color.txt", K4)
        write_matrix(tmp / "intrinsic" / "intrinsic_depth.txt", K4)
        for f0 in range(0, n_frames, FRAMES_PER_TASK):
            tasks.append(
                (
                    "frames",
                    seed,
                    i,
                    n_frames,
                    f0,
                    min(n_frames, f0 + FRAMES_PER_TASK),
                    (H, W),
                    str(tmp),
                    params,
                    materials,
                )
            )
        tasks.append(("surface", seed, i, n_frames, str(tmp), materials))
    return tasks


def _run_tasks(tasks: list[tuple], workers: int, frames: int, progress: bool, finish) -> None:
    """Run the tasks here (one worker) or in a pool of spawned processes; ``finish(index)`` is called here
    once all tasks of scene ``index`` are done."""
    from tqdm import tqdm

    remaining: dict[int, int] = {}
    for task in tasks:
        remaining[task[2]] = remaining.get(task[2], 0) + 1
    bar = tqdm(total=frames, unit="frame", desc="pri3d synth", disable=not progress, dynamic_ncols=True)
    try:
        if workers == 1 or len(tasks) <= 1:
            results = map(_run_task, tasks)
            pool = None
        else:
            # spawn, not fork: forking a process whose OpenCV/torch thread pools are running deadlocks
            ctx = mp.get_context("spawn")
            pool = ctx.Pool(min(workers, len(tasks)), initializer=_worker_init)
            results = pool.imap_unordered(_run_task, tasks)
        try:
            for _kind, index, n in results:
                bar.update(n)
                remaining[index] -= 1
                if remaining[index] == 0:
                    finish(index)
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
    finally:
        bar.close()
        _CACHE.clear()


def _write_dataset_meta(out: Path, ids: list[str], wanted: dict) -> None:
    """``splits/train.txt``, ``splits/val.txt`` and the dataset's ``meta.json``."""
    train, val = split_scene_ids(ids)
    (out / "splits").mkdir(exist_ok=True)
    atomic_write_text(out / "splits" / "train.txt", "\n".join(train) + "\n")
    atomic_write_text(out / "splits" / "val.txt", "\n".join(val) + "\n")
    dataset_meta = {
        **wanted,
        "scenes": ids,
        "room_types": [ROOM_TYPES[i % len(ROOM_TYPES)] for i in range(len(ids))],
        "splits": {"train": train, "val": val},
        "classes": {str(k): v for k, v in CLASSES.items()},
        "scannet20_ids": list(SCANNET20_IDS),
        "label_space": "NYU-40 ids (0 = unannotated); ceiling (22) is not a ScanNet-20 class",
        "layout": "ScanNet exported frames (color/ depth/ pose/ label/ instance/ intrinsic/), surface.ply",
        "depth_scale": 1000.0,
    }
    atomic_write_text(out / "meta.json", _dumps(dataset_meta) + "\n")


def _summary(
    out: Path, ids: list[str], generated: int, kept: int, n_frames: int, resolution, workers: int, t_start, preview
) -> dict:
    """:func:`generate`'s summary dict, with its one-line ``message``."""
    H, W = resolution
    n_scenes = len(ids)
    extra = sorted(p.name for p in out.glob("scene*_00") if p.is_dir() and p.name not in set(ids))
    seconds = time.perf_counter() - t_start
    written = generated * n_frames
    fps = written / seconds if written else 0.0
    msg = (
        f"pri3d synth: {n_scenes} scenes ({generated} generated, {kept} kept) x {n_frames} frames at "
        f"{H}x{W} -> {out} in {seconds:.1f} s ({fps:.1f} frames/s, {workers} worker{'s' * (workers > 1)})"
    )
    if extra:
        msg += f"; note: {len(extra)} scene folder(s) beyond --scenes left in place ({extra[0]}...), not in meta.json"
    return {
        "out_dir": str(out),
        "scenes": n_scenes,
        "generated": generated,
        "kept": kept,
        "frames_per_scene": n_frames,
        "frames_written": written,
        "resolution": [H, W],
        "workers": workers,
        "seconds": round(seconds, 3),
        "frames_per_second": round(fps, 3),
        "preview": str(preview) if preview else None,
        "message": msg,
    }
