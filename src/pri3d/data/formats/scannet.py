"""ScanNet's exported frame layouts (and the synthetic generator's output, which uses them).

Two layouts are read, per scene folder:

* exported (``SensorData.py`` export): ``color/N.jpg``, ``depth/N.png`` (uint16 mm), ``pose/N.txt``
  (4x4 camera-to-world), ``intrinsic/intrinsic_color.txt`` and ``intrinsic/intrinsic_depth.txt``
  (4x4).
* ``scannet_frames_25k``: ``color/ depth/ label/ instance/ pose/`` and ``intrinsics_color.txt`` /
  ``intrinsics_depth.txt`` in the scene folder (frame files zero-padded, e.g. ``000100.jpg``).

Optional ``label/N.png`` (NYU-40 ids, 0 = unannotated) and ``instance/N.png`` are loaded when
present. The surface is the first of ``<scene>_vh_clean_2.ply``, ``<scene>_vh_clean.ply`` or
``surface.ply`` found in the scene folder.

The dataset path may be one scene folder or a folder of scene folders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pri3d.data.io import fits, intrinsics3, read_color, read_depth, read_label_png, read_matrix
from pri3d.data.scene import Frame, Scene
from pri3d.errors import DataError

NAME = "scannet"
DESCRIPTION = "ScanNet exported frames / scannet_frames_25k / pri3d synth output"
DEPTH_SCALE = 1000.0  # uint16 millimetres
SURFACE_NAMES = ("{scene}_vh_clean_2.ply", "{scene}_vh_clean.ply", "surface.ply")


def _is_scene_dir(p: Path) -> bool:
    return (p / "color").is_dir() and (p / "depth").is_dir() and (p / "pose").is_dir()


def detect(path: Path) -> bool:
    path = Path(path)
    if not path.is_dir():
        return False
    if _is_scene_dir(path):
        return True
    return any(_is_scene_dir(c) for c in sorted(path.iterdir())[:50] if c.is_dir() and not c.name.startswith("."))


def _frame_files(folder: Path, exts) -> dict[int, Path]:
    out = {}
    for f in folder.iterdir():
        if f.suffix.lower() in exts and f.stem.isdigit():
            out[int(f.stem)] = f
    return out


class ScanNetScene(Scene):
    format_name = NAME

    def __init__(self, root: Path):
        self.root = Path(root)
        self.scene_id = self.root.name
        self._color = _frame_files(self.root / "color", {".jpg", ".jpeg", ".png"})
        self._depth = _frame_files(self.root / "depth", {".png"})
        self._pose = _frame_files(self.root / "pose", {".txt"})
        self._label = _frame_files(self.root / "label", {".png"}) if (self.root / "label").is_dir() else {}
        self._inst = _frame_files(self.root / "instance", {".png"}) if (self.root / "instance").is_dir() else {}
        self.frame_ids = sorted(set(self._color) & set(self._depth) & set(self._pose))
        if not self.frame_ids:
            raise DataError(f"{self.root}: no frame has all of color/, depth/ and pose/ files")
        self.K_color, self.K_depth = self._read_intrinsics()
        self.surface_path = None
        for pattern in SURFACE_NAMES:
            p = self.root / pattern.format(scene=self.scene_id)
            if p.is_file():
                self.surface_path = p
                break

    def _read_intrinsics(self) -> tuple[np.ndarray, np.ndarray]:
        for folder, prefix in ((self.root / "intrinsic", "intrinsic"), (self.root, "intrinsics")):
            pc, pd = folder / f"{prefix}_color.txt", folder / f"{prefix}_depth.txt"
            if pc.is_file() or pd.is_file():
                Kc = intrinsics3(read_matrix(pc), pc) if pc.is_file() else None
                Kd = intrinsics3(read_matrix(pd), pd) if pd.is_file() else None
                if Kc is None:
                    Kc = Kd
                if Kd is None:
                    Kd = Kc
                return Kc, Kd
        raise DataError(
            f"{self.root}: no intrinsics (looked for intrinsic/intrinsic_{{color,depth}}.txt and "
            "intrinsics_{color,depth}.txt)"
        )

    def load_pose(self, frame_id: int) -> np.ndarray:
        return read_matrix(self._pose[frame_id], (4, 4))

    def _read_labels(self, path: Path) -> np.ndarray:
        """A label / instance map; it must be an image the colour or the depth intrinsics describe
        (ScanNet's exports put labels at the depth resolution, scannet_frames_25k at both)."""
        lab = read_label_png(path)
        if not (fits(self.K_color, lab.shape) or fits(self.K_depth, lab.shape)):
            raise DataError(
                f"{path}: a {lab.shape[1]}x{lab.shape[0]} label map fits neither the colour nor the depth "
                f"intrinsics (cx={self.K_color[0, 2]:.1f} / {self.K_depth[0, 2]:.1f}): it is not this frame's size"
            )
        return lab

    def load_frame(self, frame_id: int, *, color: bool = True, depth: bool = True, labels: bool = True) -> Frame:
        if frame_id not in self._pose:
            raise DataError(f"{self.root}: no frame {frame_id}")
        lab = inst = None
        if labels and frame_id in self._label:
            lab = self._read_labels(self._label[frame_id])
        if labels and frame_id in self._inst:
            inst = self._read_labels(self._inst[frame_id])
        return Frame(
            scene_id=self.scene_id,
            frame_id=frame_id,
            color=read_color(self._color[frame_id]) if color else None,
            depth=read_depth(self._depth[frame_id], DEPTH_SCALE) if depth else None,
            color_intrinsics=self.K_color.copy(),
            depth_intrinsics=self.K_depth.copy(),
            pose=self.load_pose(frame_id),
            label=lab,
            instance=inst,
        )


def open_scenes(path: Path) -> list[Scene]:
    path = Path(path)
    if _is_scene_dir(path):
        return [ScanNetScene(path)]
    _refuse_unfinished_synth(path)
    # hidden folders are never scenes (pri3d synth writes unfinished scenes to .tmp-<scene>)
    children = [c for c in sorted(path.iterdir()) if c.is_dir() and not c.name.startswith(".")]
    scenes = [ScanNetScene(c) for c in children if _is_scene_dir(c)]
    if not scenes:
        raise DataError(f"{path}: no ScanNet-layout scene folders (color/, depth/, pose/) found")
    return scenes


def _refuse_unfinished_synth(path: Path) -> None:
    """A ``pri3d synth`` output writes its ``meta.json`` last: scenes of the generator (their own
    ``meta.json`` says ``pri3d-synth``) or ``.tmp-scene*`` folders without it are a run that was killed
    mid-way, whose data (and splits) are partial."""
    if (path / "meta.json").is_file():
        return
    unfinished = sorted(p.name for p in path.glob(".tmp-scene*"))
    ours = []
    for c in sorted(path.glob("scene*"))[:3]:
        try:
            ours += [c.name] if '"pri3d-synth"' in (c / "meta.json").read_text() else []
        except OSError:
            continue
    if unfinished or ours:
        raise DataError(
            f"{path}: an unfinished 'pri3d synth' output (no meta.json{'; ' + unfinished[0] if unfinished else ''}): "
            "it was stopped mid-way; run the same 'pri3d synth' command again to finish it"
        )
