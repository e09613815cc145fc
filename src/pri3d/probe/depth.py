"""Depth probe: ridge regression of log-depth on frozen features.

**Why log-depth ridge regression** (and not DINOv2's classification into depth bins): it is closed-form
(no iterations, no learning rate, deterministic, seconds), it shares the one regression head with the
normal probe, and least squares on ``log d`` is least squares on the relative error that ``abs_rel`` and
``delta < 1.25`` measure, scale-free across near and far pixels. The binned head of DINOv2 / AdaBins
(softmax over log-spaced bins, then the expected depth) is a non-linear read-out of the same linear
scores and usually scores better; our numbers are therefore comparable between backbones, not with
DINOv2's tables.

Fit: ``pixels_per_frame`` pixels drawn uniformly at random (seeded per frame) from the valid sensor
depth (``d > 0`` and finite) of each fit frame; each depth pixel is mapped into the colour image
(:func:`~pri3d.probe.features.depth_grid_in_color`: registered cameras, the two intrinsics) and its
feature read there; target ``log d``; the ridge penalty is chosen by cross-validation over blocks of fit
frames (:func:`~pri3d.probe.head.fit_ridge_cv`).

Score: every valid depth pixel of every test frame (at the depth map's full resolution), prediction
``exp`` of the head read at that pixel, clipped to the fit set's depth range. Per image: ``abs_rel``
(mean ``|p - g| / g``), ``rmse`` (metres), ``delta1`` (fraction with ``max(p/g, g/p) < 1.25``); the same
after per-image median scaling (``p * median(g) / median(p)``: ``abs_rel_median``, ``rmse_median``,
``delta1_median``). Each metric is the **mean over test images** (the Eigen et al. convention).

Floor (``constant``): the exponential of the fit pixels' mean log-depth, predicted everywhere, scored on
the same pixels (its median-scaled scores are those of a per-image constant at the right median).
"""

from __future__ import annotations

import numpy as np
import torch

from pri3d.errors import DataError
from pri3d.probe.dense import depth_frames, fit_rows
from pri3d.probe.features import sample_at
from pri3d.probe.head import fit_ridge_cv

__all__ = ["probe_depth", "depth_metrics", "DEPTH_KEYS"]

DEPTH_KEYS = ("abs_rel", "rmse", "delta1", "abs_rel_median", "rmse_median", "delta1_median")


def depth_metrics(pred: np.ndarray, gt: np.ndarray) -> dict:
    """Metrics of one image's valid pixels: ``pred``, ``gt`` ``(N,)`` metres, ``gt > 0``, ``pred > 0``."""
    pred = np.asarray(pred, np.float64)
    gt = np.asarray(gt, np.float64)

    def three(p):
        ratio = np.maximum(p / gt, gt / p)
        return float(np.mean(np.abs(p - gt) / gt)), float(np.sqrt(np.mean((p - gt) ** 2))), float(np.mean(ratio < 1.25))

    a, r, d = three(pred)
    am, rm, dm = three(pred * (np.median(gt) / np.median(pred)))
    return dict(zip(DEPTH_KEYS, (a, r, d, am, rm, dm)))


def _depth(frame) -> np.ndarray | None:
    if frame.depth is None:
        return None
    d = np.asarray(frame.depth, np.float32)
    return np.where(np.isfinite(d) & (d > 0), d, 0.0).astype(np.float32)


def _depth_gt(frame):
    """The depth probe's ground truth: ``(depth, depth > 0)``, or ``(None, None)`` without depth."""
    d = _depth(frame)
    return (None, None) if d is None else (d, d > 0)


def _no_depth(where: str, n: int, what: str) -> DataError:
    return DataError(f"{where}: no valid sensor depth (all zero) in the {n} {what} frames; the depth probe needs depth")


def probe_depth(
    extractor, fit, test, *, pixels_per_frame: int = 512, seed: int = 0, keep: int = 3, progress=False
) -> dict:
    """Fit the log-depth ridge head on ``fit`` frames and score it on ``test`` frames.

    Args: as :func:`pri3d.probe.semseg.probe_semseg`; frames need colour, depth (metres, 0 = invalid)
    and both intrinsics.

    Returns:
        the six metrics of :data:`DEPTH_KEYS`, ``constant`` (the same six for the mean-log-depth floor and
        its ``depth_m``), ``fit_frames``, ``fit_pixels``, ``test_frames`` (with valid depth),
        ``test_pixels``, ``depth_range`` (the clip), ``head`` and ``examples`` (pictures' arrays).
    """
    where_fit, where_test = str(getattr(fit, "path", "fit")), str(getattr(test, "path", "test"))
    xs, ds, fs = fit_rows(extractor, fit, _depth_gt, pixels_per_frame, seed, progress)
    if not xs:
        raise _no_depth(where_fit, len(fit), "fit")
    X, y = torch.cat(xs), torch.cat([torch.from_numpy(np.log(d).astype(np.float64)) for d in ds])
    rows_frame = torch.cat(fs)
    del xs, fs
    head = fit_ridge_cv(X, y, rows_frame)
    del X
    lo, hi = float(torch.exp(y.min())), float(torch.exp(y.max()))
    const = float(torch.exp(y.mean()))

    per_img, per_const, examples, n_pix = [], [], [], 0
    for _, frame, d, valid, uv_c, inside in depth_frames(test, _depth_gt, "probe test", progress):
        if not valid.any():
            continue
        logd = head.apply_map(extractor(frame.color))  # (1, h, w)
        pred = np.exp(sample_at(logd, uv_c.reshape(-1, 2), frame.color.shape[:2])[:, 0].double().numpy())
        pred = np.clip(pred, lo, hi).reshape(d.shape)
        g = d[valid].astype(np.float64)
        per_img.append(depth_metrics(pred[valid], g))
        per_const.append(depth_metrics(np.full_like(g, const), g))
        n_pix += int(valid.sum())
        if len(examples) < keep:
            examples.append({"color": frame.color, "gt": d, "pred": np.where(inside.numpy(), pred, 0.0)})
    if not per_img:
        raise _no_depth(where_test, len(test), "test")
    mean = {k: float(np.mean([m[k] for m in per_img])) for k in DEPTH_KEYS}
    floor = {k: float(np.mean([m[k] for m in per_const])) for k in DEPTH_KEYS}
    return {
        **mean,
        "constant": {"depth_m": const, **floor},
        "fit_frames": len(fit),
        "fit_pixels": int(len(y)),
        "test_frames": len(per_img),
        "test_pixels": n_pix,
        "depth_range": [lo, hi],
        "head": {**head.info, "target": "log depth (metres)"},
        "examples": examples,
    }
