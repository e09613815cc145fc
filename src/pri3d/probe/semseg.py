"""Semantic-segmentation probe: a linear classifier on frozen features, scored at label resolution.

Fit: on each fit frame, ``pixels_per_frame`` labelled pixels drawn uniformly at random (seeded per
frame) from the label map, mapped to the label set (ScanNet-20 by default; unannotated and unmapped
NYU-40 ids are the ignore index 255 and never drawn); their features are read bilinearly at those
pixels (:func:`~pri3d.probe.features.sample_at`; a label map spans the colour image's field of view, at
any size, as in every format pri3d reads); a multinomial logistic regression is fitted
(:func:`~pri3d.probe.head.fit_logistic`).

Score: on each test frame the head runs on the feature grid (``H/2 x W/2``), the class scores are
upsampled bilinearly to the **label map's full resolution** (identical to upsampling the features, the
head being affine) and the argmax is compared with every labelled pixel. One dataset-level confusion
matrix gives ``miou``, per-class IoU, ``pixel_acc`` and ``mean_acc`` with the definitions of fine-tuning
(:mod:`pri3d.downstream.metrics`: fractions in [0, 1]; mIoU over the classes whose union is non-empty).

Floor: the majority class of the fit frames' labelled pixels (all of them, not the sample), predicted
everywhere on the same test pixels (``majority``).
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from pri3d.downstream.classes import IGNORE_INDEX, get_label_set
from pri3d.downstream.metrics import confusion_matrix, semseg_scores
from pri3d.engine.seed import derive_seed
from pri3d.errors import DataError
from pri3d.probe.features import sample_at, upsample_to
from pri3d.probe.frames import pick_pixels
from pri3d.probe.head import fit_logistic

__all__ = ["probe_semseg"]


def _labels(frame, label_set, where: str) -> np.ndarray:
    if frame.label is None:
        raise DataError(
            f"{where}: frame {frame.scene_id}/{frame.frame_id} has no label map; the semseg probe needs labels"
        )
    mapped, _ = label_set.map(frame.label)
    return mapped


def probe_semseg(
    extractor,
    fit,
    test,
    *,
    label_set: str = "scannet20",
    pixels_per_frame: int = 512,
    seed: int = 0,
    keep: int = 3,
    progress: bool = False,
) -> dict:
    """Fit a linear classifier on ``fit`` frames and score it on ``test`` frames.

    Args:
        extractor: ``color (Hc, Wc, 3) uint8 -> (C, h, w)`` features covering the whole image (a
            :class:`~pri3d.probe.features.FeatureExtractor`, or any callable).
        fit, test: frame sources (:class:`~pri3d.probe.frames.FrameSet` or
            :class:`~pri3d.probe.frames.FrameList`); frames need colour and labels (raw NYU-40 ids).
        label_set: a semantic label set of :mod:`pri3d.downstream.classes`.
        pixels_per_frame: fit pixels drawn per fit frame.
        seed: seed of the drawn pixels (frame ``i`` uses ``derive_seed(seed, i)``).
        keep: test frames whose colour, ground truth and prediction are returned for pictures.

    Returns:
        ``miou``, ``pixel_acc``, ``mean_acc``, ``per_class_iou`` ({class: IoU or None}), ``per_class``
        (IoU, accuracy and ground-truth pixels per class), ``majority`` (the floor: ``class``, ``miou``,
        ``pixel_acc``), ``fit_frames``, ``fit_pixels``, ``test_frames``, ``test_pixels``, ``head`` (how
        it was fitted) and ``examples`` (pictures' arrays; drop before JSON).
    """
    ls = get_label_set(label_set)
    K = ls.num_classes
    where_fit, where_test = str(getattr(fit, "path", "fit")), str(getattr(test, "path", "test"))
    xs, ys = [], []
    counts = np.zeros(K, np.int64)
    for i in tqdm(range(len(fit)), desc="probe fit", disable=not progress, leave=False):
        frame = fit.load(i, depth=False, labels=True)
        lab = _labels(frame, ls, where_fit)
        valid = lab != IGNORE_INDEX
        counts += np.bincount(lab[valid], minlength=K)[:K]
        uv = pick_pixels(valid, pixels_per_frame, derive_seed(seed, i))
        if not len(uv):
            continue
        fmap = extractor(frame.color)
        xs.append(sample_at(fmap, torch.from_numpy(uv).double(), lab.shape))
        ys.append(torch.from_numpy(lab[uv[:, 1], uv[:, 0]]))
    if not xs:
        raise DataError(f"{where_fit}: no labelled pixel of the {ls.name} classes in the {len(fit)} fit frames")
    X, y = torch.cat(xs), torch.cat(ys)
    del xs
    head = fit_logistic(X, y, K)
    del X
    majority = int(counts.argmax())

    conf = torch.zeros(K, K, dtype=torch.int64)
    conf_major = torch.zeros(K, K, dtype=torch.int64)
    examples = []
    for i in tqdm(range(len(test)), desc="probe test", disable=not progress, leave=False):
        frame = test.load(i, depth=False, labels=True)
        gt = torch.from_numpy(_labels(frame, ls, where_test))
        logits = upsample_to(head.apply_map(extractor(frame.color)), gt.shape)
        pred = logits.argmax(0)
        conf += confusion_matrix(pred, gt, K, IGNORE_INDEX)
        conf_major += confusion_matrix(torch.full_like(gt, majority), gt, K, IGNORE_INDEX)
        if len(examples) < keep:
            examples.append({"color": frame.color, "gt": gt.numpy(), "pred": pred.numpy()})
    if int(conf.sum()) == 0:
        raise DataError(f"{where_test}: no labelled pixel of the {ls.name} classes in the {len(test)} test frames")
    scores = semseg_scores(conf, ls.class_names)
    floor = semseg_scores(conf_major, ls.class_names)
    return {
        "miou": scores["miou"],
        "pixel_acc": scores["pixel_acc"],
        "mean_acc": scores["mean_acc"],
        "per_class_iou": {name: r["iou"] for name, r in scores["per_class"].items()},
        "per_class": scores["per_class"],
        "majority": {"class": ls.class_names[majority], "miou": floor["miou"], "pixel_acc": floor["pixel_acc"]},
        "label_set": ls.name,
        "fit_frames": len(fit),
        "fit_pixels": int(len(y)),
        "test_frames": len(test),
        "test_pixels": scores["num_pixels"],
        "head": head.info,
        "examples": examples,
        "num_classes": K,
    }
