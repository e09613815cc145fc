"""Downstream datasets over pri3d Scenes: semantic segmentation and instances (Mask R-CNN targets).

Both datasets first **scan the label files once** (threads, progress bar) to build their index:

* semantic segmentation keeps frames that have a label map, and counts pixels whose id is not a NYU-40
  id at all (ignored, reported);
* instances lists, per frame, the instances that survive the class set and the minimum mask area,
  skips frames without any (counted) and raises :class:`DataError` with the counts when a dataset yields
  no instance at all (the official converter silently wrote empty annotation files in that case).

Splits: :func:`open_split` picks the scenes of ``train`` / ``val`` from, in order, an explicit split
(file or list of scene ids), the split file :func:`pri3d.data.splits.resolve_split` finds for the name
(``DIR/splits/<which>.txt`` of the synthetic generator, ``DIR/scannetv2_<which>.txt`` of ScanNet; ``val``
also finds ``test`` files; the rule pre-training uses) or, for NYUv2, the reader's ``*train`` /
``*test`` scenes (official 795/654 split).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from pri3d.data.formats import detect_format, open_dataset
from pri3d.data.scene import Scene, SkipCounter
from pri3d.data.splits import resolve_split, split_names
from pri3d.downstream.classes import LabelSet
from pri3d.downstream.fractions import select_fraction
from pri3d.errors import ConfigError, DataError
from pri3d.models.imagenet import normalize as imagenet_normalize

__all__ = [
    "open_split",
    "SemSegDataset",
    "InstanceDataset",
    "extract_instances",
    "masks_to_boxes",
    "DatasetStats",
]


# ---------------------------------------------------------------------------------------------- splits


def open_split(root, which: str, *, format: str | None = None, split=None) -> list[Scene]:
    """Scenes of split ``which`` ("train" or "val") of the dataset at ``root``.

    ``split``: a split file path or a list of scene ids, overriding the automatic choice."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: no such file or directory")
    fmt = format or detect_format(root)
    if split is not None:
        return open_dataset(root, fmt, split=split)
    found = resolve_split(which, [root], missing_ok=True)  # the rule pre-training uses too (splits/, scannetv2_*.txt)
    if found is not None:
        return open_dataset(root, fmt, split=found.scene_ids())
    names = split_names(which)
    scenes = open_dataset(root, fmt)
    if fmt == "nyuv2":
        # the reader names scenes nyuv2_train / nyuv2_test (.mat + splits.mat) or by folder (train/, test/)
        picked = [s for s in scenes if any(s.scene_id == n or s.scene_id.endswith("_" + n) for n in names)]
        if picked:
            return picked
        if len(scenes) == 1:
            raise DataError(
                f"{root}: NYUv2 without a train/test split (put splits.mat next to the .mat, or use a PNG export "
                f"with train/ and test/ folders); found only scene {scenes[0].scene_id!r}"
            )
    raise ConfigError(
        f"{root}: no {which} split found (looked for splits/{names[0]}.txt, scannetv2_{names[0]}.txt"
        f"{', NYUv2 train/test scenes' if fmt == 'nyuv2' else ''}); pass data.{which}_split=FILE "
        "(one scene id per line)"
    )


# ------------------------------------------------------------------------------------------- helpers


@dataclass
class DatasetStats:
    """What the label scan found; reported by the loop and written to results.json."""

    frames_scanned: int = 0
    frames_used: int = 0
    unknown_label_pixels: int = 0
    unknown_label_frames: int = 0
    instances: int = 0
    instances_dropped_small: int = 0
    instances_dropped_class: int = 0
    skips: SkipCounter = field(default_factory=SkipCounter)

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "skips"}
        d["skips"] = self.skips.to_dict()
        return d

    def summary(self) -> str:
        parts = [f"{self.frames_used}/{self.frames_scanned} frames"]
        if self.instances or self.instances_dropped_small or self.instances_dropped_class:
            parts.append(
                f"{self.instances} instances ({self.instances_dropped_small} below the minimum area and "
                f"{self.instances_dropped_class} outside the class set dropped)"
            )
        if self.unknown_label_pixels:
            parts.append(
                f"{self.unknown_label_pixels} pixels in {self.unknown_label_frames} frames had label ids outside "
                "NYU-40 (ignored)"
            )
        if self.skips.total:
            parts.append(f"skipped: {self.skips.summary()}")
        return "; ".join(parts)


def _scan(items, fn, workers: int, desc: str, progress: bool):
    """Map ``fn`` over ``items`` with a thread pool (image decoding releases the GIL), in order."""
    if workers <= 1 or len(items) < 8:
        return [fn(it) for it in tqdm(items, desc=desc, disable=not progress, leave=False)]
    with ThreadPoolExecutor(workers) as ex:
        return list(tqdm(ex.map(fn, items), total=len(items), desc=desc, disable=not progress, leave=False))


def _resize(img: np.ndarray, size: tuple[int, int], nearest: bool) -> np.ndarray:
    h, w = size
    if img.shape[:2] == (h, w):
        return img
    if nearest:
        interp = cv2.INTER_NEAREST
    else:
        interp = cv2.INTER_AREA if img.shape[0] > h else cv2.INTER_LINEAR
    if img.dtype == np.int64 or img.dtype == np.int32:
        # cv2 cannot resize int64; int32 label maps go through float32 exactly up to 2**24.
        if img.size and (img.max() >= 2**24 or img.min() < -(2**24)):
            raise ValueError("label values too large to resize")
        return cv2.resize(img.astype(np.float32), (w, h), interpolation=interp).astype(img.dtype)
    return cv2.resize(img, (w, h), interpolation=interp)


def _to_tensor_image(rgb: np.ndarray, normalize: bool) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(255.0)
    return imagenet_normalize(x) if normalize else x


def _label_frame(item: tuple[Scene, int]):
    """The annotations of one ``(scene, frame id)`` item (no colour, no depth): what the label scan reads."""
    scene, fid = item
    return scene.load_frame(fid, color=False, depth=False, labels=True)


class _LabelledFrames(Dataset):
    """What both task datasets share: the output size, training augmentation flags and scan statistics."""

    def _begin(self, scenes: Sequence[Scene], image_size, train: bool, hflip: bool) -> list[tuple[Scene, int]]:
        """Set the common attributes; returns every ``(scene, frame id)`` item, to be scanned."""
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.train = train
        self.hflip = hflip
        self.stats = DatasetStats()
        items = [(s, f) for s in scenes for f in s.frame_ids]
        self.stats.frames_scanned = len(items)
        return items


def _subset(index: list, fraction: float, by: str, seed: int, max_images: int) -> list:
    """The label fraction of ``index`` (items ``(scene, frame, ...)``), then at most ``max_images`` of
    them, evenly spaced (0 = all)."""
    if fraction < 1.0:
        keys = [(it[0].scene_id, it[1]) for it in index]
        keep = set(select_fraction(keys, fraction, by=by, seed=seed))
        index = [it for it, k in zip(index, keys) if k in keep]
    if max_images and len(index) > max_images:
        index = index[:: int(np.ceil(len(index) / max_images))][:max_images]
    return index


# -------------------------------------------------------------------------------------------- semseg


class SemSegDataset(_LabelledFrames):
    """Frames with label maps -> ``{"image": (3, H, W) float normalised, "label": (H, W) int64
    (IGNORE_INDEX = 255 where ignored), "id": "scene/frame"}`` at ``image_size`` (H, W).

    Args:
        scenes: pri3d Scenes (raw labels are NYU-40 ids).
        label_set: the benchmark mapping (e.g. ``scannet20``).
        image_size: ``(H, W)`` the network sees; colour is resized with area/bilinear, labels with
            nearest neighbour (fixed-scale evaluation at this size).
        train: enables ``hflip`` (random horizontal flip).
        fraction, fraction_by, seed: data-efficient subset (see :mod:`pri3d.downstream.fractions`),
            applied after frames without labels are removed.
    """

    def __init__(
        self,
        scenes: Sequence[Scene],
        label_set: LabelSet,
        image_size: tuple[int, int],
        *,
        train: bool = False,
        hflip: bool = False,
        fraction: float = 1.0,
        fraction_by: str = "scene",
        seed: int = 0,
        scan_workers: int = 4,
        progress: bool = True,
        max_images: int = 0,
    ):
        self.label_set = label_set
        items = self._begin(scenes, image_size, train, hflip)

        def scan(it):
            fr = _label_frame(it)
            if fr.label is None:
                return None
            _, n_unknown = label_set.map(fr.label)
            return n_unknown

        results = _scan(items, scan, scan_workers, "scanning labels", progress)
        index = []
        for it, r in zip(items, results):
            if r is None:
                self.stats.skips.add("frame without a label map", f"{it[0].scene_id}/{it[1]}")
                continue
            if r:
                self.stats.unknown_label_pixels += r
                self.stats.unknown_label_frames += 1
            index.append(it)
        if not index:
            raise DataError(
                f"no labelled frames among {len(items)} frames of {len(scenes)} scenes "
                f"({', '.join(s.scene_id for s in scenes[:5])}{' ...' if len(scenes) > 5 else ''})"
            )
        self.index = _subset(index, fraction, fraction_by, seed, max_images)
        self.stats.frames_used = len(self.index)

    def __len__(self) -> int:
        return len(self.index)

    def item_id(self, i: int) -> str:
        scene, fid = self.index[i]
        return f"{scene.scene_id}/{fid}"

    def __getitem__(self, i: int) -> dict:
        scene, fid = self.index[i]
        fr = scene.load_frame(fid, color=True, depth=False, labels=True)
        if fr.label is None:
            raise DataError(f"{scene.root}: frame {fid} lost its label map")
        label, _ = self.label_set.map(fr.label)
        rgb = _resize(fr.color, self.image_size, nearest=False)
        label = _resize(label, self.image_size, nearest=True)
        if self.train and self.hflip and torch.rand(()) < 0.5:
            rgb, label = rgb[:, ::-1], label[:, ::-1]
        return {
            "image": _to_tensor_image(rgb, normalize=True),
            "label": torch.from_numpy(np.ascontiguousarray(label)).long(),
            "id": f"{scene.scene_id}/{fid}",
        }

    @staticmethod
    def collate(batch: list[dict]) -> dict:
        return {
            "image": torch.stack([b["image"] for b in batch]),
            "label": torch.stack([b["label"] for b in batch]),
            "id": [b["id"] for b in batch],
        }


# ----------------------------------------------------------------------------------------- instances

INSTANCE_FORMATS = ("separate", "combined")


def extract_instances(
    label: np.ndarray | None, instance: np.ndarray | None, convention: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel instance keys and their NYU-40 class ids.

    Conventions:
        ``separate``: an instance-id map plus the semantic label map (ScanNet 25k, the synthetic
            generator, NYUv2). An instance is the set of pixels sharing ``(label, instance id)``,
            so per-class instance numbering (NYUv2) and globally unique ids (ScanNet) both work (pixels
            need not be connected).
            Instance id 0 or label 0 = no instance.
        ``combined``: one map holding ``label * 1000 + instance`` (``instance`` argument, or ``label``
            when no separate instance map exists). Values with ``instance == 0`` are no instance.

    Returns:
        ``keys``: ``(H, W)`` int64, 0 = no instance; ``classes``: NYU-40 id of each key as a dict-like
        ``(2, N)`` array ``[[key...], [nyu40...]]``.
    """
    if convention == "separate":
        if instance is None or label is None:
            raise DataError("instance convention 'separate' needs both a label map and an instance map")
        if instance.shape != label.shape:
            raise DataError(f"instance map {instance.shape} and label map {label.shape} differ in size")
        lab = label.astype(np.int64)
        inst = instance.astype(np.int64)
        keys = np.where((inst > 0) & (lab > 0), lab * (1 << 20) + inst, 0)
        uniq = np.unique(keys)
        uniq = uniq[uniq > 0]
        return keys, np.stack([uniq, uniq >> 20])
    if convention == "combined":
        src = instance if instance is not None else label
        if src is None:
            raise DataError("instance convention 'combined' needs a label*1000+instance map")
        v = src.astype(np.int64)
        keys = np.where((v % 1000) > 0, v, 0)
        uniq = np.unique(keys)
        uniq = uniq[uniq > 0]
        return keys, np.stack([uniq, uniq // 1000])
    raise ConfigError(f"instance format must be one of {', '.join(INSTANCE_FORMATS)}, got {convention!r}")


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """``(N, H, W)`` bool -> ``(N, 4)`` float32 ``x0, y0, x1, y1`` (pixel-edge coordinates, x1/y1
    exclusive)."""
    boxes = np.zeros((len(masks), 4), dtype=np.float32)
    for i, m in enumerate(masks):
        ys = np.flatnonzero(m.any(1))
        xs = np.flatnonzero(m.any(0))
        if len(xs):
            boxes[i] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return boxes


class InstanceDataset(_LabelledFrames):
    """Frames with instances -> ``(image (3, H, W) float in [0, 1], target)`` for torchvision Mask
    R-CNN, with ``target = {"boxes": (N, 4) float xyxy, "labels": (N,) int64 category 1..K,
    "masks": (N, H, W) uint8, "image_id": int, "area", "iscrowd"}`` at ``image_size``.

    ``min_area`` is applied at the label maps' own (full) resolution, as the official converter did
    (1000 px at 640x480). Frames left without instances are skipped and counted; a dataset with no
    instance at all is a :class:`DataError` listing the counts.
    """

    def __init__(
        self,
        scenes: Sequence[Scene],
        instance_set: LabelSet,
        image_size: tuple[int, int],
        *,
        convention: str = "separate",
        min_area: int = 1000,
        train: bool = False,
        hflip: bool = False,
        fraction: float = 1.0,
        fraction_by: str = "scene",
        seed: int = 0,
        scan_workers: int = 4,
        progress: bool = True,
        max_images: int = 0,
    ):
        if convention not in INSTANCE_FORMATS:
            raise ConfigError(f"instance format must be one of {', '.join(INSTANCE_FORMATS)}, got {convention!r}")
        self.instance_set = instance_set
        self.convention = convention
        self.min_area = int(min_area)
        items = self._begin(scenes, image_size, train, hflip)

        def scan(it):
            fr = _label_frame(it)
            if fr.instance is None and (convention == "separate" or fr.label is None):
                return None
            keys, cls = extract_instances(fr.label, fr.instance, convention)
            if cls.shape[1] == 0:
                return [], 0, 0
            cat, _ = instance_set.map(cls[1])
            areas = np.bincount(np.searchsorted(cls[0], keys[keys > 0]), minlength=cls.shape[1])
            in_set = cat > 0
            big = areas >= self.min_area
            kept = [(int(k), int(c)) for k, c, ok in zip(cls[0], cat, in_set & big) if ok]
            return kept, int((~in_set).sum()), int((in_set & ~big).sum())

        results = _scan(items, scan, scan_workers, "scanning instances", progress)
        index = []
        for it, r in zip(items, results):
            where = f"{it[0].scene_id}/{it[1]}"
            if r is None:
                self.stats.skips.add("frame without instance annotation", where)
                continue
            kept, dropped_cls, dropped_small = r
            self.stats.instances_dropped_class += dropped_cls
            self.stats.instances_dropped_small += dropped_small
            if not kept:
                self.stats.skips.add("frame without usable instances", where)
                continue
            self.stats.instances += len(kept)
            index.append((it[0], it[1], kept))
        if not index:
            raise DataError(
                f"the dataset yields zero instances: {len(items)} frames of {len(scenes)} scenes scanned, "
                f"{self.stats.instances_dropped_class} instances outside the {instance_set.name} classes, "
                f"{self.stats.instances_dropped_small} smaller than min_mask_area={self.min_area} px, "
                f"skipped frames: {self.stats.skips.summary()} (instance format {convention!r}: "
                "check data.instance_format and data.min_mask_area)"
            )
        self.index = _subset(index, fraction, fraction_by, seed, max_images)
        self.stats.frames_used = len(self.index)
        self.stats.instances = sum(len(k) for _, _, k in self.index)

    def __len__(self) -> int:
        return len(self.index)

    def item_id(self, i: int) -> str:
        scene, fid, _ = self.index[i]
        return f"{scene.scene_id}/{fid}"

    def target(self, i: int, flip: bool = False) -> tuple[np.ndarray | None, dict]:
        """``(rgb or None, target dict of numpy arrays)`` of item ``i`` at ``image_size``."""
        scene, fid, kept = self.index[i]
        fr = scene.load_frame(fid, color=True, depth=False, labels=True)
        # resize the raw maps (small values, exact through float32) before forming keys
        lab = None if fr.label is None else _resize(fr.label.astype(np.int32), self.image_size, nearest=True)
        ins = None if fr.instance is None else _resize(fr.instance.astype(np.int32), self.image_size, nearest=True)
        keys, _ = extract_instances(lab, ins, self.convention)
        rgb = _resize(fr.color, self.image_size, nearest=False)
        if flip:
            rgb, keys = rgb[:, ::-1], keys[:, ::-1]
        masks, labels = [], []
        for k, c in kept:
            m = keys == k
            if m.any():  # a tiny instance can vanish when resizing down
                masks.append(m)
                labels.append(c)
        h, w = self.image_size
        masks = np.stack(masks) if masks else np.zeros((0, h, w), dtype=bool)
        return rgb, {
            "boxes": masks_to_boxes(masks),
            "labels": np.asarray(labels, dtype=np.int64),
            "masks": masks.astype(np.uint8),
            "image_id": i,
            "area": masks.reshape(len(masks), -1).sum(1).astype(np.float32),
            "iscrowd": np.zeros(len(masks), dtype=np.int64),
        }

    def __getitem__(self, i: int):
        flip = bool(self.train and self.hflip and torch.rand(()) < 0.5)
        rgb, t = self.target(i, flip)
        target = {k: torch.as_tensor(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v for k, v in t.items()}
        target["boxes"] = target["boxes"].float()
        target["id"] = self.item_id(i)
        return _to_tensor_image(rgb, normalize=False), target

    @staticmethod
    def collate(batch):
        return [b[0] for b in batch], [b[1] for b in batch]
