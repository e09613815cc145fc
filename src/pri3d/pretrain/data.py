"""Pre-training data: frame pairs from a ``pri3d prepare`` directory, with on-the-fly correspondences.

One sample is a mined pair ``(scene, frame_a, frame_b)``:

* both colour images resized to the training resolution ``(H, W)`` and colour-augmented
  independently (:mod:`pri3d.pretrain.augment`);
* both depth maps resampled onto the **feature grid** ``(H/2, W/2)`` of the 2D network, whose
  intrinsics are ``scale_intrinsics(K_color, (W/2)/Wc, (H/2)/Hc)``;
* ``view`` matches: pixel-to-pixel correspondences on the feature grids by reprojection with a depth
  test (:func:`pri3d.geometry.correspondences.view_correspondences`), at most K sampled without replacement;
* ``geo`` matches (geo modes): each view's voxel chunk (the scene's voxels inside the frame's
  frustum box, shifted to start at 0) and pixel-to-voxel correspondences of its feature-grid pixels
  (:func:`pri3d.geometry.voxels.pixel_voxel_correspondences`), at most K sampled without replacement;
* ``trivial`` mode: frame A twice, two augmentations, positives at the same pixel.

Randomness (augmentation, match sampling) comes from a generator seeded by the sampler from
``(seed, global sample index)``; the global sample index is a pure function of the optimizer step
(:class:`~pri3d.engine.sampling.StepBatchSampler`). A run is therefore reproducible across worker counts, and a resumed
run sees exactly the batches an uninterrupted run would.

Collation (:func:`collate_pairs`) stacks the A images then the B images into one ``(2B, 3, H, W)``
tensor (one backbone pass) and concatenates matches and sparse voxels with batch indices.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from pri3d.data.io import resize_color
from pri3d.data.splits import Split, resolve_split
from pri3d.engine.sampling import StepBatchSampler  # re-exported: it lives in the engine (both loops' samplers)
from pri3d.engine.seed import derive_seed
from pri3d.errors import DataError
from pri3d.geometry.camera import scale_intrinsics
from pri3d.geometry.correspondences import (
    resample_depth,
    sample_view_matches,
    sample_voxel_matches,
    sample_without_replacement,
)
from pri3d.geometry.voxels import crop_voxels, voxels_in_frustum
from pri3d.pairs.store import Pair, PreparedData
from pri3d.pretrain.augment import ColorAugment, crop_intrinsics, flip_intrinsics, sample_crop

__all__ = [
    "PairDataset",
    "StepBatchSampler",
    "collate_pairs",
    "split_pairs",
    "fixed_sample",
]


def _resolve_split(prepared: PreparedData, split: str, missing_ok: bool) -> Split | None:
    """A split by name (``<prepared>/splits/<name>.txt`` as written by ``prepare --holdout``, then the
    dataset's ``splits/<name>.txt`` or ``scannetv2_<name>.txt``) or by path; None = no split. The rule
    is :func:`pri3d.data.splits.resolve_split`, the one fine-tuning uses."""
    return resolve_split(split, [prepared.root, prepared.input_path], missing_ok=missing_ok)


def split_pairs(
    prepared: PreparedData, train_split: str = "train", val_split: str = "val", *, optional=("train", "val")
):
    """Training and held-out pairs. Splits may name whole scenes or frame ranges of scenes
    (:mod:`pri3d.data.splits`). A held-out pair has both frames in the held-out split; a training pair
    has neither frame there (held-out frames never reach training, even when the train split is
    missing or overlaps it) and both in the train split. A split name that is not found is a
    :class:`DataError`, except the names in ``optional`` (the defaults ``train`` and ``val``, for data
    without splits: then training uses every pair that is not held out, and no recall is measured, both
    said in the note). Returns ``(train_pairs, val_pairs, note)``."""
    val = _resolve_split(prepared, val_split, val_split in optional)
    train = _resolve_split(prepared, train_split, train_split in optional)
    notes = []
    if train_split and train_split != "all" and train is None:
        notes.append(f"no train split {train_split!r} found: training on all mined pairs except held-out ones")
    if val_split and val is None:
        notes.append(f"no held-out split {val_split!r} found: matching recall is not measured")

    def held(p: Pair) -> tuple[bool, bool]:
        if val is None:
            return False, False
        return val.contains(p.scene, p.frame_a), val.contains(p.scene, p.frame_b)

    train_pairs, val_pairs, dropped = [], [], 0
    for p in prepared.pairs:
        ha, hb = held(p)
        if ha and hb:
            val_pairs.append(p)
        elif ha or hb:
            dropped += 1
        elif train is None or (train.contains(p.scene, p.frame_a) and train.contains(p.scene, p.frame_b)):
            train_pairs.append(p)
    if train is not None and val is not None:
        both = [s for s in train.scenes if val.has_scene(s) and not (train.has_frame_ranges or val.has_frame_ranges)]
        if both:
            notes.append(f"{len(both)} scenes are in both splits: kept out of training")
    if dropped and (val is not None and val.has_frame_ranges):
        notes.append(f"{dropped} pairs link a held-out and another frame: used for neither")
    return train_pairs, val_pairs, "; ".join(notes)


def fixed_sample(pairs: list[Pair], n: int, seed: int) -> list[Pair]:
    """At most ``n`` of ``pairs``, chosen by a permutation seeded by ``seed`` (the same on every run)."""
    if n >= len(pairs):
        return list(pairs)
    g = torch.Generator().manual_seed(derive_seed(seed, 4))
    return [pairs[int(i)] for i in torch.randperm(len(pairs), generator=g)[:n]]


class PairDataset(Dataset):
    """Samples of mined pairs; ``dataset[(index, seed)]`` (see the module docstring for the content).

    Args:
        prepared: the prepared directory.
        pairs: the pairs to draw from.
        resolution: ``(H, W)`` of the training images (multiples of 4).
        view / geo / trivial: which correspondences to compute.
        num_matches: K, matches kept per pair (and per chunk).
        depth_threshold: metres, for view correspondences.
        voxel_radius: metres, for pixel-to-voxel correspondences; None = the prepared voxel size.
        voxel_input: ``occupancy`` or ``rgb`` voxel features.
        voxel_crop: ``aabb`` (the prepared chunk: voxels in the frustum's axis-aligned box, as the
            official code) or ``frustum`` (only voxels whose centre projects into the image, in front
            of the camera and at most one voxel beyond the frame's farthest depth: fewer voxels).
        crop_margin: metres; each face of the frustum box grows by a random amount in
            ``[0, crop_margin]`` (a tight, view-aligned chunk boundary lets the 3D features encode where a
            voxel sits in the view, a shortcut for the geometric loss).
        augment: colour augmentations on (training) or off (evaluation).
        crop_scale: ``(lo, hi)`` area fraction of a random resized crop of each view, drawn
            independently per view before resizing (None = no crop); ``crop_ratio`` its aspect-ratio
            jitter. Training only. The crop changes the view's intrinsics, so correspondences stay exact.
        flip: random horizontal flip of each view (p = 0.5), training only (a negative focal length).
    """

    def __init__(
        self,
        prepared: PreparedData,
        pairs: list[Pair],
        *,
        resolution=(240, 320),
        view: bool = True,
        geo: bool = False,
        trivial: bool = False,
        num_matches: int = 1024,
        depth_threshold: float = 0.05,
        voxel_radius: float | None = None,
        voxel_input: str = "occupancy",
        voxel_crop: str = "aabb",
        crop_margin: float = 0.0,
        augment: bool = True,
        crop_scale=None,
        crop_ratio=(3 / 4, 4 / 3),
        flip: bool = False,
    ):
        if not pairs:
            raise DataError(f"{prepared.root}: no frame pairs to train on (check the splits and pairs.csv)")
        self.prepared = prepared
        self.pairs = list(pairs)
        self.size = (int(resolution[0]), int(resolution[1]))
        self.feat_size = (self.size[0] // 2, self.size[1] // 2)
        self.view, self.geo, self.trivial = view, geo, trivial
        self.num_matches = num_matches
        self.depth_threshold = depth_threshold
        self.voxel_radius = voxel_radius
        self.voxel_input = voxel_input
        if voxel_crop not in ("aabb", "frustum"):
            raise ValueError(f"voxel_crop must be aabb or frustum, got {voxel_crop!r}")
        self.voxel_crop = voxel_crop
        self.crop_margin = float(crop_margin)
        self.augment = ColorAugment(enabled=augment)
        # geometric augmentation (training only): random resized crops, flips; both only change K
        self.crop_scale = tuple(float(v) for v in crop_scale) if (augment and crop_scale is not None) else None
        self.crop_ratio = tuple(float(v) for v in crop_ratio)
        self.flip = bool(flip and augment)
        self.geometric = self.crop_scale is not None or self.flip
        self.voxel_cache = 4
        self._vox_cache: dict = {}
        self.scenes = prepared.scenes()
        missing = sorted({p.scene for p in self.pairs} - set(self.scenes))
        if missing:
            raise DataError(
                f"{prepared.root}: pairs refer to scenes missing from {prepared.input_path}: {', '.join(missing[:5])}"
            )

    def __len__(self) -> int:
        return len(self.pairs)

    # -- one view -----------------------------------------------------------------------------------
    def _frame(self, scene_id: str, frame_id: int):
        fr = self.scenes[scene_id].load_frame(frame_id, labels=False)
        if fr.color is None or fr.depth is None:
            raise DataError(f"{scene_id} frame {frame_id}: colour or depth missing")
        return fr

    def _view(self, fr, g: torch.Generator | None = None):
        """``(colour (H, W, 3) uint8, depth (h, w) on the feature grid, K_feat, pose)`` of a frame; with a
        generator and geometric augmentation on, a random resized crop (and flip) of it."""
        color = fr.color
        Hc, Wc = color.shape[:2]
        h, w = self.feat_size
        Kc = torch.as_tensor(fr.color_intrinsics, dtype=torch.float64)
        flip = False
        if g is not None and self.crop_scale is not None:
            x0, y0, cw, ch = sample_crop(Hc, Wc, self.size, self.crop_scale, self.crop_ratio, g)
            color = color[y0 : y0 + ch, x0 : x0 + cw]
            Kc = crop_intrinsics(Kc, x0, y0)
            Hc, Wc = ch, cw
        if g is not None and self.flip:
            flip = bool(torch.rand((), generator=g) < 0.5)
        K_feat = scale_intrinsics(Kc, w / Wc, h / Hc)
        image = resize_color(np.ascontiguousarray(color), self.size)
        if flip:
            image = np.ascontiguousarray(image[:, ::-1])
            K_feat = flip_intrinsics(K_feat, w)
        depth = resample_depth(
            torch.from_numpy(np.ascontiguousarray(fr.depth, dtype=np.float32))[None],
            torch.as_tensor(fr.depth_intrinsics, dtype=torch.float64),
            K_feat,
            (h, w),
        )[0]
        pose = torch.as_tensor(fr.pose, dtype=torch.float64)
        return image, depth, K_feat, pose

    def _load(self, scene_id: str, frame_id: int, g: torch.Generator | None = None):
        return self._view(self._frame(scene_id, frame_id), g)

    def _voxels(self, scene_id: str):
        # a small per-worker LRU of scene geometry (pairs come from random scenes)
        vox = self._vox_cache.pop(scene_id, None)
        if vox is None:
            vox = self.prepared.voxels(scene_id)
            if len(self._vox_cache) >= self.voxel_cache:
                self._vox_cache.pop(next(iter(self._vox_cache)))
        self._vox_cache[scene_id] = vox
        return vox

    def _chunk(self, scene_id: str, frame_id: int, depth: torch.Tensor, K_feat, pose, g: torch.Generator):
        vox = self._voxels(scene_id)
        try:
            lo, hi = vox.frame_box(frame_id)
        except KeyError as e:
            raise DataError(f"{self.prepared.geometry_path(scene_id)}: {e.args[0]}") from e
        if self.crop_margin > 0:  # random growth of each face: the chunk boundary no longer tells the view
            grow = torch.rand(2, 3, generator=g, dtype=torch.float64).numpy() * self.crop_margin
            lo, hi = lo - grow[0], hi + grow[1]
        inside = crop_voxels(vox.coords, vox.origin, vox.voxel_size, lo, hi)
        coords, colors = vox.coords[inside], vox.colors[inside]
        coords_t = torch.from_numpy(np.ascontiguousarray(coords, dtype=np.int32))
        if self.voxel_crop == "frustum" and len(coords_t):
            keep = voxels_in_frustum(coords_t, vox.origin, vox.voxel_size, K_feat, pose, depth)
            coords_t, colors = coords_t[keep], colors[keep.numpy()]
        radius = vox.voxel_size if self.voxel_radius is None else self.voxel_radius
        m = sample_voxel_matches(depth, K_feat, pose, coords_t, vox.origin, vox.voxel_size, radius, self.num_matches, g)
        local = coords_t - coords_t.min(dim=0).values if len(coords_t) else coords_t
        if self.voxel_input == "rgb":
            feats = torch.from_numpy(np.ascontiguousarray(colors)).float() / 255.0 - 0.5
        else:
            feats = torch.ones((len(coords_t), 1), dtype=torch.float32)
        return local, feats, m

    # -- a sample -----------------------------------------------------------------------------------
    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, key)
        p = self.pairs[int(index)]
        g = torch.Generator().manual_seed(int(seed))
        out = {"key": (p.scene, p.frame_a, p.frame_b)}
        geo_g = g if self.geometric else None
        if self.trivial:  # one image, two augmentations, positives at the same surface point
            fr = self._frame(p.scene, p.frame_a)
            col_a, dep_a, K_a, T_a = self._view(fr, geo_g)
            if geo_g is None:  # the same pixel
                out["image_a"] = self.augment(col_a, g)
                out["image_b"] = self.augment(col_a, g)
                out["depth_a"] = out["depth_b"] = dep_a
                idx = sample_without_replacement(dep_a.numel(), self.num_matches, g)
                out["view"] = torch.stack([idx, idx], dim=1)
                return out
            col_b, dep_b, K_b, T_b = self._view(fr, geo_g)  # two crops of one frame: pixels map by K alone
        else:
            col_a, dep_a, K_a, T_a = self._load(p.scene, p.frame_a, geo_g)
            col_b, dep_b, K_b, T_b = self._load(p.scene, p.frame_b, geo_g)
        out["image_a"] = self.augment(col_a, g)
        out["image_b"] = self.augment(col_b, g)
        out["depth_a"], out["depth_b"] = dep_a, dep_b
        out["K_a"], out["K_b"], out["pose_a"], out["pose_b"] = K_a, K_b, T_a, T_b  # of the (augmented) feature grids
        if self.view or self.trivial:
            out["view"] = sample_view_matches(
                dep_a, K_a, T_a, dep_b, K_b, T_b, self.num_matches, g, depth_threshold=self.depth_threshold
            )
        if self.geo:
            out["vox_a"] = self._chunk(p.scene, p.frame_a, dep_a, K_a, T_a, g)
            out["vox_b"] = self._chunk(p.scene, p.frame_b, dep_b, K_b, T_b, g)
        return out


def collate_pairs(samples: list[dict]) -> dict:
    """Batch samples of :class:`PairDataset`.

    Returns a dict with
        ``images`` ``(2B, 3, H, W)`` (A images, then B images), ``depth`` ``(2B, h, w)``,
        ``num_pairs`` B, ``keys`` list of (scene, frame_a, frame_b),
        ``view`` ``(N, 3)`` int64 ``[pair, flat_a, flat_b]`` (when present),
        ``vox_coords`` ``(M, 4)`` int32 ``[chunk, x, y, z]`` with chunk = image index (A: b, B: B + b),
        ``vox_feats`` ``(M, Cin)``, ``geo`` ``(G, 3)`` int64 ``[image, flat_pixel, voxel_row]``
        (when present).
    """
    B = len(samples)
    out = {
        "num_pairs": B,
        "keys": [s["key"] for s in samples],
        "images": torch.stack([s["image_a"] for s in samples] + [s["image_b"] for s in samples]),
        "depth": torch.stack([s["depth_a"] for s in samples] + [s["depth_b"] for s in samples]),
    }
    if "view" in samples[0]:
        rows = [
            torch.cat([torch.full((len(s["view"]), 1), b, dtype=torch.int64), s["view"]], 1)
            for b, s in enumerate(samples)
        ]
        out["view"] = torch.cat(rows)
    if "vox_a" in samples[0]:
        chunks = [s["vox_a"] for s in samples] + [s["vox_b"] for s in samples]
        coords, feats, geo = [], [], []
        offset = 0
        for i, (c, f, m) in enumerate(chunks):
            coords.append(torch.cat([torch.full((len(c), 1), i, dtype=torch.int32), c.to(torch.int32)], 1))
            feats.append(f)
            geo.append(torch.stack([torch.full((len(m),), i, dtype=torch.int64), m[:, 0], m[:, 1] + offset], 1))
            offset += len(c)
        out["vox_coords"] = torch.cat(coords)
        out["vox_feats"] = torch.cat(feats)
        out["geo"] = torch.cat(geo)
    return out
