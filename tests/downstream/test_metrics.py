import numpy as np
import pytest
import torch

from pri3d.downstream.metrics import coco_evaluate, confusion_matrix, format_semseg_table, semseg_scores


def test_miou_hand_computed():
    # 3 classes, ignore = 255
    gt = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 0, 2]])
    conf = confusion_matrix(pred, gt, 3, 255)
    assert conf.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    s = semseg_scores(conf, ["a", "b", "c"])
    # IoU a = 1 / (2 + 2 - 1) = 1/3; b = 2 / (2 + 3 - 2) = 2/3; c = 1 / (2 + 1 - 1) = 1/2
    assert s["per_class"]["a"]["iou"] == pytest.approx(1 / 3)
    assert s["per_class"]["b"]["iou"] == pytest.approx(2 / 3)
    assert s["per_class"]["c"]["iou"] == pytest.approx(1 / 2)
    assert s["miou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert s["pixel_acc"] == pytest.approx(4 / 6)
    assert s["num_pixels"] == 6
    assert "mIoU" in format_semseg_table(s)


def test_false_negatives_into_an_ignore_output_still_count():
    # The official evaluator had an "ignore" class 0 among the outputs and zeroed its row and column:
    # pixels of class 1 predicted as 0 vanished. Done properly, they are false negatives of class 1.
    gt = torch.tensor([1, 1, 1, 1, 2, 2])
    pred = torch.tensor([1, 0, 0, 0, 2, 2])  # three class-1 pixels predicted as class 0
    conf = confusion_matrix(pred, gt, 3, 255)
    s = semseg_scores(conf, ["ignore-ish", "b", "c"])
    assert s["per_class"]["b"]["iou"] == pytest.approx(1 / 4)
    official = conf.clone().double()
    official[0] = 0
    official[:, 0] = 0
    tp = official.diag()
    iou_b_official = tp[1] / (official[1].sum() + official[:, 1].sum() - tp[1])
    assert float(iou_b_official) == pytest.approx(1.0)  # the hidden false negatives


def test_absent_class_has_no_iou_but_false_positive_class_scores_zero():
    gt = torch.tensor([0, 0, 0])
    pred = torch.tensor([0, 0, 1])
    s = semseg_scores(confusion_matrix(pred, gt, 3), ["a", "b", "c"])
    assert s["per_class"]["c"]["iou"] is None
    assert s["per_class"]["b"]["iou"] == 0.0
    assert s["miou"] == pytest.approx((2 / 3 + 0) / 2)


def test_confusion_rejects_bad_ids():
    with pytest.raises(ValueError, match="ground truth"):
        confusion_matrix(torch.tensor([0]), torch.tensor([7]), 3)


def _box_mask(h, w, box):
    m = np.zeros((h, w), bool)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = True
    return m


def test_coco_ap_toy_cases():
    h, w = 64, 64
    b1, b2 = (4, 4, 24, 24), (30, 30, 60, 50)
    gt = [
        {
            "image_id": 1,
            "height": h,
            "width": w,
            "boxes": np.array([b1, b2], float),
            "labels": np.array([1, 1]),
            "masks": np.stack([_box_mask(h, w, b1), _box_mask(h, w, b2)]),
        }
    ]
    perfect = [
        {
            "image_id": 1,
            "boxes": np.array([b1, b2], float),
            "labels": np.array([1, 1]),
            "scores": np.array([0.9, 0.8]),
            "masks": gt[0]["masks"].astype(np.float32),
        }
    ]
    r = coco_evaluate(gt, perfect, ["thing", "other"])
    for t in ("bbox", "segm"):
        assert r[t]["AP"] == pytest.approx(100.0) and r[t]["AP50"] == pytest.approx(100.0)
        assert r[t]["per_class_AP"]["other"] is None  # no ground truth for class 2
    # one correct detection (score 0.9), one false positive ranked next (0.8), the second object missed:
    # precision 1 up to recall 0.5, then nothing -> 101-point interpolated AP = 51 / 101.
    fp = (40, 0, 60, 10)
    half = [
        {
            "image_id": 1,
            "boxes": np.array([b1, fp], float),
            "labels": np.array([1, 1]),
            "scores": np.array([0.9, 0.8]),
            "masks": np.stack([_box_mask(h, w, b1), _box_mask(h, w, fp)]),
        }
    ]
    r = coco_evaluate(gt, half, ["thing", "other"])
    for t in ("bbox", "segm"):
        assert r[t]["AP50"] == pytest.approx(100 * 51 / 101, abs=1e-6)
        assert r[t]["AP75"] == pytest.approx(100 * 51 / 101, abs=1e-6)
    none = [
        {
            "image_id": 1,
            "boxes": np.zeros((0, 4)),
            "labels": np.zeros(0),
            "scores": np.zeros(0),
            "masks": np.zeros((0, h, w)),
        }
    ]
    r = coco_evaluate(gt, none, ["thing", "other"])
    assert r["bbox"]["AP"] == 0.0 and r["num_dets"] == 0
