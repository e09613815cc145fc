"""Tiny hand-made RGB-D datasets in the on-disk layouts the format readers accept (test helpers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pri3d.data.io import write_color, write_depth, write_matrix, write_png
from pri3d.data.scene import Frame


def intrinsics(w: int, h: int, f: float | None = None) -> np.ndarray:
    f = f if f is not None else 0.9 * w
    return np.array([[f, 0.0, (w - 1) / 2], [0.0, f, (h - 1) / 2], [0.0, 0.0, 1.0]])


def rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def make_frames(
    n: int = 3, color_hw=(24, 32), depth_hw=(24, 32), seed: int = 0, scene_id: str = "fixture"
) -> list[Frame]:
    """``n`` frames: smooth colour (JPEG-friendly), depth in whole millimetres (0.5..3 m, a few
    invalid pixels), rigid camera-to-world poses with non-trivial rotation and translation."""
    rng = np.random.default_rng(seed)
    Hc, Wc = color_hw
    Hd, Wd = depth_hw
    frames = []
    for i in range(n):
        yy, xx = np.mgrid[0:Hc, 0:Wc]
        color = np.stack(
            [(xx * 255 // max(Wc - 1, 1)), (yy * 255 // max(Hc - 1, 1)), np.full_like(xx, 40 * i % 256)], axis=-1
        ).astype(np.uint8)
        mm = rng.integers(500, 3000, size=(Hd, Wd)).astype(np.uint16)
        mm[rng.random((Hd, Wd)) < 0.05] = 0
        T = np.eye(4)
        T[:3, :3] = rot_y(0.1 * i + 0.05)
        T[:3, 3] = [0.1 * i, -0.2, 1.0 + 0.01 * i]
        frames.append(
            Frame(
                scene_id=scene_id,
                frame_id=i,
                color=color,
                depth=mm.astype(np.float32) / np.float32(1000),
                color_intrinsics=intrinsics(Wc, Hc),
                depth_intrinsics=intrinsics(Wd, Hd),
                pose=T,
            )
        )
    return frames


def write_7scenes(
    folder: Path, frames: list[Frame], *, first_id: int = 0, color_ext: str = "png", intrinsics_file: bool = True
) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if intrinsics_file:
        write_matrix(folder / "camera-intrinsics.txt", frames[0].depth_intrinsics)
    for k, fr in enumerate(frames):
        stem = folder / f"frame-{first_id + k:06d}"
        write_color(f"{stem}.color.{color_ext}", fr.color)
        write_depth(f"{stem}.depth.png", fr.depth, 1000.0)
        write_matrix(f"{stem}.pose.txt", fr.pose)
    return folder


def write_scannet(folder: Path, frames: list[Frame]) -> Path:
    """ScanNet export layout: color/N.jpg, depth/N.png (mm), pose/N.txt, intrinsic/*.txt (4x4)."""
    folder = Path(folder)
    for sub in ("color", "depth", "pose", "intrinsic"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for name, K in (("color", frames[0].color_intrinsics), ("depth", frames[0].depth_intrinsics)):
        K4 = np.eye(4)
        K4[:3, :3] = K
        write_matrix(folder / "intrinsic" / f"intrinsic_{name}.txt", K4)
    for fr in frames:
        write_color(folder / "color" / f"{fr.frame_id}.jpg", fr.color)
        write_depth(folder / "depth" / f"{fr.frame_id}.png", fr.depth, 1000.0)
        write_matrix(folder / "pose" / f"{fr.frame_id}.txt", fr.pose)
    return folder


def write_nyu_png(folder: Path, ids, rgb, depth_m, segm) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, c, d, s in zip(ids, rgb, depth_m, segm):
        write_color(folder / f"{i:06d}.png", c)
        write_depth(folder / f"depth_gt_{i:06d}.png", d, 5000.0)
        write_png(folder / f"segm_gt_{i:06d}.png", s.astype(np.uint8))
    return folder
