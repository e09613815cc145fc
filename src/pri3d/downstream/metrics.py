"""Downstream metrics: semantic segmentation (confusion matrix -> IoU) and COCO AP (pycocotools).

Semantic segmentation uses one **dataset-level** confusion matrix (rows = ground truth, columns =
prediction). Pixels whose ground truth is the ignore index are left out; nothing else is. IoU of class
c = TP / (TP + FP + FN); mIoU is the mean over classes whose union is non-empty (a class absent from
the ground truth and never predicted has no IoU; one that is predicted but absent scores 0).

The official Pri3D evaluator zeroed the *row and column* of an "ignore" class inside its confusion
matrix; since that class was also a network output, pixels of class c predicted as "ignore" vanished
from c's false negatives and inflated IoU. Here the classifier has no ignore output and only
ground-truth-ignored pixels are dropped.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "confusion_matrix",
    "semseg_scores",
    "format_semseg_table",
    "coco_evaluate",
    "mask_to_rle",
    "format_coco_table",
]


def confusion_matrix(pred: torch.Tensor, gt: torch.Tensor, num_classes: int, ignore_index: int = 255) -> torch.Tensor:
    """Confusion matrix of one batch.

    Args:
        pred: ``(...)`` integer predicted class ids in ``0..num_classes-1``.
        gt: ``(...)`` integer ground-truth ids, same shape; ``ignore_index`` pixels are skipped.
    Returns:
        ``(num_classes, num_classes)`` int64 counts, ``[gt, pred]``, on ``pred``'s device.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} differ in shape")
    pred = pred.reshape(-1).long()
    gt = gt.reshape(-1).long().to(pred.device)
    keep = gt != ignore_index
    pred, gt = pred[keep], gt[keep]
    if gt.numel() and (int(gt.min()) < 0 or int(gt.max()) >= num_classes):
        raise ValueError(f"ground truth holds ids outside 0..{num_classes - 1} other than ignore {ignore_index}")
    if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= num_classes):
        raise ValueError(f"predictions hold ids outside 0..{num_classes - 1}")
    idx = gt * num_classes + pred
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def semseg_scores(conf, class_names: Sequence[str]) -> dict:
    """Scores from a ``[gt, pred]`` confusion matrix.

    Returns a dict with ``miou``, ``pixel_acc``, ``mean_acc`` (fractions in [0, 1]), ``per_class``
    (``{name: {"iou", "acc", "gt_pixels"}}``, ``iou``/``acc`` None where undefined) and
    ``num_pixels``."""
    conf = np.asarray(conf.cpu() if isinstance(conf, torch.Tensor) else conf, dtype=np.float64)
    k = conf.shape[0]
    if conf.shape != (k, k) or k != len(class_names):
        raise ValueError(f"confusion matrix {conf.shape} does not match {len(class_names)} class names")
    tp = np.diag(conf)
    gt_count = conf.sum(1)
    pred_count = conf.sum(0)
    union = gt_count + pred_count - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        acc = np.where(gt_count > 0, tp / gt_count, np.nan)
    total = conf.sum()

    def clean(x):
        return None if not math.isfinite(x) else float(x)

    return {
        "miou": clean(np.nanmean(iou)) if np.isfinite(iou).any() else None,
        "pixel_acc": clean(tp.sum() / total) if total > 0 else None,
        "mean_acc": clean(np.nanmean(acc)) if np.isfinite(acc).any() else None,
        "num_pixels": int(total),
        "per_class": {
            name: {"iou": clean(iou[i]), "acc": clean(acc[i]), "gt_pixels": int(gt_count[i])}
            for i, name in enumerate(class_names)
        },
    }


def _pct(x) -> str:
    return "   -  " if x is None else f"{100 * x:6.2f}"


def format_semseg_table(scores: dict) -> str:
    """A plain-text per-class table (IoU and accuracy in %), then mIoU / pixel accuracy."""
    width = max([len(n) for n in scores["per_class"]] + [5])
    lines = [f"{'class':<{width}}  {'IoU':>6}  {'acc':>6}  {'gt px':>10}"]
    for name, r in scores["per_class"].items():
        lines.append(f"{name:<{width}}  {_pct(r['iou'])}  {_pct(r['acc'])}  {r['gt_pixels']:>10d}")
    lines.append(
        f"{'mIoU':<{width}}  {_pct(scores['miou'])}   pixel acc {_pct(scores['pixel_acc']).strip()} %,"
        f" mean acc {_pct(scores['mean_acc']).strip()} %"
    )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- COCO


def mask_to_rle(mask: np.ndarray) -> dict:
    """``(H, W)`` bool -> COCO run-length encoding (JSON-safe: ``counts`` is a str)."""
    from pycocotools import mask as mask_util

    rle = mask_util.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _rles(d: dict, threshold: float) -> list[dict] | None:
    if "rles" in d:
        return list(d["rles"])
    if "masks" not in d:
        return None
    m = d["masks"]
    m = m.detach().cpu().numpy() if isinstance(m, torch.Tensor) else np.asarray(m)
    if m.ndim == 4:  # (N, 1, H, W) probabilities from Mask R-CNN
        m = m[:, 0]
    return [mask_to_rle(x > threshold) for x in m]


def coco_evaluate(
    ground_truth: Sequence[dict],
    predictions: Sequence[dict],
    class_names: Sequence[str],
    iou_types: Sequence[str] = ("bbox", "segm"),
) -> dict:
    """COCO AP / AP50 / AP75 (in %, pycocotools) for boxes and masks.

    Args:
        ground_truth: one dict per image: ``{"image_id": int, "height", "width", "boxes": (N, 4)
            xyxy, "labels": (N,) category ids 1..K, "masks": (N, H, W) bool}`` (arrays or tensors;
            ``"rles"``, a list of COCO RLEs from :func:`mask_to_rle`, may replace ``"masks"``).
        predictions: one dict per image, same ``image_id`` keys: ``{"image_id", "boxes": (M, 4) xyxy,
            "labels": (M,), "scores": (M,), "masks": (M, H, W) or (M, 1, H, W) bool or probabilities
            (> 0.5)}`` (or ``"rles"``).
        class_names: the K category names (category id = index + 1).
    Returns:
        ``{"bbox": {"AP", "AP50", "AP75", "per_class_AP": {...}}, "segm": {...}, "num_images",
        "num_gt", "num_dets"}``. AP is 0 when there are no detections.
    """
    gt, num_anns = _coco_ground_truth(ground_truth, class_names)
    dets = _coco_detections(predictions)
    out: dict = {"num_images": len(ground_truth), "num_gt": num_anns, "num_dets": len(dets["bbox"])}
    for t in iou_types:
        res = {"AP": 0.0, "AP50": 0.0, "AP75": 0.0, "per_class_AP": {n: None for n in class_names}}
        if dets[t] and num_anns:
            res.update(_coco_scores(gt, dets[t], t, class_names))
        elif num_anns:
            res["per_class_AP"] = {n: 0.0 for n in class_names}
        out[t] = res
    return out


def _np(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _coco_ground_truth(ground_truth: Sequence[dict], class_names: Sequence[str]):
    """A pycocotools ``COCO`` index of the ground truth, and its number of annotations."""
    from pycocotools import mask as mask_util
    from pycocotools.coco import COCO

    images, anns = [], []
    for g in ground_truth:
        images.append({"id": int(g["image_id"]), "height": int(g["height"]), "width": int(g["width"])})
        boxes, labels, rles = _np(g["boxes"]), _np(g["labels"]), _rles(g, 0.5)
        for b, lab, r in zip(boxes, labels, rles):
            x0, y0, x1, y1 = (float(v) for v in b)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": int(g["image_id"]),
                    "category_id": int(lab),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": float(mask_util.area(r)),
                    "segmentation": r,
                    "iscrowd": 0,
                }
            )
    cats = [{"id": i + 1, "name": n} for i, n in enumerate(class_names)]
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns, "categories": cats}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt, len(anns)


def _coco_detections(predictions: Sequence[dict]) -> dict:
    """``{"bbox": [...], "segm": [...]}`` detections in COCO's result format (xywh boxes, RLE masks)."""
    dets = {"bbox": [], "segm": []}
    for p in predictions:
        boxes, labels, scores = _np(p["boxes"]), _np(p["labels"]), _np(p["scores"])
        rles = _rles(p, 0.5)
        for j, (b, lab, s) in enumerate(zip(boxes, labels, scores)):
            x0, y0, x1, y1 = (float(v) for v in b)
            base = {"image_id": int(p["image_id"]), "category_id": int(lab), "score": float(s)}
            dets["bbox"].append({**base, "bbox": [x0, y0, x1 - x0, y1 - y0]})
            if rles is not None:
                dets["segm"].append({**base, "segmentation": rles[j]})
    return dets


def _coco_scores(gt, dets: list, iou_type: str, class_names: Sequence[str]) -> dict:
    """AP, AP50, AP75 and per-class AP (in %) of ``dets`` against ``gt`` (pycocotools' COCOeval)."""
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, iouType=iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    res = dict(zip(("AP", "AP50", "AP75"), (max(0.0, float(v)) * 100 for v in ev.stats[:3])))
    # precision: (T iou thresholds, R recall, K classes, A areas, M maxdets); area all, 100 dets
    prec = ev.eval["precision"][:, :, :, 0, -1]
    per_class = {}
    for k, name in enumerate(class_names):
        pk = prec[:, :, k]
        pk = pk[pk > -1]
        per_class[name] = float(pk.mean() * 100) if pk.size else None
    res["per_class_AP"] = per_class
    return res


def format_coco_table(scores: dict) -> str:
    types = [t for t in ("bbox", "segm") if t in scores]
    names = list(scores[types[0]]["per_class_AP"]) if types else []
    width = max([len(n) for n in names] + [8])
    lines = [f"{'class':<{width}}  " + "  ".join(f"{t + ' AP':>8}" for t in types)]
    for n in names:
        cells = []
        for t in types:
            v = scores[t]["per_class_AP"][n]
            cells.append(f"{'-':>8}" if v is None else f"{v:8.2f}")
        lines.append(f"{n:<{width}}  " + "  ".join(cells))
    for key in ("AP", "AP50", "AP75"):
        lines.append(f"{key:<{width}}  " + "  ".join(f"{scores[t][key]:8.2f}" for t in types))
    lines.append(
        f"({scores['num_images']} images, {scores['num_gt']} ground-truth instances, {scores['num_dets']} detections)"
    )
    return "\n".join(lines)
