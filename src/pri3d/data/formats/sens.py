"""ScanNet ``.sens`` files: a lazy reader and a writer (no dependency on ScanNet's SensorData.py).

Binary layout (little-endian, version 4), as written by ScanNet's SensReader::

    uint32  version (= 4)
    uint64  strlen, then strlen bytes of sensor name
    float32[16] x 4  intrinsic_color, extrinsic_color, intrinsic_depth, extrinsic_depth (row-major 4x4)
    int32   color compression (-1 unknown, 0 raw, 1 png, 2 jpeg)
    int32   depth compression (-1 unknown, 0 raw_ushort, 1 zlib_ushort, 2 occi_ushort)
    uint32  color_width, color_height, depth_width, depth_height
    float32 depth_shift            (depth values per metre; 1000 = millimetres)
    uint64  num_frames
    per frame:
        float32[16] camera_to_world (row-major; -inf where tracking was lost)
        uint64  timestamp_color, timestamp_depth, color_size_bytes, depth_size_bytes
        color_size_bytes of colour data, depth_size_bytes of depth data

Opening a file reads only the header and each frame's 96-byte record header (poses and byte
offsets); colour and depth are read with one seek per frame. Frame ids are the frame's index in the
file (the numbering of ScanNet's own export, ``color/<index>.jpg``). The scene id is the file stem.
The surface is ``<stem>_vh_clean_2.ply`` next to the file when present.

The dataset path may be a ``.sens`` file, a ScanNet scan folder (``scans/<scene>/<scene>.sens``), a
folder of ``.sens`` files, or a folder of scan folders (``scans/``).
"""

from __future__ import annotations

import os
import struct
import tempfile
import zlib
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from pri3d.data.io import depth_to_uint16
from pri3d.data.scene import Frame, Scene
from pri3d.errors import DataError

__all__ = ["SensScene", "write_sens", "read_sens_header", "detect", "open_scenes"]

NAME = "scannet-sens"
DESCRIPTION = "ScanNet .sens files (a file, a scan folder, or a folder of scans)"
VERSION = 4
COLOR_COMPRESSION = {-1: "unknown", 0: "raw", 1: "png", 2: "jpeg"}
DEPTH_COMPRESSION = {-1: "unknown", 0: "raw_ushort", 1: "zlib_ushort", 2: "occi_ushort"}
SURFACE_SUFFIX = "_vh_clean_2.ply"

_FRAME_HEADER = struct.Struct("<16f4Q")  # pose, ts_color, ts_depth, color_size, depth_size (96 bytes)
_SIZES = struct.Struct("<2i4If Q")


def _read_exact(f, n: int, path: Path, what: str) -> bytes:
    b = f.read(n)
    if len(b) != n:
        raise DataError(f"{path}: truncated .sens file (reading {what}: wanted {n} bytes, got {len(b)})")
    return b


def read_sens_header(f, path: Path) -> dict:
    """Parse the header from an open binary file positioned at 0; leaves it at the first frame."""
    (version,) = struct.unpack("<I", _read_exact(f, 4, path, "version"))
    if version != VERSION:
        raise DataError(f"{path}: not a version-{VERSION} .sens file (version field = {version})")
    (strlen,) = struct.unpack("<Q", _read_exact(f, 8, path, "sensor name length"))
    if strlen > 4096:
        raise DataError(f"{path}: corrupt .sens header (sensor name length {strlen})")
    name = _read_exact(f, strlen, path, "sensor name").decode("utf-8", errors="replace")
    mats = np.frombuffer(_read_exact(f, 4 * 64, path, "camera matrices"), dtype="<f4").reshape(4, 4, 4)
    cc, dc, cw, ch, dw, dh, shift, n = _SIZES.unpack(_read_exact(f, _SIZES.size, path, "image sizes"))
    return {
        "sensor_name": name,
        "intrinsic_color": mats[0].astype(np.float64),
        "extrinsic_color": mats[1].astype(np.float64),
        "intrinsic_depth": mats[2].astype(np.float64),
        "extrinsic_depth": mats[3].astype(np.float64),
        "color_compression": COLOR_COMPRESSION.get(cc, f"invalid({cc})"),
        "depth_compression": DEPTH_COMPRESSION.get(dc, f"invalid({dc})"),
        "color_size": (int(ch), int(cw)),
        "depth_size": (int(dh), int(dw)),
        "depth_shift": float(shift),
        "num_frames": int(n),
    }


class SensScene(Scene):
    """One ``.sens`` file. Poses and frame byte offsets are indexed on open; images load lazily."""

    format_name = NAME

    def __init__(self, path: Path):
        self.path = Path(path)
        self.root = self.path.parent
        self.scene_id = self.path.stem
        self.notes: list[str] = []
        if not self.path.is_file():
            raise DataError(f"{self.path}: file not found")
        try:
            f = open(self.path, "rb")
        except OSError as e:
            raise DataError(f"{self.path}: unreadable ({e.strerror})") from e
        with f:
            h = read_sens_header(f, self.path)
            self.header = h
            n = h["num_frames"]
            size = os.fstat(f.fileno()).st_size
            self._poses = np.empty((n, 4, 4), dtype=np.float64)
            self._offsets = np.empty((n, 3), dtype=np.int64)  # colour offset, colour bytes, depth bytes
            pos = f.tell()
            for i in range(n):
                rec = _read_exact(f, _FRAME_HEADER.size, self.path, f"frame {i} header")
                vals = _FRAME_HEADER.unpack(rec)
                self._poses[i] = np.asarray(vals[:16], dtype=np.float64).reshape(4, 4)
                csize, dsize = vals[18], vals[19]
                pos += _FRAME_HEADER.size
                if pos + csize + dsize > size:
                    raise DataError(f"{self.path}: truncated .sens file (frame {i} of {n} runs past the end)")
                self._offsets[i] = (pos, csize, dsize)
                pos += csize + dsize
                f.seek(pos)
        if h["color_compression"] not in ("jpeg", "png", "raw"):
            raise DataError(f"{self.path}: unsupported colour compression {h['color_compression']!r}")
        if h["depth_compression"] not in ("zlib_ushort", "raw_ushort"):
            raise DataError(f"{self.path}: unsupported depth compression {h['depth_compression']!r}")
        if h["depth_shift"] <= 0:
            raise DataError(f"{self.path}: invalid depth_shift {h['depth_shift']}")
        self.K_color = h["intrinsic_color"][:3, :3].copy()
        self.K_depth = h["intrinsic_depth"][:3, :3].copy()
        for key in ("extrinsic_color", "extrinsic_depth"):
            E = h[key]
            if np.isfinite(E).all() and not np.allclose(E, np.eye(4), atol=1e-6):
                self.notes.append(f"{key} is not identity; pri3d assumes registered colour and depth")
        self.frame_ids = list(range(n))
        surf = self.path.with_name(self.scene_id + SURFACE_SUFFIX)
        self.surface_path = surf if surf.is_file() else None

    def load_pose(self, frame_id: int) -> np.ndarray:
        self._check_id(frame_id)
        return self._poses[frame_id].copy()

    def _check_id(self, frame_id: int) -> None:
        if not 0 <= frame_id < len(self.frame_ids):
            raise DataError(f"{self.path}: no frame {frame_id} (file holds {len(self.frame_ids)})")

    def _decode_color(self, data: bytes, frame_id: int) -> np.ndarray:
        h = self.header
        H, W = h["color_size"]
        if h["color_compression"] == "raw":
            if len(data) != H * W * 3:
                raise DataError(
                    f"{self.path}: frame {frame_id}: raw colour has {len(data)} bytes, expected {H * W * 3}"
                )
            return np.frombuffer(data, dtype=np.uint8).reshape(H, W, 3).copy()
        img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise DataError(f"{self.path}: frame {frame_id}: undecodable {h['color_compression']} colour")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def _decode_depth(self, data: bytes, frame_id: int) -> np.ndarray:
        h = self.header
        H, W = h["depth_size"]
        if h["depth_compression"] == "zlib_ushort":
            try:
                data = zlib.decompress(data)
            except zlib.error as e:
                raise DataError(f"{self.path}: frame {frame_id}: corrupt zlib depth ({e})") from e
        if len(data) != H * W * 2:
            raise DataError(f"{self.path}: frame {frame_id}: depth has {len(data)} bytes, expected {H * W * 2}")
        d = np.frombuffer(data, dtype="<u2").reshape(H, W)
        return d.astype(np.float32) / np.float32(h["depth_shift"])

    def load_frame(self, frame_id: int, *, color: bool = True, depth: bool = True, labels: bool = True) -> Frame:
        self._check_id(frame_id)
        rgb = dep = None
        if color or depth:
            off, csize, dsize = (int(x) for x in self._offsets[frame_id])
            try:
                with open(self.path, "rb") as f:
                    if color:
                        f.seek(off)
                        rgb = self._decode_color(_read_exact(f, csize, self.path, f"frame {frame_id} colour"), frame_id)
                    if depth:
                        f.seek(off + csize)
                        dep = self._decode_depth(_read_exact(f, dsize, self.path, f"frame {frame_id} depth"), frame_id)
            except OSError as e:
                raise DataError(f"{self.path}: unreadable ({e.strerror})") from e
        return Frame(
            scene_id=self.scene_id,
            frame_id=frame_id,
            color=rgb,
            depth=dep,
            color_intrinsics=self.K_color.copy(),
            depth_intrinsics=self.K_depth.copy(),
            pose=self._poses[frame_id].copy(),
        )


def _k4(K: np.ndarray) -> np.ndarray:
    K = np.asarray(K, dtype=np.float64)
    if K.shape == (3, 3):
        K4 = np.eye(4)
        K4[:3, :3] = K
        return K4
    if K.shape != (4, 4):
        raise ValueError(f"intrinsics must be 3x3 or 4x4, got {K.shape}")
    return K


def write_sens(
    path,
    frames: Iterable[Frame],
    *,
    color_intrinsics: np.ndarray | None = None,
    depth_intrinsics: np.ndarray | None = None,
    depth_shift: float = 1000.0,
    color_compression: str = "jpeg",
    jpeg_quality: int = 95,
    sensor_name: str = "pri3d",
) -> int:
    """Write frames to a version-4 ``.sens`` file (atomically: temp file + rename).

    Args:
        path: output file.
        frames: :class:`Frame` objects with ``color`` ``(Hc, Wc, 3)`` uint8 RGB, ``depth`` ``(Hd, Wd)``
            float32 metres (0 = invalid) and ``pose`` ``(4, 4)`` camera-to-world (stored as float32;
            non-finite poses are kept, as ScanNet does). All frames must share the image sizes. A
            generator is fine: frames are streamed.
        color_intrinsics, depth_intrinsics: 3x3 (or 4x4); default: the first frame's.
        depth_shift: depth values per metre (1000 = millimetres, ScanNet's value).
        color_compression: ``"jpeg"`` (ScanNet's), ``"png"`` (lossless) or ``"raw"``.

    Returns:
        The number of frames written.
    """
    if color_compression not in ("jpeg", "png", "raw"):
        raise ValueError(f"color_compression must be jpeg, png or raw, got {color_compression!r}")
    path = Path(path)
    cc = {v: k for k, v in COLOR_COMPRESSION.items()}[color_compression]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    n = 0
    try:
        with os.fdopen(fd, "wb") as f:
            sizes = None
            for fr in frames:
                if fr.color is None or fr.depth is None:
                    raise ValueError(f"frame {fr.frame_id}: write_sens needs colour and depth")
                color = np.ascontiguousarray(fr.color, dtype=np.uint8)
                dep = depth_to_uint16(fr.depth, depth_shift)
                if sizes is None:
                    sizes = (color.shape[:2], dep.shape)
                    Kc = _k4(fr.color_intrinsics if color_intrinsics is None else color_intrinsics)
                    Kd = _k4(fr.depth_intrinsics if depth_intrinsics is None else depth_intrinsics)
                    name = sensor_name.encode()
                    f.write(struct.pack("<IQ", VERSION, len(name)) + name)
                    for M in (Kc, np.eye(4), Kd, np.eye(4)):
                        f.write(np.asarray(M, dtype="<f4").tobytes())
                    (ch, cw), (dh, dw) = sizes
                    f.write(_SIZES.pack(cc, 1, cw, ch, dw, dh, depth_shift, 0))  # num_frames patched below
                elif (color.shape[:2], dep.shape) != sizes:
                    raise ValueError(
                        f"frame {fr.frame_id}: sizes {color.shape[:2]}/{dep.shape} differ from the first "
                        f"frame's {sizes}"
                    )
                if color_compression == "raw":
                    cdata = color.tobytes()
                else:
                    ext, params = (".jpg", [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]) if cc == 2 else (".png", [])
                    ok, buf = cv2.imencode(ext, cv2.cvtColor(color, cv2.COLOR_RGB2BGR), params)
                    if not ok:
                        raise ValueError(f"frame {fr.frame_id}: colour encoding failed")
                    cdata = buf.tobytes()
                ddata = zlib.compress(dep.astype("<u2").tobytes())
                pose = np.asarray(fr.pose, dtype="<f4").reshape(16)
                f.write(pose.tobytes() + struct.pack("<4Q", n, n, len(cdata), len(ddata)))
                f.write(cdata)
                f.write(ddata)
                n += 1
            if sizes is None:
                raise ValueError("write_sens: no frames given")
            # num_frames is the header's last field, right before the first frame.
            f.seek(4 + 8 + len(sensor_name.encode()) + 4 * 64 + _SIZES.size - 8)
            f.write(struct.pack("<Q", n))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return n


def _sens_in_dir(d: Path) -> list[Path]:
    return sorted(p for p in d.glob("*.sens") if p.is_file())


def _find_sens(path: Path) -> list[Path]:
    path = Path(path)
    if path.is_file():
        return [path] if path.suffix == ".sens" else []
    if not path.is_dir():
        return []
    own = _sens_in_dir(path)
    if own:
        return own
    found = []
    for child in sorted(path.iterdir()):
        if child.is_dir():
            found.extend(_sens_in_dir(child))
    return found


def detect(path: Path) -> bool:
    path = Path(path)
    if path.is_file():
        return path.suffix == ".sens"
    if not path.is_dir():
        return False
    if _sens_in_dir(path):
        return True
    return any(_sens_in_dir(c) for c in sorted(path.iterdir())[:50] if c.is_dir())


def open_scenes(path: Path) -> list[Scene]:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    files = _find_sens(path)
    if not files:
        raise DataError(f"{path}: no .sens file found (looked at the path, its files and its sub-folders)")
    return [SensScene(p) for p in files]
