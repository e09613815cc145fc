"""What the two dense regression probes (depth, normals) share: walking frames whose ground truth lives
on the depth grid, and drawing the fit rows from them."""

from __future__ import annotations

import torch
from tqdm import tqdm

from pri3d.engine.seed import derive_seed
from pri3d.probe.features import depth_grid_in_color, sample_at
from pri3d.probe.frames import pick_pixels

__all__ = ["depth_frames", "fit_rows"]


def depth_frames(frames, ground_truth, desc: str, progress: bool):
    """Yield ``(i, frame, gt, valid, uv_c, inside)`` for each frame of ``frames`` (loaded with depth) that has
    a ground truth. ``ground_truth(frame) -> (gt, valid)``, ``(None, None)`` for none: ``gt`` is ``(H, W, ...)``
    on the depth grid, ``valid`` its ``(H, W)`` mask; the yielded ``valid`` is also inside the colour image.
    ``uv_c`` and ``inside``: the depth pixels' places in the colour image (:func:`depth_grid_in_color`)."""
    for i in tqdm(range(len(frames)), desc=desc, disable=not progress, leave=False):
        frame = frames.load(i, depth=True, labels=False)
        gt, valid = ground_truth(frame)
        if gt is None:
            continue
        uv_c, inside = depth_grid_in_color(
            gt.shape[:2], frame.depth_intrinsics, frame.color_intrinsics, frame.color.shape[:2]
        )
        yield i, frame, gt, valid & inside.numpy(), uv_c, inside


def fit_rows(extractor, fit, ground_truth, pixels_per_frame: int, seed: int, progress: bool) -> tuple[list, list, list]:
    """The fit rows of ``fit``'s frames (:func:`depth_frames`): up to ``pixels_per_frame`` valid pixels a
    frame, drawn with ``derive_seed(seed, i)``. Returns per-frame lists: features ``(n, C)``, the ground
    truth at those pixels (numpy, as ``gt`` holds it) and the frame index of each row; empty lists when no
    frame has a valid pixel."""
    xs, ys, fs = [], [], []
    for i, frame, gt, valid, uv_c, _ in depth_frames(fit, ground_truth, "probe fit", progress):
        uv = pick_pixels(valid, pixels_per_frame, derive_seed(seed, i))
        if not len(uv):
            continue
        fmap = extractor(frame.color)
        fs.append(torch.full((len(uv),), i, dtype=torch.int64))
        xs.append(sample_at(fmap, uv_c[uv[:, 1], uv[:, 0]], frame.color.shape[:2]))
        ys.append(gt[uv[:, 1], uv[:, 0]])
    return xs, ys, fs
