"""Microsoft 7-Scenes and 3DMatch RGB-D sequences.

A sequence folder holds ``frame-XXXXXX.color.png`` (or ``.color.jpg``), ``frame-XXXXXX.depth.png``
(uint16 millimetres; 0 and 65535 = invalid) and ``frame-XXXXXX.pose.txt`` (4x4 camera-to-world,
OpenCV camera axes). Frame id = ``int(XXXXXX)``.

Intrinsics come from ``camera-intrinsics.txt`` (3x3) in the sequence folder or its parent (3DMatch
keeps it one level up). It is the depth camera's K and is used for colour too (7-Scenes gives no
colour calibration, so colour is slightly misaligned with depth); so colour and depth must both be the
size K describes (640x480), else reading the frame is a :class:`DataError` naming the file. Without
the file, the ``intrinsics`` argument is used, else 7-Scenes' published K (fx = fy = 585, cx = 320,
cy = 240) with a note.

The dataset path may be one sequence, a folder of sequences (``redkitchen/seq-01 ...``) or a folder
of such folders (the 7-Scenes root). Scene ids are the sequence folder's name, prefixed with its
parent's name when the folder is called ``seq-NN`` (``redkitchen_seq-01``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from pri3d.data.io import intrinsics3, read_matrix, read_shared_k_frame
from pri3d.data.scene import Frame, Scene
from pri3d.errors import DataError

NAME = "7scenes"
DESCRIPTION = "Microsoft 7-Scenes / 3DMatch sequences (frame-XXXXXX.{color,depth}.png, pose.txt)"
DEPTH_SCALE = 1000.0
DEFAULT_K = np.array([[585.0, 0.0, 320.0], [0.0, 585.0, 240.0], [0.0, 0.0, 1.0]])
INTRINSICS_FILE = "camera-intrinsics.txt"

_FRAME_RE = re.compile(r"^frame-(\d+)\.(color\.png|color\.jpg|depth\.png|pose\.txt)$")


def _scan(folder: Path) -> dict[str, dict[int, Path]]:
    files: dict[str, dict[int, Path]] = {"color": {}, "depth": {}, "pose": {}}
    for f in folder.iterdir():
        m = _FRAME_RE.match(f.name)
        if m:
            kind = m.group(2).split(".")[0]
            files[kind][int(m.group(1))] = f
    return files


def _is_sequence(p: Path) -> bool:
    if not p.is_dir():
        return False
    try:
        return any(_FRAME_RE.match(f.name) and f.name.endswith(".depth.png") for f in p.iterdir())
    except OSError:
        return False


def _sequences(path: Path, depth: int = 2) -> list[Path]:
    if _is_sequence(path):
        return [path]
    if depth == 0 or not path.is_dir():
        return []
    out: list[Path] = []
    for c in sorted(path.iterdir()):
        if c.is_dir():
            out.extend(_sequences(c, depth - 1))
    return out


def detect(path: Path) -> bool:
    path = Path(path)
    if _is_sequence(path):
        return True
    if not path.is_dir():
        return False
    for c in sorted(path.iterdir())[:50]:
        if _is_sequence(c) or (c.is_dir() and any(_is_sequence(g) for g in sorted(c.iterdir())[:20])):
            return True
    return False


class SevenScenesSequence(Scene):
    format_name = NAME

    def __init__(self, root: Path, intrinsics: np.ndarray | None = None):
        self.root = Path(root)
        self.notes: list[str] = []
        name = self.root.name
        self.scene_id = f"{self.root.parent.name}_{name}" if re.fullmatch(r"seq-\d+", name) else name
        files = _scan(self.root)
        self._color, self._depth, self._pose = files["color"], files["depth"], files["pose"]
        self.frame_ids = sorted(set(self._color) & set(self._depth) & set(self._pose))
        if not self.frame_ids:
            raise DataError(f"{self.root}: no frame has all of frame-N.color.png/.jpg, .depth.png and .pose.txt")
        incomplete = len(set(self._color) | set(self._depth) | set(self._pose)) - len(self.frame_ids)
        if incomplete:
            self.notes.append(f"{incomplete} frame ids lack a colour, depth or pose file and are not listed")
        self.K = self._intrinsics(intrinsics)

    def _intrinsics(self, override) -> np.ndarray:
        for folder in (self.root, self.root.parent):
            p = folder / INTRINSICS_FILE
            if p.is_file():
                return intrinsics3(read_matrix(p), p)
        if override is not None:
            return intrinsics3(np.asarray(override, dtype=np.float64), "intrinsics argument")
        self.notes.append(f"no {INTRINSICS_FILE}; using 7-Scenes' published K (fx=fy=585, cx=320, cy=240)")
        return DEFAULT_K.copy()

    def load_pose(self, frame_id: int) -> np.ndarray:
        if frame_id not in self._pose:
            raise DataError(f"{self.root}: no frame {frame_id}")
        return read_matrix(self._pose[frame_id], (4, 4))

    def load_frame(self, frame_id: int, *, color: bool = True, depth: bool = True, labels: bool = True) -> Frame:
        pose = self.load_pose(frame_id)
        c, d = self._color[frame_id], self._depth[frame_id]  # 640x480 both
        return read_shared_k_frame(self.scene_id, frame_id, self.K, pose, c, d, DEPTH_SCALE, color=color, depth=depth)


def open_scenes(path: Path, intrinsics: np.ndarray | None = None) -> list[Scene]:
    """Open one sequence or a folder (of folders) of sequences. ``intrinsics`` (3x3) is used for
    sequences without a ``camera-intrinsics.txt``."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    seqs = _sequences(path)
    if not seqs:
        raise DataError(f"{path}: no 7-Scenes/3DMatch sequence (frame-XXXXXX.depth.png files) found")
    return [SevenScenesSequence(s, intrinsics) for s in seqs]
