"""TUM RGB-D benchmark sequences (``rgbd_dataset_freiburg1_xyz/`` ...).

A sequence folder holds ``rgb.txt`` and ``depth.txt`` (lines ``timestamp filename``), the images they
name (``rgb/*.png`` 8-bit RGB, ``depth/*.png`` uint16 with 5000 values per metre) and
``groundtruth.txt`` (lines ``timestamp tx ty tz qx qy qz qw``: the colour camera's optical centre in
the world frame, i.e. camera-to-world in OpenCV camera axes). ``#`` lines are comments.

Association: every colour image is paired one-to-one with the depth image nearest in time, and each
pair with the ground-truth pose nearest to the colour timestamp; a match counts only when the
timestamps differ by at most ``max_dt`` seconds (default 0.02). Colour images without a match are
left out (counted in ``scene.skips``). Frame ids are indices in the associated list (0, 1, ...).
Without ``groundtruth.txt`` (benchmark test sequences) every pose is NaN, so ``pose_valid`` is False.

Intrinsics: the Freiburg calibrations by sequence name (``freiburg1``/``fr1``, ``fr2``, ``fr3``),
otherwise TUM's default (fx = fy = 525, cx = 319.5, cy = 239.5); the ``intrinsics`` argument
overrides. The images are not undistorted (fr1/fr2 have small radial distortion). Colour and depth
share K (TUM's depth images are registered to colour).

The dataset path may be one sequence or a folder of sequences.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from pri3d.data.io import intrinsics3, read_shared_k_frame
from pri3d.data.scene import Frame, Scene, SkipCounter
from pri3d.errors import DataError

__all__ = ["quaternion_to_matrix", "associate", "freiburg_intrinsics", "TUMSequence", "detect", "open_scenes"]

NAME = "tum"
DESCRIPTION = "TUM RGB-D sequences (rgb.txt, depth.txt, groundtruth.txt)"
DEPTH_SCALE = 5000.0

# (fx, fy, cx, cy) of the TUM RGB-D cameras, from the benchmark's calibration page.
FREIBURG_INTRINSICS = {
    "fr1": (517.3, 516.5, 318.6, 255.3),
    "fr2": (520.9, 521.0, 325.1, 249.7),
    "fr3": (535.4, 539.2, 320.1, 247.6),
    "default": (525.0, 525.0, 319.5, 239.5),
}


def quaternion_to_matrix(q) -> np.ndarray:
    """Unit quaternion(s) ``(..., 4)`` in TUM order ``(qx, qy, qz, qw)`` -> rotation ``(..., 3, 3)``.

    The quaternion is normalised first (a zero quaternion gives NaN). ``q`` and ``-q`` give the
    same rotation.
    """
    q = np.asarray(q, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    R = np.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
            2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
            2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
        ],
        axis=-1,
    )  # fmt: skip
    return R.reshape(q.shape[:-1] + (3, 3))


def associate(t_a: np.ndarray, t_b: np.ndarray, max_dt: float) -> np.ndarray:
    """One-to-one nearest-timestamp matching between two sorted-or-not timestamp lists.

    Candidate pairs (each ``a`` with its nearest ``b`` on either side) are accepted greedily in
    order of increasing time difference, each ``b`` at most once, keeping ``|t_a - t_b| <= max_dt``.

    Args:
        t_a: ``(Na,)`` seconds; t_b: ``(Nb,)`` seconds.
    Returns:
        ``(Na,)`` int64 index into ``t_b`` for each ``a``, -1 where unmatched.
    """
    t_a = np.asarray(t_a, dtype=np.float64)
    t_b = np.asarray(t_b, dtype=np.float64)
    out = np.full(len(t_a), -1, dtype=np.int64)
    if len(t_a) == 0 or len(t_b) == 0:
        return out
    order = np.argsort(t_b, kind="stable")
    sb = t_b[order]
    pos = np.searchsorted(sb, t_a)
    cand_a, cand_b = [], []
    for shift in (-1, 0):
        j = np.clip(pos + shift, 0, len(sb) - 1)
        cand_a.append(np.arange(len(t_a)))
        cand_b.append(j)
    ca, cb = np.concatenate(cand_a), np.concatenate(cand_b)
    diff = np.abs(t_a[ca] - sb[cb])
    keep = diff <= max_dt
    ca, cb, diff = ca[keep], cb[keep], diff[keep]
    used = np.zeros(len(sb), dtype=bool)
    for k in np.argsort(diff, kind="stable"):
        a, b = ca[k], cb[k]
        if out[a] < 0 and not used[b]:
            out[a] = order[b]
            used[b] = True
    return out


def nearest(t_a: np.ndarray, t_b: np.ndarray, max_dt: float) -> np.ndarray:
    """Index of the nearest ``t_b`` for each ``t_a`` (many-to-one), -1 beyond ``max_dt``.
    ``t_a``: ``(Na,)``, ``t_b``: ``(Nb,)`` -> ``(Na,)`` int64."""
    t_a = np.asarray(t_a, dtype=np.float64)
    t_b = np.asarray(t_b, dtype=np.float64)
    if len(t_b) == 0:
        return np.full(len(t_a), -1, dtype=np.int64)
    order = np.argsort(t_b, kind="stable")
    sb = t_b[order]
    pos = np.searchsorted(sb, t_a)
    lo = np.clip(pos - 1, 0, len(sb) - 1)
    hi = np.clip(pos, 0, len(sb) - 1)
    pick = np.where(np.abs(t_a - sb[lo]) <= np.abs(t_a - sb[hi]), lo, hi)
    out = order[pick].astype(np.int64)
    out[np.abs(t_a - sb[pick]) > max_dt] = -1
    return out


def freiburg_intrinsics(sequence_name: str) -> tuple[np.ndarray, str]:
    """K (3x3) for a TUM sequence by its name, and the calibration key used (fr1/fr2/fr3/default)."""
    m = re.search(r"(?:freiburg|fr)([123])", sequence_name.lower())
    key = f"fr{m.group(1)}" if m else "default"
    fx, fy, cx, cy = FREIBURG_INTRINSICS[key]
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]), key


def _read_list(path: Path, min_cols: int) -> list[list[str]]:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.replace(",", " ").split()
        if len(parts) < min_cols:
            raise DataError(f"{path}:{n}: expected {min_cols} columns, got {len(parts)}: {line!r}")
        rows.append(parts)
    return rows


def _timestamps(rows, path: Path) -> np.ndarray:
    try:
        return np.array([float(r[0]) for r in rows], dtype=np.float64)
    except ValueError as e:
        raise DataError(f"{path}: bad timestamp ({e})") from e


def _is_sequence(p: Path) -> bool:
    return p.is_dir() and (p / "rgb.txt").is_file() and (p / "depth.txt").is_file()


def detect(path: Path) -> bool:
    path = Path(path)
    if _is_sequence(path):
        return True
    return path.is_dir() and any(_is_sequence(c) for c in sorted(path.iterdir())[:50])


class TUMSequence(Scene):
    format_name = NAME

    def __init__(self, root: Path, *, max_dt: float = 0.02, intrinsics: np.ndarray | None = None):
        self.root = Path(root)
        self.scene_id = self.root.name
        self.notes: list[str] = []
        self.skips = SkipCounter()
        rgb_rows = _read_list(self.root / "rgb.txt", 2)
        depth_rows = _read_list(self.root / "depth.txt", 2)
        t_rgb = _timestamps(rgb_rows, self.root / "rgb.txt")
        t_depth = _timestamps(depth_rows, self.root / "depth.txt")
        match_d = associate(t_rgb, t_depth, max_dt)

        gt_path = self.root / "groundtruth.txt"
        if gt_path.is_file():
            gt_rows = _read_list(gt_path, 8)
            try:
                gt = np.array([[float(x) for x in r[:8]] for r in gt_rows], dtype=np.float64).reshape(-1, 8)
            except ValueError as e:
                raise DataError(f"{gt_path}: not numeric ({e})") from e
            match_p = nearest(t_rgb, gt[:, 0], max_dt)
        else:
            gt = None
            match_p = np.zeros(len(t_rgb), dtype=np.int64)
            self.notes.append("no groundtruth.txt: poses are NaN (invalid)")

        self._rgb: list[Path] = []
        self._depth: list[Path] = []
        poses, stamps = [], []
        for i, row in enumerate(rgb_rows):
            what = f"{self.scene_id}:rgb {row[1]}"
            if match_d[i] < 0:
                self.skips.add(f"colour without depth within {max_dt}s", what)
                continue
            if match_p[i] < 0:
                self.skips.add(f"colour without pose within {max_dt}s", what)
                continue
            self._rgb.append(self.root / row[1])
            stamps.append(t_rgb[i])
            self._depth.append(self.root / depth_rows[match_d[i]][1])
            if gt is None:
                poses.append(np.full((4, 4), np.nan))
            else:
                T = np.eye(4)
                T[:3, :3] = quaternion_to_matrix(gt[match_p[i], 4:8])
                T[:3, 3] = gt[match_p[i], 1:4]
                poses.append(T)
        if not self._rgb:
            raise DataError(f"{self.root}: no colour image could be associated with depth and pose within {max_dt}s")
        self._poses = np.stack(poses)
        self.timestamps = np.array(stamps)  # colour timestamp of each frame id
        self.frame_ids = list(range(len(self._rgb)))
        if intrinsics is not None:
            self.K = intrinsics3(np.asarray(intrinsics, dtype=np.float64).reshape(3, 3), "intrinsics argument")
            self.calibration = "override"
        else:
            self.K, self.calibration = freiburg_intrinsics(self.scene_id)
            if self.calibration == "default":
                self.notes.append("sequence name names no Freiburg camera; using TUM's default K (525, 319.5, 239.5)")

    def load_pose(self, frame_id: int) -> np.ndarray:
        if not 0 <= frame_id < len(self.frame_ids):
            raise DataError(f"{self.root}: no frame {frame_id}")
        return self._poses[frame_id].copy()

    def load_frame(self, frame_id: int, *, color: bool = True, depth: bool = True, labels: bool = True) -> Frame:
        pose = self.load_pose(frame_id)
        c, d = self._rgb[frame_id], self._depth[frame_id]  # depth registered to colour
        return read_shared_k_frame(self.scene_id, frame_id, self.K, pose, c, d, DEPTH_SCALE, color=color, depth=depth)


def open_scenes(path: Path, max_dt: float = 0.02, intrinsics: np.ndarray | None = None) -> list[Scene]:
    """Open one TUM sequence or a folder of them. ``max_dt``: association tolerance in seconds;
    ``intrinsics``: 3x3 K overriding the Freiburg calibration chosen by name."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if _is_sequence(path):
        seqs = [path]
    else:
        seqs = [c for c in sorted(path.iterdir()) if _is_sequence(c)] if path.is_dir() else []
    if not seqs:
        raise DataError(f"{path}: no TUM sequence (folder with rgb.txt and depth.txt) found")
    return [TUMSequence(s, max_dt=max_dt, intrinsics=intrinsics) for s in seqs]
