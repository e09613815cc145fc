"""Every label mapping used downstream, as data, in one place.

Raw labels in a :class:`~pri3d.data.scene.Frame` are **NYU-40 ids** (1..40, 0 = unannotated) for every
dataset pri3d reads (ScanNet, NYUv2, the synthetic generator). A :class:`LabelSet` maps them to the
contiguous training ids of one benchmark:

* ``scannet20``: the ScanNet benchmark's 20 classes = NYU-40 ids 1-12, 14, 16, 24, 28, 33, 34, 36, 39.
* ``nyu40``: all 40 NYU-40 classes (train id = NYU-40 id - 1).
* ``nyu13``: the 13 classes of Couprie et al. through the published 40 -> 13 table
  (``class13Mapping.mat`` of the NYUv2 meta data).

Instance sets (Mask R-CNN), category ids 1..K (0 = background):

* ``scannet18``: ``scannet20`` without wall and floor.
* ``nyu9``: ``nyu13`` without ceiling, floor, objects and wall (what the official NYUv2 instance
  conversion kept).

Semantic segmentation ids are ``0..K-1``; :data:`IGNORE_INDEX` (255) marks pixels that do not count
(unannotated, a class outside the set, or an id outside the NYU-40 range, which is also counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "IGNORE_INDEX",
    "NYU40_NAMES",
    "SCANNET20_NYU40_IDS",
    "NYU13_NAMES",
    "NYU40_TO_NYU13",
    "SCANNET18_NYU40_IDS",
    "NYU9_NYU13_IDS",
    "LabelSet",
    "LABEL_SETS",
    "INSTANCE_SETS",
    "get_label_set",
    "get_instance_set",
]

IGNORE_INDEX = 255

# NYU-40 class names; NYU-40 id i is NYU40_NAMES[i - 1].
NYU40_NAMES: tuple[str, ...] = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror", "floor mat",
    "clothes", "ceiling", "books", "refrigerator", "television", "paper", "towel", "shower curtain", "box",
    "whiteboard", "person", "night stand", "toilet", "sink", "lamp", "bathtub", "bag", "otherstructure",
    "otherfurniture", "otherprop",
)  # fmt: skip

# ScanNet benchmark (20 classes), in benchmark order.
SCANNET20_NYU40_IDS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)

# NYU-13 (Couprie et al.), NYU-13 id j is NYU13_NAMES[j - 1].
NYU13_NAMES: tuple[str, ...] = (
    "bed", "books", "ceiling", "chair", "floor", "furniture", "objects", "picture", "sofa", "table", "tv",
    "wall", "window",
)  # fmt: skip

# NYU-40 id -> NYU-13 id (index 0 = unannotated -> 0). The published class13Mapping table.
NYU40_TO_NYU13: tuple[int, ...] = (
    0, 12, 5, 6, 1, 4, 9, 10, 12, 13, 6, 8, 6, 13, 10, 6, 13, 6, 7, 7, 5,
    7, 3, 2, 6, 11, 7, 7, 7, 7, 7, 7, 6, 7, 7, 7, 7, 7, 7, 6, 7,
)  # fmt: skip

# Instance classes.
SCANNET18_NYU40_IDS: tuple[int, ...] = tuple(i for i in SCANNET20_NYU40_IDS if i not in (1, 2))
NYU9_NYU13_IDS: tuple[int, ...] = (
    1,
    2,
    4,
    6,
    8,
    9,
    10,
    11,
    13,
)  # bed books chair furniture picture sofa table tv window


@dataclass(frozen=True)
class LabelSet:
    """A mapping from raw NYU-40 ids to contiguous ids.

    Attributes:
        name: registry name.
        class_names: names of the K output classes, in id order.
        lut: ``(41,)`` int64 table from NYU-40 id (0..40) to output id, or ``unmapped`` for ids outside
            the set (including 0 = unannotated).
        unmapped: the output value for ignored pixels (255 for semantic sets, 0 = background for
            instance sets).
        first_id: 0 for semantic sets (ids 0..K-1), 1 for instance sets (category ids 1..K).
    """

    name: str
    class_names: tuple[str, ...]
    lut: np.ndarray = field(repr=False)
    unmapped: int
    first_id: int

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def map(self, raw: np.ndarray) -> tuple[np.ndarray, int]:
        """Map raw NYU-40 ids ``(H, W)`` to output ids ``(H, W)`` int64.

        Returns ``(mapped, n_unknown)``: pixels whose id is outside 0..40 (not a NYU-40 id at all) are
        set to ``unmapped`` and counted in ``n_unknown``, so a label file in another id space is
        noticed instead of silently training on garbage."""
        raw = np.asarray(raw)
        unknown = (raw < 0) | (raw >= len(self.lut))
        n_unknown = int(unknown.sum())
        safe = np.where(unknown, 0, raw)
        out = self.lut[safe]
        if n_unknown:
            out[unknown] = self.unmapped
        return out, n_unknown


def _from_nyu40_ids(name: str, ids: tuple[int, ...], *, semantic: bool) -> LabelSet:
    first = 0 if semantic else 1
    unmapped = IGNORE_INDEX if semantic else 0
    lut = np.full(41, unmapped, dtype=np.int64)
    for k, nyu40 in enumerate(ids):
        lut[nyu40] = k + first
    return LabelSet(name, tuple(NYU40_NAMES[i - 1] for i in ids), lut, unmapped, first)


def _nyu13(name: str, nyu13_ids: tuple[int, ...], *, semantic: bool) -> LabelSet:
    first = 0 if semantic else 1
    unmapped = IGNORE_INDEX if semantic else 0
    to_out = {j: k + first for k, j in enumerate(nyu13_ids)}
    lut = np.array([to_out.get(j, unmapped) if j else unmapped for j in NYU40_TO_NYU13], dtype=np.int64)
    return LabelSet(name, tuple(NYU13_NAMES[j - 1] for j in nyu13_ids), lut, unmapped, first)


LABEL_SETS: dict[str, LabelSet] = {
    "scannet20": _from_nyu40_ids("scannet20", SCANNET20_NYU40_IDS, semantic=True),
    "nyu40": _from_nyu40_ids("nyu40", tuple(range(1, 41)), semantic=True),
    "nyu13": _nyu13("nyu13", tuple(range(1, 14)), semantic=True),
}

INSTANCE_SETS: dict[str, LabelSet] = {
    "scannet18": _from_nyu40_ids("scannet18", SCANNET18_NYU40_IDS, semantic=False),
    "nyu9": _nyu13("nyu9", NYU9_NYU13_IDS, semantic=False),
}


def get_label_set(name: str) -> LabelSet:
    from pri3d.errors import ConfigError

    if name not in LABEL_SETS:
        raise ConfigError(f"unknown semantic label set {name!r}; choose one of {', '.join(LABEL_SETS)}")
    return LABEL_SETS[name]


def get_instance_set(name: str) -> LabelSet:
    from pri3d.errors import ConfigError

    if name not in INSTANCE_SETS:
        raise ConfigError(f"unknown instance class set {name!r}; choose one of {', '.join(INSTANCE_SETS)}")
    return INSTANCE_SETS[name]
