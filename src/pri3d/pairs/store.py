"""Reader for the output of ``pri3d prepare`` (see :mod:`pri3d.pairs.mine` and :mod:`pri3d.pairs.output` for
the writer).

On-disk layout of a prepared directory ``OUT``::

    OUT/params.json                every run parameter; "input" is the dataset root RELATIVE to OUT
    OUT/pairs.csv                  scene,frame_a,frame_b,overlap   (frame_a < frame_b, 4 decimals)
    OUT/summary.json               scenes, frames, pairs tested/kept, skipped frames (by reason)
    OUT/scenes/<scene>/pairs.csv   the scene's kept pairs (same columns)
    OUT/scenes/<scene>/frames.json kept frame ids, skips and counts; written last = scene finished
    OUT/geometry/<scene>.npz       voxelized surface of the scene:
        coords     (N, 3) int32   voxel coordinates, unique, sorted (x, y, z)
        origin     (3,)   float64 world position of voxel (0,0,0)'s corner
        voxel_size ()     float64 metres; voxel i's centre = origin + (coords[i] + 0.5) * voxel_size
        colors     (N, 3) uint8   mean RGB of the surface samples in the voxel
        frame_ids  (F,)   int64   the scene's kept frames
        bbox_min   (F, 3) float64 axis-aligned world box of each frame's view frustum
        bbox_max   (F, 3) float64
        source     ()     str     "mesh:<file name>" or "fused-depth"

Frame ids are the integers of the source naming (300 for ``frame-000300.*``).
"""

from __future__ import annotations

import csv
import json
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from pri3d.data.scene import Scene
from pri3d.errors import DataError
from pri3d.geometry.voxels import crop_voxels

__all__ = ["Pair", "SceneVoxels", "PreparedData", "read_pairs_csv", "PAIRS_HEADER"]

PAIRS_HEADER = ["scene", "frame_a", "frame_b", "overlap"]


class Pair(NamedTuple):
    scene: str
    frame_a: int
    frame_b: int
    overlap: float


@dataclass
class SceneVoxels:
    """A scene's voxelized surface (see the module docstring for the conventions)."""

    coords: np.ndarray  # (N, 3) int32
    origin: np.ndarray  # (3,) float64
    voxel_size: float
    colors: np.ndarray  # (N, 3) uint8
    frame_ids: np.ndarray  # (F,) int64
    bbox_min: np.ndarray  # (F, 3) float64
    bbox_max: np.ndarray  # (F, 3) float64
    source: str = ""

    def frame_box(self, frame_id: int) -> tuple[np.ndarray, np.ndarray]:
        hit = np.nonzero(self.frame_ids == int(frame_id))[0]
        if len(hit) == 0:
            raise KeyError(f"frame {frame_id} is not a kept frame of this scene")
        return self.bbox_min[hit[0]], self.bbox_max[hit[0]]

    def crop(self, frame_id: int) -> tuple[np.ndarray, np.ndarray]:
        """``(coords, colors)`` of the voxels inside the frame's frustum box."""
        lo, hi = self.frame_box(frame_id)
        m = crop_voxels(self.coords, self.origin, self.voxel_size, lo, hi)
        return self.coords[m], self.colors[m]


def read_pairs_csv(path) -> list[Pair]:
    """Read a ``scene,frame_a,frame_b,overlap`` CSV (:class:`DataError` naming the file if malformed)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: pair list not found")
    out = []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != PAIRS_HEADER:
            raise DataError(f"{path}: expected header {','.join(PAIRS_HEADER)}, got {header}")
        for n, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                out.append(Pair(row[0], int(row[1]), int(row[2]), float(row[3])))
            except (IndexError, ValueError) as e:
                raise DataError(f"{path}:{n}: malformed row {row!r}") from e
    return out


def load_scene_voxels(path) -> SceneVoxels:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: geometry file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            return SceneVoxels(
                coords=z["coords"].astype(np.int32, copy=False),
                origin=z["origin"].astype(np.float64),
                voxel_size=float(z["voxel_size"]),
                colors=z["colors"].astype(np.uint8, copy=False),
                frame_ids=z["frame_ids"].astype(np.int64),
                bbox_min=z["bbox_min"].astype(np.float64),
                bbox_max=z["bbox_max"].astype(np.float64),
                source=str(z["source"]) if "source" in z else "",
            )
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"{path}: unreadable or truncated geometry file ({type(e).__name__}: {e})") from e


class PreparedData:
    """A directory written by ``pri3d prepare``.

    Attributes:
        root: the directory.
        params: every run parameter (``params.json``).
        input_path: the dataset root, resolved from the relative path stored in ``params``.
        format: the dataset format name.
        pairs: the kept pairs (``pairs.csv``).
    """

    def __init__(self, out_dir):
        self.root = Path(out_dir)
        pfile = self.root / "params.json"
        if not pfile.is_file():
            raise DataError(f"{self.root}: not a prepared directory (no params.json; run 'pri3d prepare')")
        try:
            self.params: dict = json.loads(pfile.read_text())
        except json.JSONDecodeError as e:
            raise DataError(f"{pfile}: invalid JSON ({e})") from e
        for key in ("input", "format"):
            if key not in self.params:
                raise DataError(f"{pfile}: missing {key!r}")
        self.input_path: Path = (self.root / self.params["input"]).resolve()
        self.format: str = self.params["format"]
        self.pairs: list[Pair] = read_pairs_csv(self.root / "pairs.csv")
        self._scenes: dict[str, Scene] | None = None
        self._frames: dict[str, list[int]] = {}
        self._vox_cache: tuple[str, SceneVoxels] | None = None

    def scene_ids(self) -> list[str]:
        """Scenes whose preparation finished (they have ``scenes/<id>/frames.json``) and that were not
        skipped (fewer than 2 valid frames), sorted."""
        d = self.root / "scenes"
        if not d.is_dir():
            return []
        out = []
        for f in sorted(d.glob("*/frames.json")):
            try:
                status = json.loads(f.read_text()).get("status", "ok")
            except json.JSONDecodeError as e:
                raise DataError(f"{f}: invalid JSON ({e})") from e
            if status != "skipped":
                out.append(f.parent.name)
        return out

    def scenes(self) -> dict[str, Scene]:
        """The dataset opened with :func:`~pri3d.data.formats.open_dataset`, restricted to the
        mined scenes, keyed by scene id (opened once, then cached)."""
        if self._scenes is None:
            from pri3d.data.formats import open_dataset

            if not self.input_path.exists():
                raise DataError(
                    f"{self.root}: the dataset {self.input_path} (params.json 'input' = "
                    f"{self.params['input']!r}, relative to this directory) does not exist"
                )
            wanted = set(self.scene_ids())
            self._scenes = {s.scene_id: s for s in open_dataset(self.input_path, self.format) if s.scene_id in wanted}
        return self._scenes

    def frame_info(self, scene_id: str) -> dict:
        f = self.root / "scenes" / scene_id / "frames.json"
        if not f.is_file():
            raise DataError(f"{f}: scene {scene_id!r} was not prepared")
        return json.loads(f.read_text())

    def frame_ids(self, scene_id: str) -> list[int]:
        """The kept (valid) frames of the scene."""
        if scene_id not in self._frames:
            self._frames[scene_id] = [int(i) for i in self.frame_info(scene_id)["frame_ids"]]
        return self._frames[scene_id]

    def geometry_path(self, scene_id: str) -> Path:
        return self.root / "geometry" / f"{scene_id}.npz"

    def voxels(self, scene_id: str) -> SceneVoxels:
        """The scene's voxelized surface (the last scene read is cached, so memory stays bounded)."""
        if self._vox_cache is not None and self._vox_cache[0] == scene_id:
            return self._vox_cache[1]
        vox = load_scene_voxels(self.geometry_path(scene_id))
        self._vox_cache = (scene_id, vox)
        return vox

    def frame_chunk(self, scene_id: str, frame_id: int) -> tuple[np.ndarray, np.ndarray]:
        """``(coords (n, 3) int32, colors (n, 3) uint8)``: the scene's voxels inside the frame's
        frustum box (coordinates in the scene grid: world = origin + (coords + 0.5) * voxel_size)."""
        try:
            return self.voxels(scene_id).crop(frame_id)
        except KeyError as e:
            raise DataError(f"{self.geometry_path(scene_id)}: {e.args[0]}") from e

    def __repr__(self) -> str:
        return f"PreparedData({str(self.root)!r}, {len(self.pairs)} pairs, format={self.format!r})"
