"""Classes used by the synthetic generator (NYU-40 ids, the label space of ScanNet's exports)."""

from __future__ import annotations

# NYU-40 id -> name, for every class the generator writes. The 20 ScanNet benchmark classes plus
# the ceiling (22), which ScanNet-20 ignores like the real ScanNet labels do.
CLASSES: dict[int, str] = {
    1: "wall",
    2: "floor",
    3: "cabinet",
    4: "bed",
    5: "chair",
    6: "sofa",
    7: "table",
    8: "door",
    9: "window",
    10: "bookshelf",
    11: "picture",
    12: "counter",
    14: "desk",
    16: "curtain",
    22: "ceiling",
    24: "refrigerator",
    28: "shower curtain",
    33: "toilet",
    34: "sink",
    36: "bathtub",
    39: "otherfurniture",
}
NAME_TO_ID: dict[str, int] = {v: k for k, v in CLASSES.items()}
# The ScanNet-20 benchmark classes (NYU-40 ids), in the benchmark's order.
SCANNET20_IDS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)

WALL, FLOOR, CEILING = 1, 2, 22
