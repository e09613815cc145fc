import numpy as np
import pytest

from pri3d.downstream.classes import (
    IGNORE_INDEX,
    INSTANCE_SETS,
    LABEL_SETS,
    NYU40_NAMES,
    get_instance_set,
    get_label_set,
)
from pri3d.errors import ConfigError

# The ScanNet benchmark (util.py of ScanNet's evaluation scripts): VALID_CLASS_IDS and CLASS_LABELS.
SCANNET_VALID_CLASS_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39]
SCANNET_CLASS_LABELS = [
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture",
    "counter", "desk", "curtain", "refrigerator", "shower curtain", "toilet", "sink", "bathtub", "otherfurniture",
]  # fmt: skip

# class13Mapping (NYUv2 meta data): NYU-40 id (1..40) -> NYU-13 id, and the 13 names.
PUBLISHED_40_TO_13 = [12, 5, 6, 1, 4, 9, 10, 12, 13, 6, 8, 6, 13, 10, 6, 13, 6, 7, 7, 5,
                      7, 3, 2, 6, 11, 7, 7, 7, 7, 7, 7, 6, 7, 7, 7, 7, 7, 7, 6, 7]  # fmt: skip
PUBLISHED_13 = ["bed", "books", "ceiling", "chair", "floor", "furniture", "objects", "picture", "sofa", "table",
                "tv", "wall", "window"]  # fmt: skip


def test_nyu40_names():
    assert len(NYU40_NAMES) == 40
    assert NYU40_NAMES[0] == "wall" and NYU40_NAMES[21] == "ceiling" and NYU40_NAMES[39] == "otherprop"
    s = get_label_set("nyu40")
    out, _ = s.map(np.arange(41))
    assert out[0] == IGNORE_INDEX and list(out[1:]) == list(range(40))


def test_scannet20_matches_benchmark_table():
    s = get_label_set("scannet20")
    assert list(s.class_names) == SCANNET_CLASS_LABELS
    out, n_unknown = s.map(np.arange(41))
    assert n_unknown == 0
    for nyu40 in range(41):
        if nyu40 in SCANNET_VALID_CLASS_IDS:
            assert out[nyu40] == SCANNET_VALID_CLASS_IDS.index(nyu40)
        else:
            assert out[nyu40] == IGNORE_INDEX  # 0 and e.g. 13 (blinds), 40 (otherprop) are ignored


def test_nyu13_matches_published_table():
    s = get_label_set("nyu13")
    assert list(s.class_names) == PUBLISHED_13
    out, _ = s.map(np.arange(1, 41))
    assert list(out + 1) == PUBLISHED_40_TO_13
    # spot checks by name
    assert s.class_names[out[NYU40_NAMES.index("door")]] == "wall"
    assert s.class_names[out[NYU40_NAMES.index("blinds")]] == "window"
    assert s.class_names[out[NYU40_NAMES.index("television")]] == "tv"


def test_instance_sets():
    s18 = get_instance_set("scannet18")
    assert list(s18.class_names) == SCANNET_CLASS_LABELS[2:]
    out, _ = s18.map(np.array([0, 1, 2, 3, 39, 40]))
    assert list(out) == [0, 0, 0, 1, 18, 0]  # wall, floor and non-benchmark classes are background
    nyu9 = get_instance_set("nyu9")
    assert list(nyu9.class_names) == ["bed", "books", "chair", "furniture", "picture", "sofa", "table", "tv", "window"]
    out, _ = nyu9.map(np.array([1, 2, 22, 40, 4, 25]))  # wall, floor, ceiling, otherprop(objects), bed, tv
    assert list(out) == [0, 0, 0, 0, 1, 8]
    assert set(INSTANCE_SETS) == {"scannet18", "nyu9"} and set(LABEL_SETS) == {"scannet20", "nyu40", "nyu13"}


def test_ids_outside_the_mapping_are_ignored_and_counted():
    s = get_label_set("scannet20")
    raw = np.array([[1, 2, 41], [255, -1, 3]])
    out, n = s.map(raw)
    assert n == 3
    assert out.tolist() == [[0, 1, IGNORE_INDEX], [IGNORE_INDEX, IGNORE_INDEX, 2]]


def test_unknown_set_names():
    with pytest.raises(ConfigError, match="scannet20"):
        get_label_set("scannet21")
    with pytest.raises(ConfigError, match="scannet18"):
        get_instance_set("coco")
