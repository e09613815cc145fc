"""Small file readers and writers shared by the format readers and the stages above: images, depth,
matrices, intrinsics checks, a scene's surface (``read_surface_ply``) and the one colour resize
(``resize_color``). Every error names the file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pri3d.errors import DataError

__all__ = [
    "fits",
    "check_fits",
    "check_shared_k",
    "read_shared_k_frame",
    "intrinsics3",
    "read_color",
    "read_depth",
    "read_label_png",
    "read_matrix",
    "write_color",
    "write_depth",
    "depth_to_uint16",
    "write_png",
    "write_matrix",
    "read_surface_ply",
    "resize_color",
]


def _check(path: Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return path


def read_color(path) -> np.ndarray:
    """Read a colour image as ``(H, W, 3)`` uint8 RGB. A JPEG without its end marker (a truncated
    file, which OpenCV would decode with grey rows and only a warning) is a :class:`DataError`."""
    path = _check(path)
    data = path.read_bytes()
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-4096:]:
        raise DataError(f"{path}: truncated JPEG (no end-of-image marker)")
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR) if data else None
    if img is None:
        raise DataError(f"{path}: unreadable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_depth(path, scale: float) -> np.ndarray:
    """Read a uint16 depth PNG as float32 metres (``value / scale``; 0 stays 0 = invalid).

    ``scale`` is the value per metre: 1000 for millimetres (ScanNet, 7-Scenes), 5000 for TUM/NYUv2.
    """
    path = _check(path)
    d = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if d is None:
        raise DataError(f"{path}: unreadable depth image")
    if d.ndim != 2 or d.dtype != np.uint16:
        what = "8-bit" if d.dtype == np.uint8 else str(d.dtype)
        raise DataError(f"{path}: expected a single-channel 16-bit depth PNG, got {what} {d.shape}")
    out = d.astype(np.float32) / np.float32(scale)
    # 7-Scenes marks invalid depth with 65535.
    out[d == 65535] = 0
    return out


def read_label_png(path) -> np.ndarray:
    """Read an 8- or 16-bit label/instance PNG as ``(H, W)`` int32."""
    path = _check(path)
    lab = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if lab is None:
        raise DataError(f"{path}: unreadable label image")
    if lab.ndim == 3:
        raise DataError(f"{path}: expected a single-channel label image, got shape {lab.shape}")
    return lab.astype(np.int32)


def read_matrix(path, shape=None) -> np.ndarray:
    """Read a whitespace-separated matrix text file as float64 (``-inf``/``nan`` are kept)."""
    path = _check(path)
    try:
        M = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise DataError(f"{path}: not a numeric matrix ({e})") from e
    if shape is not None and M.shape != tuple(shape):
        if M.size == int(np.prod(shape)):
            M = M.reshape(shape)
        else:
            raise DataError(f"{path}: expected a {shape} matrix, got {M.shape}")
    return M


def intrinsics3(M: np.ndarray, path) -> np.ndarray:
    """Accept a 3x3 or 4x4 intrinsics matrix (ScanNet writes 4x4) and return 3x3 float64. Non-finite
    entries or a focal length <= 0 are a :class:`DataError` naming ``path``."""
    M = np.asarray(M)
    if M.shape == (4, 4):
        M = M[:3, :3]
    if M.shape != (3, 3):
        raise DataError(f"{path}: expected 3x3 or 4x4 intrinsics, got {M.shape}")
    M = M.astype(np.float64)
    if not np.isfinite(M).all() or not (M[0, 0] > 0 and M[1, 1] > 0):
        raise DataError(
            f"{path}: intrinsics must be finite with positive focal lengths, got fx={M[0, 0]:g}, fy={M[1, 1]:g}, "
            f"cx={M[0, 2]:g}, cy={M[1, 2]:g}"
        )
    return M


def fits(K: np.ndarray, shape) -> bool:
    """Whether ``K`` plausibly describes an image of ``shape`` ``(H, W, ...)``: its principal point lies
    in the middle half of the image."""
    H, W = int(shape[0]), int(shape[1])
    return abs(float(K[0, 2]) - (W - 1) / 2) <= 0.25 * W and abs(float(K[1, 2]) - (H - 1) / 2) <= 0.25 * H


def check_fits(K: np.ndarray, shape, path, what: str = "image") -> None:
    """:class:`DataError` naming ``path`` unless ``K`` plausibly describes an image of ``shape`` ``(H, W,
    ...)``: its principal point in the middle half of the image (a half-size image with a full-size K
    puts it at the border)."""
    H, W = int(shape[0]), int(shape[1])
    cx, cy = float(K[0, 2]), float(K[1, 2])
    if not fits(K, shape):
        raise DataError(
            f"{path}: the {W}x{H} {what} does not fit the intrinsics (principal point cx={cx:.1f}, cy={cy:.1f}; "
            "they describe another image size)"
        )


def check_shared_k(K: np.ndarray, color, depth, color_path, depth_path) -> None:
    """Colour and depth registered to one ``K`` (7-Scenes, TUM): each loaded image must fit ``K``
    (:func:`check_fits`) and the two must have the same size. :class:`DataError` naming the file."""
    if color is not None:
        check_fits(K, color.shape, color_path, "colour image")
    if depth is not None:
        check_fits(K, depth.shape, depth_path, "depth image")
    if color is not None and depth is not None and color.shape[:2] != depth.shape[:2]:
        raise DataError(
            f"{color_path}: colour {color.shape[1]}x{color.shape[0]} and depth {depth.shape[1]}x{depth.shape[0]} "
            "differ; they share one K, so they must have one size"
        )


def read_shared_k_frame(
    scene_id: str, frame_id: int, K: np.ndarray, pose, color_path, depth_path, depth_scale: float, *, color, depth
):
    """A :class:`~pri3d.data.scene.Frame` of a format whose colour and depth share one ``K`` (7-Scenes, TUM):
    the images read as asked (``color``, ``depth``: bools), checked by :func:`check_shared_k`, ``K`` as both
    intrinsics and ``pose`` as given."""
    from pri3d.data.scene import Frame

    c = read_color(color_path) if color else None
    d = read_depth(depth_path, depth_scale) if depth else None
    check_shared_k(K, c, d, color_path, depth_path)
    return Frame(
        scene_id=scene_id,
        frame_id=frame_id,
        color=c,
        depth=d,
        color_intrinsics=K.copy(),
        depth_intrinsics=K.copy(),
        pose=pose,
    )


def write_color(path, rgb: np.ndarray, quality: int = 95) -> None:
    """Write ``(H, W, 3)`` uint8 RGB as JPEG (by extension .jpg) or PNG."""
    path = str(path)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if path.lower().endswith((".jpg", ".jpeg")) else []
    if not cv2.imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params):
        raise DataError(f"{path}: could not write image")


def depth_to_uint16(depth_m: np.ndarray, scale: float = 1000.0) -> np.ndarray:
    """Float metres ``(H, W)`` -> uint16 ``round(depth * scale)``; negative, non-finite or
    out-of-range (> 65535) values become 0 = invalid."""
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.round(np.asarray(depth_m, dtype=np.float64) * scale)
    d[(d < 0) | (d > 65535) | ~np.isfinite(d)] = 0
    return d.astype(np.uint16)


def write_depth(path, depth_m: np.ndarray, scale: float = 1000.0) -> None:
    """Write float metres as a uint16 PNG (``round(depth * scale)``, clipped to 65535 -> 0 invalid)."""
    write_png(path, depth_to_uint16(depth_m, scale))


def write_png(path, img: np.ndarray) -> None:
    if not cv2.imwrite(str(path), img):
        raise DataError(f"{path}: could not write image")


def write_matrix(path, M: np.ndarray) -> None:
    np.savetxt(path, np.asarray(M, dtype=np.float64), fmt="%.9g")


def read_surface_ply(path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``(vertices (V, 3) float64, faces (F, 3) int64 or None, colours (V, 3) uint8 or None)``."""
    from plyfile import PlyData

    path = Path(path)
    try:
        ply = PlyData.read(str(path))
    except Exception as e:  # plyfile raises several types on malformed files
        raise DataError(f"{path}: unreadable PLY ({e})") from e
    if "vertex" not in ply:
        raise DataError(f"{path}: PLY has no vertex element")
    v = ply["vertex"].data
    names = v.dtype.names or ()
    if not {"x", "y", "z"} <= set(names):
        raise DataError(f"{path}: PLY vertices have no x/y/z")
    V = np.stack([v["x"], v["y"], v["z"]], axis=1).astype(np.float64)
    col = None
    if {"red", "green", "blue"} <= set(names):
        col = np.stack([v["red"], v["green"], v["blue"]], axis=1).astype(np.uint8)
    faces = None
    if "face" in ply and ply["face"].count:
        fd = ply["face"].data
        key = "vertex_indices" if "vertex_indices" in fd.dtype.names else fd.dtype.names[0]
        lists = fd[key]
        try:
            faces = np.stack(lists).astype(np.int64).reshape(-1, 3)
        except ValueError as e:
            raise DataError(f"{path}: only triangle faces are supported") from e
    return V, faces, col


def resize_color(color: np.ndarray, size) -> np.ndarray:
    """``(Hc, Wc, 3)`` uint8 -> ``(H, W, 3)`` uint8 (area filter when shrinking)."""
    H, W = int(size[0]), int(size[1])
    if color.shape[:2] == (H, W):
        return color
    shrink = H < color.shape[0] or W < color.shape[1]
    return cv2.resize(color, (W, H), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
