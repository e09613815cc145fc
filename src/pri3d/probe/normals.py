"""Surface-normal probe: ridge regression of camera-frame normals on frozen features.

Ground truth: :func:`pri3d.geometry.normals.normals_from_depth` on the sensor depth with the depth
intrinsics (back-projection by :func:`pri3d.geometry.camera.backproject_depth`, cross product of central
differences over ``step`` pixels, masked at holes, at the border and at depth edges where a neighbour's
depth jumps by more than ``max_rel_jump`` of the centre's, then averaged over a ``(2 smooth + 1)^2``
window of valid normals); unit vectors in the OpenCV camera frame, facing the camera. Colour and depth
cameras share their axes, so the normals hold for the colour image too.

Defaults ``step = 2``, ``smooth = 3``, ``max_rel_jump = 0.1``, chosen on how much the normals of two pixels
6 px apart disagree (median; planar rooms, so mostly noise), on 4-6 frames each: single-pixel differences
(``step 1, smooth 0``) disagree by 46 degrees on the synthetic 240x320 depth and on 7-Scenes' 640x480
Kinect depth (noise and disparity quantisation), 7 on the HoloLens room; ``step 2, smooth 3`` by 3.8,
14.5 and 2.8 degrees. These are pixels of the depth map: at much higher depth resolution, raise them.

Fit: ``pixels_per_frame`` valid-normal pixels per fit frame (seeded), features read at their position
in the colour image, the same ridge head as the depth probe (penalty by cross-validation over blocks of
fit frames) regresses the three components.

Score: at every valid ground-truth pixel of the test frames (depth resolution), the predicted vector is
normalised and its angle to the ground truth measured (``atan2(|a x b|, a . b)``; a zero prediction
counts 90 degrees). Pooled over all test pixels (the convention of Fouhey et al. / Eigen & Fergus and
Probe3D): ``mean_deg``, ``median_deg``, ``rmse_deg`` and the fractions of pixels within 11.25, 22.5 and
30 degrees, keys ``within_11_25``, ``within_22_5``, ``within_30``.

Floor (``constant``): the fit pixels' mean normal, normalised, predicted everywhere.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from pri3d.errors import DataError
from pri3d.geometry.normals import angle_between, normals_from_depth
from pri3d.probe.dense import depth_frames, fit_rows
from pri3d.probe.features import sample_at
from pri3d.probe.head import fit_ridge_cv

__all__ = ["probe_normals", "normal_metrics", "NORMAL_KEYS"]

NORMAL_KEYS = ("mean_deg", "median_deg", "rmse_deg", "within_11_25", "within_22_5", "within_30")


def normal_metrics(err_deg: np.ndarray) -> dict:
    """Metrics of pooled angular errors ``(N,)`` in degrees."""
    e = np.asarray(err_deg, np.float64)
    vals = (
        float(e.mean()),
        float(np.median(e)),
        float(np.sqrt(np.mean(e**2))),
        float(np.mean(e < 11.25)),
        float(np.mean(e < 22.5)),
        float(np.mean(e < 30.0)),
    )
    return dict(zip(NORMAL_KEYS, vals))


def _gt(frame, step: int, smooth: int, max_rel_jump: float):
    if frame.depth is None:
        return None, None
    d = np.asarray(frame.depth, np.float32)
    d = np.where(np.isfinite(d) & (d > 0), d, 0.0)
    n, valid = normals_from_depth(
        torch.from_numpy(d).double()[None],
        torch.as_tensor(frame.depth_intrinsics, dtype=torch.float64),
        step=step,
        max_rel_jump=max_rel_jump,
        smooth=smooth,
    )
    return n[0].float().numpy(), valid[0].numpy()


def probe_normals(
    extractor,
    fit,
    test,
    *,
    pixels_per_frame: int = 512,
    seed: int = 0,
    step: int = 2,
    smooth: int = 3,
    max_rel_jump: float = 0.1,
    keep: int = 3,
    progress=False,
) -> dict:
    """Fit the normal ridge head on ``fit`` frames and score it on ``test`` frames.

    Args: as :func:`pri3d.probe.semseg.probe_semseg`; ``step``, ``smooth`` and ``max_rel_jump`` are the
    ground truth's (see :func:`pri3d.geometry.normals.normals_from_depth`).

    Returns:
        the metrics of :data:`NORMAL_KEYS`, ``constant`` (the floor's), ``fit_frames``, ``fit_pixels``,
        ``test_frames``, ``test_pixels``, ``ground_truth`` (its settings), ``head`` and ``examples``.
    """
    X, Y, rows_frame = _fit_rows(extractor, fit, pixels_per_frame, seed, step, smooth, max_rel_jump, progress)
    head = fit_ridge_cv(X, Y, rows_frame)
    del X
    const = F.normalize(Y.mean(0), dim=0).float()
    e, ec, frames_used, examples = _score(extractor, test, head, const, step, smooth, max_rel_jump, keep, progress)
    return {
        **normal_metrics(e),
        "constant": {"normal": const.tolist(), **normal_metrics(ec)},
        "fit_frames": len(fit),
        "fit_pixels": int(len(Y)),
        "test_frames": frames_used,
        "test_pixels": int(len(e)),
        "ground_truth": {"step": step, "smooth": smooth, "max_rel_jump": max_rel_jump},
        "head": {**head.info, "target": "camera-frame unit normal (3 values, normalised after the head)"},
        "examples": examples,
    }


def _fit_rows(extractor, fit, pixels_per_frame: int, seed: int, step, smooth, max_rel_jump, progress):
    """The fit rows: features ``X``, ground-truth normals ``Y`` (float64) and each row's frame index."""
    where_fit = str(getattr(fit, "path", "fit"))
    gt = partial(_gt, step=step, smooth=smooth, max_rel_jump=max_rel_jump)
    xs, ns, fs = fit_rows(extractor, fit, gt, pixels_per_frame, seed, progress)
    ys = [torch.from_numpy(n).double() for n in ns]
    if not xs:
        raise DataError(
            f"{where_fit}: no pixel with a ground-truth normal (valid depth away from holes and edges) in the "
            f"{len(fit)} fit frames; the normal probe needs depth"
        )
    return torch.cat(xs), torch.cat(ys), torch.cat(fs)


def _score(extractor, test, head, const, step, smooth, max_rel_jump, keep: int, progress):
    """Angular errors of the head and of the constant normal ``const`` over the test frames' valid pixels;
    also the number of frames used and up to ``keep`` pictures' examples."""
    where_test = str(getattr(test, "path", "test"))
    errs, errs_const, examples, frames_used = [], [], [], 0
    gt = partial(_gt, step=step, smooth=smooth, max_rel_jump=max_rel_jump)
    for _, frame, n, valid, uv_c, inside in depth_frames(test, gt, "probe test", progress):
        if not valid.any():
            continue
        frames_used += 1
        vec = head.apply_map(extractor(frame.color))  # (3, h, w)
        pred = sample_at(vec, uv_c.reshape(-1, 2), frame.color.shape[:2]).reshape(*n.shape[:2], 3)
        pred = F.normalize(pred, dim=-1)
        gt = torch.from_numpy(n)
        m = torch.from_numpy(valid)
        errs.append(angle_between(pred[m], gt[m]).numpy())
        errs_const.append(angle_between(const.expand(int(m.sum()), 3), gt[m]).numpy())
        if len(examples) < keep:
            examples.append(
                {
                    "color": frame.color,
                    "gt": np.where(valid[..., None], n, 0.0),
                    "pred": pred.numpy() * inside.numpy()[..., None],
                }
            )
    if not errs:
        raise DataError(
            f"{where_test}: no pixel with a ground-truth normal (valid depth away from holes and edges) in the "
            f"{len(test)} test frames; the normal probe needs depth"
        )
    return np.concatenate(errs), np.concatenate(errs_const), frames_used, examples
