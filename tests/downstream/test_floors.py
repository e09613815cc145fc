import numpy as np
import pytest
from dsfixtures import one_thread, write_scannet_like  # noqa: F401  (one_thread: autouse fixture)

from pri3d.downstream.classes import get_label_set
from pri3d.downstream.datasets import SemSegDataset, open_split
from pri3d.downstream.floors import LookupFloor, coverage_gaps, floor_scores, label_counts

SIZE = (48, 64)


def _ds(root, which):
    return SemSegDataset(open_split(root, which), get_label_set("scannet20"), SIZE, progress=False)


def test_lookup_is_exact_when_colour_or_position_decides_and_falls_back_otherwise():
    colours = {0: (32, 32, 32), 1: (96, 160, 224), 2: (224, 96, 32)}  # bucket centres: one colour key each
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(4):
        label = rng.integers(0, 3, size=(12, 16))
        rgb = np.stack([np.array(colours[c], np.uint8) for c in label.reshape(-1)]).reshape(12, 16, 3)
        frames.append((label, rgb))
    lut = LookupFloor(3, bands=(2, 2), levels=4).fit(frames)
    for label, rgb in frames:
        np.testing.assert_array_equal(lut.predict(rgb), label)
    # a colour never seen: the position's majority (here the top-left quarter is all class 1)
    pos = LookupFloor(3, bands=(2, 2), levels=4).fit([(np.ones((4, 4), np.int64), np.zeros((4, 4, 3), np.uint8))])
    assert (pos.predict(np.full((4, 4, 3), 255, np.uint8))[:2, :2] == 1).all()
    with pytest.raises(ValueError):
        LookupFloor(3, bands=(0, 2))


def test_majority_floor_and_coverage_on_a_dataset_with_known_content(tmp_path):
    root = write_scannet_like(tmp_path / "a", size=SIZE)  # wall on top (3/5), floor below, coloured boxes
    train, val = _ds(root, "train"), _ds(root, "val")
    f = floor_scores(train, val)
    names = list(train.label_set.class_names)
    assert f["majority"]["class"] == "wall"
    # the majority floor predicts wall everywhere: its mIoU is wall's IoU over the classes present
    counts = np.array(f["eval_pixels"])
    present = (counts > 0).sum()
    wall_iou = counts[names.index("wall")] / counts.sum()
    assert f["majority"]["miou"] == pytest.approx(wall_iou / present, rel=1e-6)
    # wall (grey, top) and floor (brown, bottom) are what position + colour gets right
    assert f["lookup"]["miou"] > f["majority"]["miou"]
    assert (
        f["lookup"]["scores"]["per_class"]["wall"]["iou"] > 0.75
        and f["lookup"]["scores"]["per_class"]["floor"]["iou"] > 0.75
    )
    assert f["gaps"] == []
    assert label_counts(train).tolist() == f["train_pixels"]


def test_a_class_without_labelled_pixels_is_listed(tmp_path):
    names = list(get_label_set("scannet20").class_names)
    train_counts = np.array([5] * len(names))
    eval_counts = np.array([5] * len(names))
    train_counts[names.index("bathtub")] = 0
    assert coverage_gaps(train_counts, eval_counts, names) == ["bathtub"]
    eval_counts[names.index("bathtub")] = 0  # absent from evaluation too: nothing to learn, no gap
    assert coverage_gaps(train_counts, eval_counts, names) == []
    # on disk: the validation scenes hold a class (bathtub, NYU-40 id 36) that training never shows
    a = write_scannet_like(tmp_path / "a", scenes=("scene0000_00", "scene0001_00"), size=SIZE, splits=False)
    write_scannet_like(tmp_path / "a", scenes=("scene0002_00",), size=SIZE, splits=False, extra_label=36)
    (a / "scannetv2_train.txt").write_text("scene0000_00\nscene0001_00\n")
    (a / "scannetv2_val.txt").write_text("scene0002_00\n")
    assert floor_scores(_ds(a, "train"), _ds(a, "val"))["gaps"] == ["bathtub"]
