"""Tiny hand-made datasets and fixtures for the downstream tests (ScanNet 25k layout, NYUv2 PNG export
and .mat).

There is deliberately no ``conftest.py`` in this folder: other test folders import the root one with
``from realdata import shared_data`` (tests/realdata.py). Test
modules import what they use from here (``one_thread`` is an autouse fixture)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pri3d.data.io import write_color, write_depth, write_matrix, write_png

# NYU-40 ids drawn as objects, with a class colour (RGB) so a network can learn them.
OBJECTS = {4: (200, 40, 40), 5: (40, 200, 40), 7: (40, 40, 200), 33: (220, 220, 40)}
WALL, FLOOR = 1, 2


def draw_frame(rng: np.random.Generator, h: int, w: int, *, extra_label: int | None = None):
    """One frame: wall (top), floor (bottom), 1-3 coloured boxes. Returns rgb, label (NYU-40 ids),
    instance (unique ids: wall 1, floor 2, objects 3..)."""
    rgb = np.zeros((h, w, 3), np.uint8)
    label = np.zeros((h, w), np.int32)
    inst = np.zeros((h, w), np.int32)
    horizon = h * 3 // 5
    rgb[:horizon] = (150, 150, 160)
    label[:horizon], inst[:horizon] = WALL, 1
    rgb[horizon:] = (110, 80, 50)
    label[horizon:], inst[horizon:] = FLOOR, 2
    label[:2, :] = 0  # an unannotated strip
    inst[:2, :] = 0
    classes = list(OBJECTS)
    for k in range(int(rng.integers(1, 4))):
        c = classes[int(rng.integers(len(classes)))]
        bh, bw = int(rng.integers(h // 4, h // 2)), int(rng.integers(w // 5, w // 3))
        y, x = int(rng.integers(2, h - bh)), int(rng.integers(0, w - bw))
        rgb[y : y + bh, x : x + bw] = OBJECTS[c]
        label[y : y + bh, x : x + bw] = c
        inst[y : y + bh, x : x + bw] = 3 + k
    if extra_label is not None:
        label[-3:, :4] = extra_label
    noise = rng.integers(-12, 13, size=rgb.shape)
    rgb = np.clip(rgb.astype(np.int32) + noise, 0, 255).astype(np.uint8)
    return rgb, label, inst


def write_scannet_like(
    root: Path,
    scenes=("scene0000_00", "scene0001_00", "scene0002_00"),
    frames=3,
    size=(48, 64),
    seed=0,
    splits=True,
    combined=False,
    extra_label=None,
) -> Path:
    """ScanNet scannet_frames_25k layout: color/ depth/ label/ instance/ pose/ + intrinsics_*.txt.
    With ``combined``, instance/ holds label*1000+instance (one PNG)."""
    rng = np.random.default_rng(seed)
    h, w = size
    K = np.array([[w * 0.9, 0, w / 2, 0], [0, w * 0.9, h / 2, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    for s in scenes:
        d = Path(root) / s
        for sub in ("color", "depth", "label", "instance", "pose"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        write_matrix(d / "intrinsics_color.txt", K)
        write_matrix(d / "intrinsics_depth.txt", K)
        for i in range(frames):
            rgb, label, inst = draw_frame(rng, h, w, extra_label=extra_label)
            name = f"{i * 100:06d}"
            write_color(d / "color" / f"{name}.jpg", rgb)
            write_depth(d / "depth" / f"{name}.png", np.full((h, w), 2.0, np.float32))
            write_png(d / "label" / f"{name}.png", label.astype(np.uint8))
            if combined:
                write_png(
                    d / "instance" / f"{name}.png", (label * 1000 + np.where(inst > 0, inst, 0)).astype(np.uint16)
                )
            else:
                write_png(d / "instance" / f"{name}.png", inst.astype(np.uint16))
            write_matrix(d / "pose" / f"{name}.txt", np.eye(4))
    if splits:
        (Path(root) / "splits").mkdir(exist_ok=True)
        (Path(root) / "splits" / "train.txt").write_text("\n".join(scenes[:-1]) + "\n")
        (Path(root) / "splits" / "val.txt").write_text(scenes[-1] + "\n")
    return Path(root)


def write_nyu_png(root: Path, n_train=3, n_test=2, size=(48, 64), seed=0) -> Path:
    """NYUv2 PNG export with train/ and test/ folders (segm_gt: 0-based NYU-40, 255 = ignore)."""
    rng = np.random.default_rng(seed)
    h, w = size
    for split, n in (("train", n_train), ("test", n_test)):
        d = Path(root) / split
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            rgb, label, _ = draw_frame(rng, h, w)
            seg = np.where(label > 0, label - 1, 255).astype(np.uint8)
            fid = f"{i + (0 if split == 'train' else 500):06d}"
            write_color(d / f"{fid}.png", rgb)
            write_png(d / f"depth_gt_{fid}.png", np.full((h, w), 10000, np.uint16))
            write_png(d / f"segm_gt_{fid}.png", seg)
    return Path(root)


def write_nyu_mat(root: Path, n=6, n_train=4, size=(48, 64), seed=0) -> Path:
    """The official ``nyu_depth_v2_labeled.mat`` layout (HDF5, arrays transposed as h5py sees MATLAB's)
    with ``labels40``, raw ``labels`` and per-raw-class ``instances``, plus ``splits.mat``."""
    import h5py
    import scipy.io

    rng = np.random.default_rng(seed)
    h, w = size
    rgbs, labs, raws, insts = [], [], [], []
    for _ in range(n):
        rgb, label, inst = draw_frame(rng, h, w)
        raw = np.where(label > 0, label + 100, 0)  # any raw 894-class id; labels40 holds the mapping
        # NYU numbers instances per raw class: renumber 1.. within each class
        per_class = np.zeros_like(inst)
        for c in np.unique(raw[raw > 0]):
            for j, i in enumerate(np.unique(inst[(raw == c) & (inst > 0)])):
                per_class[(raw == c) & (inst == i)] = j + 1
        rgbs.append(rgb), labs.append(label), raws.append(raw), insts.append(per_class)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with h5py.File(root / "nyu_depth_v2_labeled.mat", "w") as f:
        f["images"] = np.stack(rgbs).transpose(0, 3, 2, 1)
        f["depths"] = np.full((n, w, h), 2.0, np.float32)
        f["rawDepths"] = np.full((n, w, h), 2.0, np.float32)
        f["labels"] = np.stack(raws).astype(np.uint16).transpose(0, 2, 1)
        f["labels40"] = np.stack(labs).astype(np.uint8).transpose(0, 2, 1)
        f["instances"] = np.stack(insts).astype(np.uint8).transpose(0, 2, 1)
    idx = np.arange(1, n + 1)
    scipy.io.savemat(root / "splits.mat", {"trainNdxs": idx[:n_train, None], "testNdxs": idx[n_train:, None]})
    return root


@pytest.fixture(autouse=True)
def one_thread():
    """One thread for these tiny models: on a shared 2-core machine two contending threads were several
    times slower. Restored afterwards so other test folders keep their setting."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
