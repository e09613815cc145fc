"""Dataset statistics for ``pri3d info``: what an RGB-D dataset holds and what is wrong with it.

:func:`dataset_info` opens a dataset (any format of :mod:`pri3d.data.formats`) and returns a plain,
JSON-serialisable dict; :func:`format_info` renders it as text.

What is read:

* **Poses**: every frame's pose (cheap: text files or the ``.sens`` index) is checked with
  :func:`~pri3d.geometry.camera.pose_is_valid` (finite and rigid). Invalid ones are counted skips
  (reason ``invalid pose``), listed by frame id. Formats without poses (NYUv2) are reported as such.
* **Images**: at most ``max_frames`` frames are loaded (colour and depth). When there are no more
  scenes than ``max_frames``, each scene gets ``max(1, floor(max_frames * len(scene) / total))``
  frames evenly spaced over it (first and last included); otherwise one middle frame from each of
  ``max_frames`` evenly spaced scenes. Colour/depth sizes, depth range (min / median / max of valid
  pixels; the median to 1 mm, from a histogram) and the invalid-depth ratio (pixels with depth 0 or
  non-finite, over all sampled pixels) come from these frames. Frames whose depth is all zero are
  counted skips (reason ``all-zero depth``).
* **Intrinsics** (fx, fy, cx, cy of colour and depth) come from each scene's first frame; a principal
  point outside the sampled image size is reported as a note (intrinsics for another resolution).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pri3d.data.formats import FORMAT_MODULES, detect_format, open_dataset
from pri3d.data.scene import Scene, SkipCounter
from pri3d.errors import DataError
from pri3d.geometry.camera import pose_is_valid

__all__ = ["dataset_info", "format_info", "summary_line", "sample_frames", "id_ranges"]

_MM_BINS = 100_000  # median histogram: 1 mm bins up to 100 m (anything beyond goes to the last bin)


def sample_frames(lengths: list[int], max_frames: int) -> list[list[int]]:
    """Which frame positions to load per scene (see the module docstring for the rule).

    Args:
        lengths: number of frames of each scene.
        max_frames: budget (>= 1).
    Returns:
        For each scene, sorted positions (indices into its ``frame_ids``); possibly empty.
    """
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    total = sum(lengths)
    out: list[list[int]] = [[] for _ in lengths]
    nonempty = [i for i, n in enumerate(lengths) if n > 0]
    if not nonempty:
        return out
    if len(nonempty) > max_frames:
        for k in np.unique(np.linspace(0, len(nonempty) - 1, max_frames).round().astype(int)):
            s = nonempty[k]
            out[s] = [lengths[s] // 2]
        return out
    for s in nonempty:
        n = lengths[s]
        k = min(n, max(1, (max_frames * n) // total))
        out[s] = np.unique(np.linspace(0, n - 1, k).round().astype(int)).tolist()
    return out


def id_ranges(ids: list[int]) -> str:
    """``[1, 2, 3, 7, 9, 10]`` -> ``"1-3, 7, 9-10"``."""
    ids = sorted(ids)
    parts: list[str] = []
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        parts.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ", ".join(parts)


def _k4(K: np.ndarray) -> dict:
    return {"fx": float(K[0, 0]), "fy": float(K[1, 1]), "cx": float(K[0, 2]), "cy": float(K[1, 2])}


def _size(hw) -> dict | None:
    return None if hw is None else {"width": int(hw[1]), "height": int(hw[0])}


def dataset_info(
    path,
    format: str | None = None,
    split=None,
    max_frames: int = 100,
    reader_kwargs: dict | None = None,
    progress: bool = True,
    strict: bool = False,
) -> dict:
    """Scan a dataset and return its statistics as a JSON-serialisable dict.

    Args:
        path: dataset path (any layout :func:`pri3d.data.formats.open_dataset` accepts).
        format: format name; autodetected when None.
        split: scene split (file of scene ids or an iterable), as for ``open_dataset``.
        max_frames: at most this many frames are loaded for image statistics.
        reader_kwargs: passed to the format's reader (e.g. ``{"split_file": "splits.mat"}`` for NYUv2).
        progress: show tqdm bars on stderr.
        strict: a pose or frame the reader refuses (unreadable, truncated, images that do not fit the
            intrinsics) raises its :class:`DataError` instead of being a counted skip.
    """
    path = Path(path)
    fmt = format or detect_format(path)
    scenes: list[Scene] = open_dataset(path, format=fmt, split=split, **(reader_kwargs or {}))
    skips = SkipCounter()
    for s in scenes:
        if getattr(s, "skips", None) is not None:
            skips.merge(s.skips)
    total = sum(len(s) for s in scenes)
    poses = _check_poses(scenes, total, skips, strict, progress)

    # Images: a sample of frames.
    plan = sample_frames([len(s) for s in scenes], max_frames)
    n_sampled = sum(len(p) for p in plan)
    depth = _DepthStats()
    per_scene = []
    with tqdm(total=n_sampled, desc="frames", unit="frame", disable=not progress, leave=False) as bar:
        for s, positions in zip(scenes, plan):
            per_scene.append(_scene_entry(s, positions, depth, skips, strict, bar))

    mod = importlib.import_module(FORMAT_MODULES[fmt])
    surfaces = sum(1 for s in scenes if s.surface_path is not None)
    return {
        "path": str(path),
        "format": fmt,
        "format_description": getattr(mod, "DESCRIPTION", ""),
        "num_scenes": len(scenes),
        "num_frames": total,
        "scenes": per_scene,
        "cameras": _cameras(per_scene),
        "depth": depth.summary(n_sampled, max_frames),
        "poses": poses,
        "all_zero_depth_frames": depth.all_zero,
        "surface": {"scenes_with_surface": surfaces, "num_scenes": len(scenes)},
        "skips": skips.to_dict(),
    }


def _check_poses(scenes: list[Scene], total: int, skips: SkipCounter, strict: bool, progress: bool) -> dict:
    """Every frame's pose checked with :func:`pose_is_valid`; invalid and unreadable ones counted in
    ``skips``. Returns the report's ``poses`` entry."""
    invalid_poses: dict[str, list[int]] = {}
    n_checked = 0
    scenes_without_poses = [s.scene_id for s in scenes if not getattr(s, "has_poses", True)]
    with tqdm(total=total, desc="poses", unit="frame", disable=not progress, leave=False) as bar:
        for s in scenes:
            if not getattr(s, "has_poses", True):
                bar.update(len(s))
                continue
            for fid in s.frame_ids:
                try:
                    ok = pose_is_valid(s.load_pose(fid))
                except DataError as e:
                    if strict:
                        raise
                    skips.add("unreadable pose", str(e))
                    ok = None
                if ok is False:
                    invalid_poses.setdefault(s.scene_id, []).append(fid)
                    skips.add("invalid pose", f"{s.scene_id}:{fid}")
                n_checked += 1
                bar.update(1)
    return {
        "checked": n_checked,
        "invalid": sum(len(v) for v in invalid_poses.values()),
        "invalid_frames": invalid_poses,
        "scenes_without_poses": scenes_without_poses,
    }


class _DepthStats:
    """Depth statistics over the sampled frames: range, median (1 mm histogram), invalid pixels, and the
    frames whose depth is all zero."""

    def __init__(self):
        self.hist = np.zeros(_MM_BINS, dtype=np.int64)
        self.dmin, self.dmax = np.inf, -np.inf
        self.n_pix = self.n_invalid = 0
        self.all_zero: dict[str, list[int]] = {}

    def add(self, scene_id: str, fid: int, d: np.ndarray, skips: SkipCounter) -> None:
        valid = np.isfinite(d) & (d > 0)
        self.n_pix += d.size
        n_valid = int(valid.sum())
        self.n_invalid += d.size - n_valid
        if n_valid == 0:
            self.all_zero.setdefault(scene_id, []).append(fid)
            skips.add("all-zero depth", f"{scene_id}:{fid}")
            return
        v = d[valid]
        self.dmin, self.dmax = min(self.dmin, float(v.min())), max(self.dmax, float(v.max()))
        self.hist += np.bincount(np.minimum((v * 1000).astype(np.int64), _MM_BINS - 1), minlength=_MM_BINS)

    def summary(self, sampled_frames: int, max_frames: int) -> dict:
        """The report's ``depth`` entry."""
        median = None
        if self.hist.sum():
            k = int(np.searchsorted(np.cumsum(self.hist), (self.hist.sum() + 1) // 2))
            median = (k + 0.5) / 1000.0
        return {
            "sampled_frames": sampled_frames,
            "max_frames": max_frames,
            "min_m": None if median is None else self.dmin,
            "median_m": median,
            "max_m": None if median is None else self.dmax,
            "invalid_ratio": (self.n_invalid / self.n_pix) if self.n_pix else None,
        }


def _scene_entry(s: Scene, positions: list[int], depth: _DepthStats, skips: SkipCounter, strict: bool, bar) -> dict:
    """One scene's entry of the report: intrinsics from its first frame, image sizes from its sampled
    frames (whose depth goes into ``depth``), and notes."""
    entry = {
        "scene_id": s.scene_id,
        "frames": len(s),
        "color_size": None,
        "depth_size": None,
        "color_intrinsics": None,
        "depth_intrinsics": None,
        "surface": str(s.surface_path) if s.surface_path is not None else None,
        "label_space": getattr(s, "label_space", None),
        "notes": list(getattr(s, "notes", [])),
    }
    if len(s):
        try:
            f0 = s.load_frame(s.frame_ids[0], color=False, depth=False, labels=False)
            entry["color_intrinsics"] = _k4(f0.color_intrinsics)
            entry["depth_intrinsics"] = _k4(f0.depth_intrinsics)
        except DataError as e:
            skips.add("unreadable frame", str(e))
    for pos in positions:
        fid = s.frame_ids[pos]
        bar.update(1)
        try:
            fr = s.load_frame(fid, labels=False)
        except DataError as e:
            if strict:
                raise
            skips.add("unreadable frame", str(e))
            continue
        entry["color_size"] = entry["color_size"] or _size(fr.color_size)
        entry["depth_size"] = entry["depth_size"] or _size(fr.depth_size)
        depth.add(s.scene_id, fid, fr.depth, skips)
    for which in ("color", "depth"):
        sz, k = entry[f"{which}_size"], entry[f"{which}_intrinsics"]
        if sz and k and not (0 <= k["cx"] <= sz["width"] and 0 <= k["cy"] <= sz["height"]):
            entry["notes"].append(
                f"{which} principal point ({k['cx']:.1f}, {k['cy']:.1f}) lies outside the "
                f"{sz['width']}x{sz['height']} image: intrinsics for another resolution?"
            )
    return entry


def _cameras(per_scene: list[dict]) -> list[dict]:
    """The distinct cameras (image sizes and intrinsics) of the scenes, each with its number of scenes."""
    cameras: dict[tuple, dict] = {}
    for entry in per_scene:
        key = (
            _fmt_size(entry["color_size"]),
            _fmt_k(entry["color_intrinsics"]),
            _fmt_size(entry["depth_size"]),
            _fmt_k(entry["depth_intrinsics"]),
        )
        cam = cameras.setdefault(
            key,
            {k: entry[k] for k in ("color_size", "color_intrinsics", "depth_size", "depth_intrinsics")} | {"scenes": 0},
        )
        cam["scenes"] += 1
    return list(cameras.values())


def _fmt_size(sz: dict | None) -> str:
    return "?" if sz is None else f"{sz['width']}x{sz['height']}"


def _fmt_k(k: dict | None) -> str:
    return "?" if k is None else f"fx={k['fx']:.2f} fy={k['fy']:.2f} cx={k['cx']:.2f} cy={k['cy']:.2f}"


def _fmt_frames(by_scene: dict[str, list[int]], max_scenes: int = 10) -> list[str]:
    lines = [f"    {sid}: {id_ranges(ids)}" for sid, ids in list(by_scene.items())[:max_scenes]]
    if len(by_scene) > max_scenes:
        lines.append(f"    ... and {len(by_scene) - max_scenes} more scenes (see --json)")
    return lines


def format_info(info: dict, max_scenes: int = 20) -> str:
    """Human-readable rendering of :func:`dataset_info`'s dict."""
    L = [
        f"path:      {info['path']}",
        f"format:    {info['format']} ({info['format_description']})",
        f"scenes:    {info['num_scenes']}",
        f"frames:    {info['num_frames']} total",
    ]
    for e in info["scenes"][:max_scenes]:
        L.append(
            f"    {e['scene_id']}: {e['frames']} frames, colour {_fmt_size(e['color_size'])}, "
            f"depth {_fmt_size(e['depth_size'])}, surface {'yes' if e['surface'] else 'no'}"
        )
    if len(info["scenes"]) > max_scenes:
        L.append(f"    ... and {len(info['scenes']) - max_scenes} more scenes (see --json)")
    L.append("cameras:")
    for c in info["cameras"]:
        L.append(f"    colour {_fmt_size(c['color_size'])} {_fmt_k(c['color_intrinsics'])}  ({c['scenes']} scene(s))")
        L.append(f"    depth  {_fmt_size(c['depth_size'])} {_fmt_k(c['depth_intrinsics'])}")
    d = info["depth"]
    if d["median_m"] is None:
        L.append(f"depth:     no valid depth in {d['sampled_frames']} sampled frames")
    else:
        L.append(
            f"depth:     min {d['min_m']:.3f} m, median {d['median_m']:.3f} m, max {d['max_m']:.3f} m; "
            f"invalid {100 * d['invalid_ratio']:.1f} % of pixels  ({d['sampled_frames']} sampled frames, "
            f"--max-frames {d['max_frames']})"
        )
    p = info["poses"]
    if p["scenes_without_poses"] and len(p["scenes_without_poses"]) == info["num_scenes"]:
        L.append("poses:     none in this format (identity poses)")
    else:
        L.append(f"poses:     {p['checked']} checked, {p['invalid']} invalid (non-finite or non-rigid)")
        L.extend(_fmt_frames(p["invalid_frames"]))
    n_zero = sum(len(v) for v in info["all_zero_depth_frames"].values())
    L.append(f"all-zero depth frames: {n_zero} (of the sampled frames)")
    L.extend(_fmt_frames(info["all_zero_depth_frames"]))
    s = info["surface"]
    L.append(
        f"surface:   {'present' if s['scenes_with_surface'] else 'absent'} "
        f"({s['scenes_with_surface']} of {s['num_scenes']} scenes)"
    )
    notes = sorted({n for e in info["scenes"] for n in e["notes"]})
    spaces = sorted({e["label_space"] for e in info["scenes"] if e["label_space"]})
    if spaces:
        L.append(f"labels:    {', '.join(spaces)}")
    for n in notes:
        L.append(f"note:      {n}")
    sk = info["skips"]
    counts = ", ".join(f"{n} {r}" for r, n in sorted(sk["counts"].items()))
    L.append(f"skipped:   {sk['total']}" + (f" ({counts})" if counts else ""))
    for reason, examples in sorted(sk.get("examples", {}).items()):
        if examples and reason not in ("invalid pose", "all-zero depth"):  # those are listed by frame above
            L.append(
                f"  {reason}: {examples[0]}"
                + (f" (and {sk['counts'][reason] - 1} more)" if sk["counts"][reason] > 1 else "")
            )
    return "\n".join(L)


def summary_line(info: dict) -> str:
    """One line: scenes, frames, invalid poses, all-zero depth frames, skips."""
    n_zero = sum(len(v) for v in info["all_zero_depth_frames"].values())
    return (
        f"{info['format']}: {info['num_scenes']} scenes, {info['num_frames']} frames, "
        f"{info['poses']['invalid']} invalid poses, {n_zero} all-zero depth frames, "
        f"{info['skips']['total']} skips"
    )
