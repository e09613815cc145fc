"""The floor under a semantic-segmentation table, measured on the same splits, and the class coverage.

Every learned row is read against what needs no learning at all:

* **majority class**: predict the most frequent class of the labelled frames everywhere;
* **position + coarse colour lookup**: a table keyed on (row band, column band, coarse colour) of the
  pixel, holding the most frequent labelled class for that key (falling back to the key without colour,
  then to the majority class); it is what "walls are at the top, floors at the bottom, beds are
  brownish" is worth;

and by **class coverage**: the classes that appear in the evaluation frames but have no labelled pixel
in the training subset. Such a class cannot be learned from the labels given; a benchmark whose
coverage list is not empty scores part of its test pixels on nothing the methods could know.

Everything is computed at the resolution the fine-tuning is scored at (``SemSegDataset.image_size``,
labels resized with nearest neighbour), with the same confusion-matrix metric
(:func:`pri3d.downstream.metrics.semseg_scores`).
"""

from __future__ import annotations

import numpy as np
import torch

from pri3d.downstream.datasets import SemSegDataset, _resize
from pri3d.downstream.metrics import confusion_matrix, semseg_scores

__all__ = ["label_counts", "coverage_gaps", "floor_scores", "LookupFloor"]

IGNORE = 255


def _frames(ds: SemSegDataset, colour: bool):
    """``(label (H, W) int64 with IGNORE, rgb (H, W, 3) uint8 or None)`` of every frame of ``ds``, at
    its ``image_size``."""
    for scene, fid in ds.index:
        fr = scene.load_frame(fid, color=colour, depth=False, labels=True)
        label, _ = ds.label_set.map(fr.label)
        label = _resize(label, ds.image_size, nearest=True).astype(np.int64)
        rgb = _resize(fr.color, ds.image_size, nearest=False) if colour else None
        yield label, rgb


def label_counts(ds: SemSegDataset) -> np.ndarray:
    """``(num_classes,)`` int64: labelled pixels per class over the frames of ``ds`` (ignored pixels
    not counted)."""
    n = len(ds.label_set.class_names)
    counts = np.zeros(n, dtype=np.int64)
    for label, _ in _frames(ds, colour=False):
        v = label[label != IGNORE]
        counts += np.bincount(v.reshape(-1), minlength=n)[:n]
    return counts


def coverage_gaps(train_counts: np.ndarray, eval_counts: np.ndarray, names) -> list[str]:
    """Names of the classes present in the evaluation frames with no labelled training pixel."""
    return [names[c] for c in range(len(names)) if eval_counts[c] > 0 and train_counts[c] == 0]


class LookupFloor:
    """The position + coarse-colour lookup table (see the module docstring).

    Args:
        num_classes: classes of the label set.
        bands: ``(rows, cols)`` image bands of the position key.
        levels: levels per colour channel of the colour key (``levels ** 3`` colours).
    """

    def __init__(self, num_classes: int, bands: tuple[int, int] = (6, 8), levels: int = 4):
        if min(bands) < 1 or levels < 1:
            raise ValueError("bands and levels must be >= 1")
        self.n, self.bands, self.levels = num_classes, bands, levels
        self.full = np.zeros((bands[0] * bands[1] * levels**3, num_classes), dtype=np.int64)

    def _keys(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(position key, position+colour key)`` per pixel, each ``(H, W)`` int64."""
        H, W = rgb.shape[:2]
        rows = (np.arange(H) * self.bands[0] // H)[:, None]
        cols = (np.arange(W) * self.bands[1] // W)[None, :]
        pos = rows * self.bands[1] + cols
        q = (rgb.astype(np.int64) * self.levels) // 256  # (H, W, 3) in 0..levels-1
        colour = (q[..., 0] * self.levels + q[..., 1]) * self.levels + q[..., 2]
        return pos, pos * self.levels**3 + colour

    def fit(self, frames) -> LookupFloor:
        """Count ``(label, rgb)`` frames (labels with IGNORE) into the table."""
        for label, rgb in frames:
            _, key = self._keys(rgb)
            ok = label != IGNORE
            np.add.at(self.full, (key[ok], label[ok]), 1)
        return self

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        pos, key = self._keys(rgb)
        by_pos = self.full.reshape(-1, self.levels**3, self.n).sum(1)  # (positions, classes)
        majority = int(self.full.sum(0).argmax())
        table = np.where(self.full.sum(1) > 0, self.full.argmax(1), -1)
        fallback = np.where(by_pos.sum(1) > 0, by_pos.argmax(1), majority)
        pred = table[key]
        return np.where(pred >= 0, pred, fallback[pos])


def floor_scores(train: SemSegDataset, evaluate: SemSegDataset) -> dict:
    """The majority-class and lookup floors of ``train``'s labelled frames, scored on ``evaluate``; and
    the class coverage. Returns ``{"majority": {"miou", "class", "scores"}, "lookup": {"miou",
    "scores"}, "gaps": [class names], "train_pixels": [...], "eval_pixels": [...]}``."""
    names = list(train.label_set.class_names)
    n = len(names)
    lookup = LookupFloor(n).fit(_frames(train, colour=True))
    train_counts = lookup.full.sum(0)
    majority = int(train_counts.argmax())
    conf_major = torch.zeros(n, n, dtype=torch.int64)
    conf_lookup = torch.zeros(n, n, dtype=torch.int64)
    eval_counts = np.zeros(n, dtype=np.int64)
    for label, rgb in _frames(evaluate, colour=True):
        gt = torch.from_numpy(label)
        eval_counts += np.bincount(label[label != IGNORE].reshape(-1), minlength=n)[:n]
        conf_major += confusion_matrix(torch.full_like(gt, majority), gt, n, IGNORE)
        conf_lookup += confusion_matrix(torch.from_numpy(lookup.predict(rgb)), gt, n, IGNORE)
    major, look = semseg_scores(conf_major, names), semseg_scores(conf_lookup, names)
    return {
        "majority": {"miou": major["miou"], "class": names[majority], "scores": major},
        "lookup": {"miou": look["miou"], "scores": look},
        "gaps": coverage_gaps(train_counts, eval_counts, names),
        "train_pixels": train_counts.tolist(),
        "eval_pixels": eval_counts.tolist(),
    }
