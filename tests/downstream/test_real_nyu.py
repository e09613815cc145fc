"""Real NYUv2 labels (../shared/data/nyuv2-labeled-samples): mIoU of a fixed prediction with the
ignore index, against an independent numpy computation. Skips when the data is absent."""

import cv2
import numpy as np
import pytest
import torch
from dsfixtures import one_thread  # noqa: F401  (pytest fixture)

from pri3d.data.formats import open_dataset
from pri3d.downstream.classes import IGNORE_INDEX, get_label_set
from pri3d.downstream.metrics import confusion_matrix, semseg_scores
from realdata import shared_data


def _fixed_prediction(label_png: np.ndarray) -> np.ndarray:
    """A deterministic, imperfect prediction in 0..39: the true class in the left half (where annotated),
    a shifted class on the right half, and class 0 (wall) where the ground truth is ignored."""
    h, w = label_png.shape
    pred = np.where(label_png == 255, 0, label_png).astype(np.int64)
    right = pred[:, w // 2 :]
    pred[:, w // 2 :] = np.where(np.arange(right.shape[1])[None] % 3 == 0, (right + 1) % 40, right)
    return pred


def _numpy_miou(gts, preds, k=40, ignore=255):
    ious = []
    for c in range(k):
        inter = union = 0
        for g, p in zip(gts, preds):
            valid = g != ignore
            inter += np.sum((g == c) & (p == c) & valid)
            union += np.sum(((g == c) | (p == c)) & valid)
        if union > 0:
            ious.append(inter / union)
    return float(np.mean(ious))


def test_real_nyu40_miou_with_ignore():
    root = shared_data("nyuv2-labeled-samples")
    scenes = open_dataset(root, "nyuv2")
    frames = [s.load_frame(f, color=False, depth=False) for s in scenes for f in s.frame_ids]
    assert len(frames) == 2
    ls = get_label_set("nyu40")
    conf = torch.zeros(40, 40, dtype=torch.int64)
    gts, preds = [], []
    for fr in frames:
        png = cv2.imread(str(root / f"segm_gt_{fr.frame_id:06d}.png"), cv2.IMREAD_UNCHANGED)
        gt, n_unknown = ls.map(fr.label)  # reader: NYU-40 ids 1..40, 0 = unannotated
        assert n_unknown == 0
        np.testing.assert_array_equal(gt, np.where(png == 255, IGNORE_INDEX, png))  # back to 0-based + ignore
        assert (gt == IGNORE_INDEX).any() and (gt != IGNORE_INDEX).any()
        pred = _fixed_prediction(png)
        conf += confusion_matrix(torch.from_numpy(pred), torch.from_numpy(gt), 40, IGNORE_INDEX)
        gts.append(png)
        preds.append(pred)
    scores = semseg_scores(conf, ls.class_names)
    expected = _numpy_miou(gts, preds)
    assert 0.3 < expected < 1.0
    assert scores["miou"] == pytest.approx(expected, rel=1e-12)
    valid = sum(int((g != 255).sum()) for g in gts)
    assert scores["num_pixels"] == valid
    correct = sum(int(((g == p) & (g != 255)).sum()) for g, p in zip(gts, preds))
    assert scores["pixel_acc"] == pytest.approx(correct / valid)
