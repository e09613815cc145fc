"""The RGB-D scene model: :class:`Frame` and :class:`Scene`.

Every on-disk format is turned into :class:`Scene` objects by a reader in
:mod:`pri3d.data.formats`. A Scene lists its frame ids and loads frames lazily, one at a time, so a
whole scan is never held in memory.

Conventions: depth in metres (float32, 0 = invalid); intrinsics 3x3 float64; poses camera-to-world
4x4 float64 in the OpenCV camera convention (x right, y down, z forward). Colour and depth may have
different sizes and intrinsics; both cameras share a centre (registered RGB-D).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pri3d.errors import DataError
from pri3d.geometry.camera import pose_is_valid

__all__ = ["Frame", "Scene", "SkipCounter", "DataError"]


@dataclass
class Frame:
    """One RGB-D frame.

    Attributes:
        scene_id: the scene it belongs to.
        frame_id: integer id from the source naming (300 for ``frame-000300.*``).
        color: ``(Hc, Wc, 3)`` uint8 RGB, or None when not loaded.
        depth: ``(Hd, Wd)`` float32 metres, 0 = invalid, or None when not loaded.
        color_intrinsics: ``(3, 3)`` float64, for the colour image's size.
        depth_intrinsics: ``(3, 3)`` float64, for the depth image's size.
        pose: ``(4, 4)`` float64 camera-to-world. May be non-finite in the source (check
            :attr:`pose_valid`).
        label: optional ``(Hl, Wl)`` int32 semantic ids in the dataset's raw label space
            (NYU-40 ids for ScanNet and the generator; 0 = unannotated).
        instance: optional ``(Hl, Wl)`` int32 instance ids (0 = none).
    """

    scene_id: str
    frame_id: int
    color: np.ndarray | None
    depth: np.ndarray | None
    color_intrinsics: np.ndarray
    depth_intrinsics: np.ndarray
    pose: np.ndarray
    label: np.ndarray | None = None
    instance: np.ndarray | None = None

    @property
    def pose_valid(self) -> bool:
        return pose_is_valid(self.pose)

    @property
    def color_size(self) -> tuple[int, int] | None:
        """``(H, W)`` of the colour image, when loaded."""
        return None if self.color is None else tuple(self.color.shape[:2])

    @property
    def depth_size(self) -> tuple[int, int] | None:
        return None if self.depth is None else tuple(self.depth.shape[:2])


class Scene:
    """A sequence of RGB-D frames with poses; subclasses implement the loading.

    Subclasses set ``scene_id``, ``frame_ids`` (sorted list of ints), ``root`` and optionally
    ``surface_path``, and implement :meth:`load_frame` and :meth:`load_pose`.
    """

    scene_id: str
    frame_ids: list[int]
    root: Path
    surface_path: Path | None = None
    format_name: str = "?"
    has_poses: bool = True  # False for single-view data (NYUv2): identity poses, downstream only
    label_space: str | None = None  # e.g. "nyu40" when frames carry NYU-40 labels
    notes: tuple[str, ...] = ()  # reader remarks shown by `pri3d info`
    skips: SkipCounter | None = None  # frames the reader dropped (e.g. TUM association), counted

    def __len__(self) -> int:
        return len(self.frame_ids)

    def load_frame(self, frame_id: int, *, color: bool = True, depth: bool = True, labels: bool = True) -> Frame:
        """Load one frame. Missing or unreadable files raise :class:`DataError` naming the path."""
        raise NotImplementedError

    def load_pose(self, frame_id: int) -> np.ndarray:
        """The ``(4, 4)`` float64 camera-to-world pose alone (cheap; may be non-finite)."""
        return self.load_frame(frame_id, color=False, depth=False, labels=False).pose

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.scene_id!r}, {len(self.frame_ids)} frames, root={str(self.root)!r})"


@dataclass
class SkipCounter:
    """Counts skipped items by reason, remembering a few examples of each for the report."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    max_examples: int = 10

    def add(self, reason: str, what: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < self.max_examples:
            ex.append(what)

    def merge(self, other: SkipCounter) -> None:
        for reason, n in other.counts.items():
            self.counts[reason] = self.counts.get(reason, 0) + n
            ex = self.examples.setdefault(reason, [])
            ex.extend(other.examples.get(reason, [])[: max(0, self.max_examples - len(ex))])

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict:
        return {"total": self.total, "counts": dict(self.counts), "examples": dict(self.examples)}

    def summary(self) -> str:
        if not self.counts:
            return "no skips"
        return ", ".join(f"{n} {reason}" for reason, n in sorted(self.counts.items()))
