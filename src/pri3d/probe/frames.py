"""Which frames a probe fits on or scores: a dataset (any format ``pri3d info`` reads) or a prepared
folder (``pri3d prepare``: its kept frames), an optional split, and an evenly spaced subset.

:func:`open_frames` returns a :class:`FrameSet`, a list of ``(scene, frame_id)`` references; frames are
loaded one at a time (:meth:`FrameSet.load`), so a whole scan is never held in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pri3d.data.formats import open_dataset
from pri3d.data.info import sample_frames
from pri3d.data.scene import Frame, Scene
from pri3d.data.splits import resolve_split
from pri3d.errors import DataError

__all__ = ["FrameSet", "FrameList", "open_frames", "pick_pixels"]


@dataclass
class FrameSet:
    """Frames of one dataset, in order (scene id, then frame id).

    Attributes:
        path: the dataset or prepared folder given.
        refs: ``(scene, frame_id)`` pairs.
        description: one line for reports (what was opened, which split, how many frames).
    """

    path: Path
    refs: list[tuple[Scene, int]] = field(default_factory=list)
    description: str = ""

    def __len__(self) -> int:
        return len(self.refs)

    def load(self, i: int, *, depth: bool = True, labels: bool = True) -> Frame:
        scene, fid = self.refs[i]
        return scene.load_frame(fid, color=True, depth=depth, labels=labels)

    def names(self) -> list[str]:
        return [f"{s.scene_id}/{f}" for s, f in self.refs]


def open_frames(path, *, split: str | None = None, max_frames: int | None = None) -> FrameSet:
    """The frames of ``path``.

    Args:
        path: a dataset (format autodetected, as ``pri3d info``) or a folder written by ``pri3d prepare``
            (its ``params.json`` names the dataset; only the frames it kept are used).
        split: ``None``/``"all"``, a split name looked up under ``path`` (``splits/<name>.txt``,
            ``scannetv2_<name>.txt``; see :func:`pri3d.data.splits.resolve_split`) or a split file; frame
            ranges in the file are honoured.
        max_frames: keep at most this many frames, evenly spaced over the scenes
            (:func:`pri3d.data.info.sample_frames`, the rule of ``pri3d info``).

    Raises :class:`DataError` naming the path when it does not exist, holds no frames, or the split
    names none of its frames.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if (path / "params.json").is_file():  # a prepared folder
        from pri3d.pairs.store import PreparedData

        prepared = PreparedData(path)
        scenes = [prepared.scenes()[s] for s in prepared.scene_ids() if s in prepared.scenes()]
        frames = {s.scene_id: prepared.frame_ids(s.scene_id) for s in scenes}
        roots = [path, prepared.input_path]
        what = f"prepared {path} ({prepared.format} at {prepared.input_path})"
    else:
        scenes = open_dataset(path)
        frames = {s.scene_id: list(s.frame_ids) for s in scenes}
        roots = [path]
        what = str(path)
    if split and split != "all":
        chosen = resolve_split(split, roots)
        if chosen is None:
            raise DataError(
                f"{path}: no split {split!r} (looked for splits/{split}.txt and scannetv2_{split}.txt); "
                "pass a split file or 'all'"
            )
        frames = {sid: [f for f in fs if chosen.contains(sid, f)] for sid, fs in frames.items()}
        what += f", split {split!r}"
    scenes = [s for s in scenes if frames.get(s.scene_id)]
    if not scenes:
        raise DataError(f"{path}: no frames{' in split ' + repr(split) if split and split != 'all' else ''}")
    total = sum(len(frames[s.scene_id]) for s in scenes)
    if max_frames is not None and max_frames < total:
        if max_frames < 1:
            raise DataError(f"max_frames must be >= 1, got {max_frames}")
        pos = sample_frames([len(frames[s.scene_id]) for s in scenes], int(max_frames))
        refs = [(s, frames[s.scene_id][p]) for s, ps in zip(scenes, pos) for p in ps]
    else:
        refs = [(s, f) for s in scenes for f in frames[s.scene_id]]
    desc = f"{what}: {len(refs)} of {total} frames in {len({s.scene_id for s, _ in refs})} scene(s)"
    return FrameSet(path, refs, desc)


class FrameList:
    """Frames already in memory, with the interface of :class:`FrameSet` (tests, Python callers)."""

    def __init__(self, frames: list[Frame], path="<memory>"):
        self.frames = list(frames)
        self.path = Path(path)
        self.description = f"{len(self.frames)} in-memory frames"

    def __len__(self) -> int:
        return len(self.frames)

    def load(self, i: int, *, depth: bool = True, labels: bool = True) -> Frame:
        return self.frames[i]

    def names(self) -> list[str]:
        return [f"{f.scene_id}/{f.frame_id}" for f in self.frames]


def pick_pixels(valid: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` distinct pixels drawn uniformly from the ``True`` pixels of ``valid`` ``(H, W)`` (all of them
    when there are fewer), as ``(m, 2)`` int64 ``(u, v)`` = (column, row), in a fixed order for a seed."""
    rows, cols = np.nonzero(valid)
    if len(rows) > n:
        keep = np.sort(np.random.default_rng(seed).choice(len(rows), size=n, replace=False))
        rows, cols = rows[keep], cols[keep]
    return np.stack([cols, rows], axis=1).astype(np.int64)
