import numpy as np
import pytest
from dsfixtures import one_thread, write_nyu_mat, write_nyu_png, write_scannet_like  # noqa: F401  (one_thread: autouse fixture)

from pri3d.data.formats import open_dataset
from pri3d.data.io import write_png
from pri3d.downstream.classes import IGNORE_INDEX, get_instance_set, get_label_set
from pri3d.downstream.datasets import InstanceDataset, SemSegDataset, extract_instances, masks_to_boxes, open_split
from pri3d.errors import ConfigError, DataError


def test_open_split_synth_layout_and_nyu_png(tmp_path):
    scannet_like, nyu_png = write_scannet_like(tmp_path / "s"), write_nyu_png(tmp_path / "n")
    assert [s.scene_id for s in open_split(scannet_like, "train")] == ["scene0000_00", "scene0001_00"]
    assert [s.scene_id for s in open_split(scannet_like, "val")] == ["scene0002_00"]
    assert [s.scene_id for s in open_split(nyu_png, "train")] == ["train"]
    assert [s.scene_id for s in open_split(nyu_png, "val")] == ["test"]
    (scannet_like / "splits" / "val.txt").unlink()
    with pytest.raises(ConfigError, match="val_split"):
        open_split(scannet_like, "val")


def test_semseg_dataset_maps_and_counts_unknown_ids(tmp_path):
    root = write_scannet_like(tmp_path / "d", frames=2, extra_label=77)  # 77 is not a NYU-40 id
    ds = SemSegDataset(open_dataset(root), get_label_set("scannet20"), (24, 32), progress=False)
    assert len(ds) == 6
    assert ds.stats.unknown_label_pixels == 6 * 12 and ds.stats.unknown_label_frames == 6
    assert "outside NYU-40" in ds.stats.summary()
    item = ds[0]
    assert item["image"].shape == (3, 24, 32) and item["label"].shape == (24, 32)
    lab = item["label"]
    assert (lab[:1] == IGNORE_INDEX).all()  # unannotated strip
    assert set(lab.unique().tolist()) <= {0, 1, 3, 4, 6, 16, IGNORE_INDEX}  # wall floor bed chair table toilet
    assert (lab[-1, :2] == IGNORE_INDEX).all()  # the unknown id


def test_semseg_dataset_skips_frames_without_labels(tmp_path):
    scannet_like = write_scannet_like(tmp_path / "s")
    (scannet_like / "scene0000_00" / "label" / "000100.png").unlink()
    ds = SemSegDataset(open_dataset(scannet_like), get_label_set("scannet20"), (24, 32), progress=False)
    assert len(ds) == 8 and ds.stats.skips.counts == {"frame without a label map": 1}


def test_extract_instances_both_conventions_agree():
    label = np.array([[1, 1, 5, 5], [3, 3, 5, 0], [3, 3, 7, 7]])
    inst = np.array([[1, 1, 2, 2], [4, 4, 2, 0], [4, 4, 1, 1]])  # per-class numbering: id 1 twice
    keys_a, cls_a = extract_instances(label, inst, "separate")
    keys_b, cls_b = extract_instances(None, label * 1000 + inst, "combined")
    assert cls_a.shape[1] == cls_b.shape[1] == 4  # wall#1, cabinet#4, chair#2, table#1
    assert sorted(cls_a[1].tolist()) == sorted(cls_b[1].tolist()) == [1, 3, 5, 7]
    for ka, kb in zip(cls_a[0], cls_b[0]):
        np.testing.assert_array_equal(keys_a == ka, keys_b == kb)
    boxes = masks_to_boxes(np.stack([keys_a == k for k in cls_a[0]]))
    assert boxes[cls_a[1].tolist().index(3)].tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("combined", [False, True])
def test_instance_dataset_targets(tmp_path, combined):
    root = write_scannet_like(tmp_path / "d", frames=2, size=(48, 64), combined=combined)
    ds = InstanceDataset(
        open_dataset(root),
        get_instance_set("scannet18"),
        (24, 32),
        convention="combined" if combined else "separate",
        min_area=30,
        progress=False,
    )
    assert len(ds) > 0 and ds.stats.instances > 0
    assert ds.stats.instances_dropped_class >= 12  # walls and floors of 6 frames
    img, t = ds[0]
    assert img.shape == (3, 24, 32) and 0 <= float(img.min()) and float(img.max()) <= 1
    n = len(t["labels"])
    assert t["masks"].shape == (n, 24, 32) and t["boxes"].shape == (n, 4)
    assert set(t["labels"].tolist()) <= {2, 3, 5, 15}  # bed chair table toilet in scannet18
    for m, b in zip(t["masks"], t["boxes"]):
        ys, xs = np.nonzero(m.numpy())
        assert b.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_min_area_drops_instances_and_empty_frames_are_counted(tmp_path):
    scannet_like = write_scannet_like(tmp_path / "s")
    scenes = open_dataset(scannet_like)
    small = InstanceDataset(scenes, get_instance_set("scannet18"), (24, 32), min_area=1, progress=False)
    big = InstanceDataset(scenes, get_instance_set("scannet18"), (24, 32), min_area=150, progress=False)
    assert big.stats.instances < small.stats.instances
    assert big.stats.instances_dropped_small > 0
    # a frame whose objects are all removed is skipped and counted
    d = scannet_like / "scene0001_00"
    write_png(d / "instance" / "000000.png", np.zeros((48, 64), np.uint16))
    ds = InstanceDataset(
        open_dataset(scannet_like), get_instance_set("scannet18"), (24, 32), min_area=1, progress=False
    )
    assert ds.stats.skips.counts == {"frame without usable instances": 1}
    assert len(ds) == len(small) - 1


def test_zero_instances_fail_loudly_with_counts(tmp_path):
    root = write_scannet_like(tmp_path / "d", frames=2)
    # 8-bit instance ids read as label*1000+instance: every label is 0 (the official converter's silent bug)
    with pytest.raises(DataError, match=r"zero instances: 6 frames of 3 scenes.*outside the scannet18") as e:
        InstanceDataset(
            open_dataset(root), get_instance_set("scannet18"), (24, 32), convention="combined", progress=False
        )
    assert "instance format 'combined'" in str(e.value)


def test_nyu_mat_instances_per_class_numbering(tmp_path):
    root = write_nyu_mat(tmp_path / "nyu", n=3, n_train=2)
    train = open_split(root, "train")
    assert [s.scene_id for s in train] == ["nyuv2_train"]
    fr = train[0].load_frame(1, color=False, depth=False)
    assert fr.instance is not None and fr.instance.shape == fr.label.shape
    assert ((fr.instance // 1000 - 100 == fr.label) | (fr.instance == 0)).all()  # raw id * 1000 + instance
    ds = InstanceDataset(train, get_instance_set("nyu9"), (24, 32), min_area=1, progress=False)
    assert ds.stats.instances > 0
    _, t = ds[0]
    assert set(t["labels"].tolist()) <= {1, 3, 7}  # bed, chair, table (toilet is "objects" in NYU-13)


def test_a_label_map_of_another_size_than_its_frame_is_a_data_error(tmp_path):
    """Issue 24: a 24x32 label PNG beside a 48x64 colour image was accepted (and stretched)."""
    root = write_scannet_like(tmp_path / "s", frames=2)
    bad = root / "scene0001_00" / "label" / "000100.png"
    write_png(bad, np.ones((24, 32), np.uint8))
    scene = [s for s in open_dataset(root) if s.scene_id == "scene0001_00"][0]
    scene.load_frame(0, color=False, depth=False, labels=True)
    with pytest.raises(DataError, match=r"000100\.png: a 32x24 label map fits neither the colour nor the depth"):
        scene.load_frame(100, color=False, depth=False, labels=True)
    with pytest.raises(DataError, match="000100.png"):
        SemSegDataset(open_dataset(root), get_label_set("scannet20"), (24, 32), progress=False)
