"""NYU Depth V2, labelled subset (1449 frames): the official ``.mat`` and a common PNG export.

NYUv2 is single-view data without camera poses: every frame gets an identity pose (recorded in
``scene.notes``; ``scene.has_poses`` is False). Use it for downstream tasks, never for pair mining.
Intrinsics default to NYU's published colour calibration (fx = 518.857901, fy = 519.469611,
cx = 325.582449, cy = 253.736166) for colour and depth (the labelled depth is registered to colour);
``intrinsics`` overrides. Images are 640x480.

**Labels** in :attr:`Frame.label` are NYU-40 ids 1..40 with 0 = unannotated
(``scene.label_space == "nyu40"``), except when only the raw 894-class labels are available (see
below; ``label_space == "nyu894"``).

(a) ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3 = HDF5, read with h5py). MATLAB stores arrays
column-major, so h5py sees them transposed: ``images`` (1449, 3, 640, 480) uint8, ``depths`` and
``rawDepths`` (1449, 640, 480) float32 metres, ``labels`` (1449, 640, 480) uint16 raw 894-class ids
(0 = unlabelled), ``instances`` (same layout, uint8 instance numbers per raw class; when present,
:attr:`Frame.instance` = ``raw label * 1000 + instance``, unique within a frame, 0 = none). Labels
become NYU-40 from, in order: a ``labels40`` array in the file (same layout),
``label_map`` (a mapping file: ``classMapping40.mat`` with ``mapClass``, or a text/.npy list whose k-th
entry is the NYU-40 id of raw class k, 1-based, optionally with a leading 0 for class 0), or else the
raw 894-class ids are returned as-is with a note. ``depth="raw"`` reads ``rawDepths`` (with holes)
instead of the in-painted ``depths``.

Split: the standard 795 train / 654 test split is published as ``splits.mat`` (``trainNdxs``,
``testNdxs``: 1-based image indices). Given as ``split_file`` or found as ``splits.mat`` next to the
``.mat``, it yields two scenes ``nyuv2_train`` and ``nyuv2_test``; otherwise one scene ``nyuv2``.
Frame ids are the 1-based image indices (the numbering of ``splits.mat``).

(b) PNG export (``<id>.png`` RGB, ``depth_gt_<id>.png`` uint16 with 5000 values per metre,
``segm_gt_<id>.png`` uint8 0-based NYU-40 index with 255 = ignore): a PNG value ``v`` becomes label
``v + 1`` and 255 becomes 0. Frame ids are ``int(<id>)`` as named by the export. The path is one
folder (scene id = its name) or a folder of such folders (e.g. ``train/``, ``test/``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from pri3d.data.io import read_color, read_depth, read_label_png
from pri3d.data.scene import Frame, Scene
from pri3d.errors import DataError

__all__ = ["NYU_K", "NYUMatScene", "NYUPngScene", "read_nyu_split", "png_labels_to_nyu40", "detect", "open_scenes"]

NAME = "nyuv2"
DESCRIPTION = "NYU Depth V2 labelled set (nyu_depth_v2_labeled.mat or a PNG export)"
MAT_NAME = "nyu_depth_v2_labeled.mat"
PNG_DEPTH_SCALE = 5000.0
NYU_K = np.array([[518.857901, 0.0, 325.582449], [0.0, 519.469611, 253.736166], [0.0, 0.0, 1.0]])
NO_POSE_NOTE = "NYUv2 has no camera poses: identity poses (single-view data, for downstream tasks only)"
_PNG_RE = re.compile(r"^(\d+)\.png$")


def png_labels_to_nyu40(seg: np.ndarray, ignore: int = 255) -> np.ndarray:
    """0-based NYU-40 index image (``ignore`` = unannotated) -> NYU-40 ids 1..40, 0 = unannotated.
    ``(H, W)`` -> ``(H, W)`` int32."""
    seg = np.asarray(seg).astype(np.int32)
    out = seg + 1
    out[seg == ignore] = 0
    return out


def _load_mat_vars(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Read named arrays from a MATLAB file, v5 (scipy) or v7.3 (h5py)."""
    import h5py

    if not path.is_file():
        raise DataError(f"{path}: file not found")
    out = {}
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as f:
            for n in names:
                if n in f:
                    out[n] = np.asarray(f[n])
    else:
        import scipy.io

        try:
            m = scipy.io.loadmat(path)
        except Exception as e:  # scipy raises several types for non-MAT input
            raise DataError(f"{path}: not a readable MATLAB file ({e})") from e
        out = {n: np.asarray(m[n]) for n in names if n in m}
    return out


def read_nyu_split(path) -> dict[str, np.ndarray]:
    """Read the NYUv2 split: ``splits.mat`` (``trainNdxs``/``testNdxs``, 1-based). Returns
    ``{"train": (795,), "test": (654,)}`` int64 1-based indices (for the official file)."""
    path = Path(path)
    v = _load_mat_vars(path, ("trainNdxs", "testNdxs"))
    if set(v) != {"trainNdxs", "testNdxs"}:
        raise DataError(f"{path}: expected variables trainNdxs and testNdxs (NYUv2 splits.mat)")
    return {"train": v["trainNdxs"].astype(np.int64).ravel(), "test": v["testNdxs"].astype(np.int64).ravel()}


def _read_label_map(path) -> np.ndarray:
    """A raw-894 -> NYU-40 lookup ``lut`` (``lut[raw] = nyu40``, ``lut[0] = 0``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: label map file not found")
    if path.suffix == ".mat":
        v = _load_mat_vars(path, ("mapClass",))
        if "mapClass" not in v:
            raise DataError(f"{path}: expected a variable mapClass (NYUv2 classMapping40.mat)")
        m = v["mapClass"].ravel()
    elif path.suffix == ".npy":
        m = np.load(path).ravel()
    else:
        try:
            m = np.loadtxt(path, dtype=np.float64).ravel()
        except ValueError as e:
            raise DataError(f"{path}: not a list of integers ({e})") from e
    m = m.astype(np.int64)
    if len(m) == 894:
        m = np.concatenate([[0], m])
    if len(m) != 895 or m.min() < 0 or m.max() > 40:
        raise DataError(
            f"{path}: expected 894 (or 895 with class 0) NYU-40 ids in 0..40, got {len(m)} in {m.min()}..{m.max()}"
        )
    return m


class _NYUBase(Scene):
    format_name = NAME
    has_poses = False

    def _frame(self, frame_id, color, depth, label) -> Frame:
        return Frame(
            scene_id=self.scene_id,
            frame_id=frame_id,
            color=color,
            depth=depth,
            color_intrinsics=self.K.copy(),
            depth_intrinsics=self.K.copy(),
            pose=np.eye(4),
            label=label,
        )

    def load_pose(self, frame_id: int) -> np.ndarray:
        self._check(frame_id)
        return np.eye(4)

    def _check(self, frame_id: int) -> None:
        raise NotImplementedError


class NYUMatScene(_NYUBase):
    """Frames of ``nyu_depth_v2_labeled.mat`` (1-based ids). The HDF5 file opens lazily, once per
    process, so scenes can go to DataLoader workers."""

    def __init__(self, path: Path, scene_id: str, indices, *, depth: str = "filled", label_lut=None, intrinsics=None):
        import h5py

        self.path = Path(path)
        self.root = self.path.parent
        self.scene_id = scene_id
        self.notes = [NO_POSE_NOTE]
        if depth not in ("filled", "raw"):
            raise ValueError(f"depth must be 'filled' or 'raw', got {depth!r}")
        self._depth_key = "depths" if depth == "filled" else "rawDepths"
        self._fh = None
        self._pid = None
        with h5py.File(self.path, "r") as f:
            for key in ("images", self._depth_key, "labels"):
                if key not in f:
                    raise DataError(f"{self.path}: no '{key}' array (not the NYUv2 labelled .mat?)")
            shape = f["images"].shape
            if len(shape) != 4 or shape[1] != 3:
                raise DataError(f"{self.path}: 'images' has shape {shape}, expected (N, 3, W, H)")
            self._has40 = "labels40" in f
            self._has_inst = "instances" in f
        n = shape[0]
        self.frame_ids = sorted(int(i) for i in indices)
        if self.frame_ids and (self.frame_ids[0] < 1 or self.frame_ids[-1] > n):
            raise DataError(f"{self.path}: split index out of range 1..{n} ({self.frame_ids[0]}..{self.frame_ids[-1]})")
        self._lut = label_lut
        if self._has40:
            self.label_space = "nyu40"
        elif label_lut is not None:
            self.label_space = "nyu40"
        else:
            self.label_space = "nyu894"
            self.notes.append(
                "no labels40 array and no label_map: labels are the raw 894-class ids (pass label_map= a "
                "894->40 mapping such as classMapping40.mat to get NYU-40)"
            )
        self.K = NYU_K.copy() if intrinsics is None else np.asarray(intrinsics, dtype=np.float64).reshape(3, 3)
        self._ids = set(self.frame_ids)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_fh"] = None
        state["_pid"] = None
        return state

    def _file(self):
        import h5py

        if self._fh is None or self._pid != os.getpid():
            try:
                self._fh = h5py.File(self.path, "r")
            except OSError as e:
                raise DataError(f"{self.path}: unreadable HDF5 file ({e})") from e
            self._pid = os.getpid()
        return self._fh

    def _check(self, frame_id: int) -> None:
        if frame_id not in self._ids:
            raise DataError(f"{self.path}: frame {frame_id} is not in scene {self.scene_id}")

    def load_frame(self, frame_id: int, *, color: bool = True, depth: bool = True, labels: bool = True) -> Frame:
        self._check(frame_id)
        f = self._file()
        i = frame_id - 1
        rgb = np.ascontiguousarray(np.asarray(f["images"][i]).transpose(2, 1, 0)) if color else None
        dep = np.ascontiguousarray(np.asarray(f[self._depth_key][i], dtype=np.float32).T) if depth else None
        if dep is not None:
            dep[~np.isfinite(dep) | (dep < 0)] = 0
        lab = None
        if labels:
            if self._has40:
                lab = np.asarray(f["labels40"][i]).T.astype(np.int32)
            else:
                lab = np.asarray(f["labels"][i]).T.astype(np.int64)
                if self._lut is not None:
                    if lab.max(initial=0) >= len(self._lut):
                        raise DataError(f"{self.path}: frame {frame_id}: raw label {lab.max()} beyond the label map")
                    lab = self._lut[lab]
                lab = np.ascontiguousarray(lab, dtype=np.int32)
        frame = self._frame(frame_id, rgb, dep, lab)
        if labels and self._has_inst:
            # NYU numbers instances per raw class; raw label * 1000 + instance makes the ids unique per frame
            raw = np.asarray(f["labels"][i]).T.astype(np.int32)
            inst = np.asarray(f["instances"][i]).T.astype(np.int32)
            frame.instance = np.ascontiguousarray(np.where((raw > 0) & (inst > 0), raw * 1000 + inst, 0))
        return frame


class NYUPngScene(_NYUBase):
    label_space = "nyu40"

    def __init__(self, root: Path, intrinsics=None):
        self.root = Path(root)
        self.scene_id = self.root.name
        self.notes = [NO_POSE_NOTE]
        self._color = {int(m.group(1)): f for f in self.root.iterdir() if (m := _PNG_RE.match(f.name))}
        self.frame_ids = sorted(i for i, f in self._color.items() if self._depth_path(f).is_file())
        self._ids = set(self.frame_ids)
        if not self.frame_ids:
            raise DataError(f"{self.root}: no <id>.png with a depth_gt_<id>.png found")
        self.K = NYU_K.copy() if intrinsics is None else np.asarray(intrinsics, dtype=np.float64).reshape(3, 3)

    @staticmethod
    def _depth_path(color_path: Path) -> Path:
        return color_path.with_name(f"depth_gt_{color_path.name}")

    def _check(self, frame_id: int) -> None:
        if frame_id not in self._ids:
            raise DataError(f"{self.root}: no frame {frame_id}")

    def load_frame(self, frame_id: int, *, color: bool = True, depth: bool = True, labels: bool = True) -> Frame:
        self._check(frame_id)
        cp = self._color[frame_id]
        lab = None
        sp = cp.with_name(f"segm_gt_{cp.name}")
        if labels and sp.is_file():
            raw = read_label_png(sp)
            bad = (raw > 39) & (raw != 255)
            if bad.any():
                raise DataError(f"{sp}: label values {np.unique(raw[bad])[:5].tolist()} are not 0..39 or 255")
            lab = png_labels_to_nyu40(raw)
        return self._frame(
            frame_id,
            read_color(cp) if color else None,
            read_depth(self._depth_path(cp), PNG_DEPTH_SCALE) if depth else None,
            lab,
        )


def _is_nyu_mat(p: Path) -> bool:
    if not (p.is_file() and p.suffix == ".mat"):
        return False
    import h5py

    try:
        if not h5py.is_hdf5(p):
            return False
        with h5py.File(p, "r") as f:
            return "images" in f and "depths" in f
    except OSError:
        return False


def _is_png_dir(p: Path) -> bool:
    return p.is_dir() and any(f.name.startswith("depth_gt_") and f.suffix == ".png" for f in p.iterdir())


def _find_mat(path: Path) -> Path | None:
    if _is_nyu_mat(path):
        return path
    if path.is_dir() and _is_nyu_mat(path / MAT_NAME):
        return path / MAT_NAME
    return None


def detect(path: Path) -> bool:
    path = Path(path)
    if _find_mat(path) is not None or _is_png_dir(path):
        return True
    return path.is_dir() and any(_is_png_dir(c) for c in sorted(path.iterdir())[:20] if c.is_dir())


def open_scenes(
    path: Path,
    split_file=None,
    label_map=None,
    depth: str = "filled",
    intrinsics: np.ndarray | None = None,
) -> list[Scene]:
    """Open the NYUv2 labelled ``.mat`` (or a folder holding it) or a PNG export folder.

    Args:
        split_file: ``splits.mat`` (defaults to ``splits.mat`` beside the ``.mat`` when present).
        label_map: raw 894 -> NYU-40 mapping file, used when the ``.mat`` has no ``labels40``.
        depth: ``"filled"`` (``depths``, in-painted) or ``"raw"`` (``rawDepths``); ``.mat`` only.
        intrinsics: 3x3 K overriding NYU's calibration.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    mat = _find_mat(path)
    if mat is not None:
        import h5py

        with h5py.File(mat, "r") as f:
            n = f["images"].shape[0]
        lut = _read_label_map(label_map) if label_map is not None else None
        if split_file is None and (mat.parent / "splits.mat").is_file():
            split_file = mat.parent / "splits.mat"
        kw = dict(depth=depth, label_lut=lut, intrinsics=intrinsics)
        if split_file is None:
            return [NYUMatScene(mat, "nyuv2", range(1, n + 1), **kw)]
        split = read_nyu_split(split_file)
        return [NYUMatScene(mat, f"nyuv2_{name}", idx, **kw) for name, idx in split.items()]
    if split_file is not None:
        raise DataError(f"{split_file}: a NYUv2 split file applies to the .mat only (PNG exports: split by folder)")
    if _is_png_dir(path):
        return [NYUPngScene(path, intrinsics)]
    dirs = [c for c in sorted(path.iterdir()) if _is_png_dir(c)] if path.is_dir() else []
    if not dirs:
        raise DataError(f"{path}: neither {MAT_NAME} (HDF5 with images/depths) nor a NYUv2 PNG export folder")
    return [NYUPngScene(d, intrinsics) for d in dirs]
