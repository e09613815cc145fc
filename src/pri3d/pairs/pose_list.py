"""Reader for relative-pose pair lists in the ScanNet test-pair format of SuperGlue and LoFTR.

``scannet_test_pairs_with_gt.txt`` (SuperGlue's ``assets/``; the 1500 ScanNet test pairs) has one pair
per line, 38 whitespace-separated fields::

    name0 name1 rot0 rot1  K0 (9 values, row-major)  K1 (9 values)  T_0to1 (16 values, row-major)

* ``name0``/``name1``: image paths relative to the image folder (``--images DIR``), e.g.
  ``scans_test/scene0707_00/sens/frame-000015.color.jpg``.
* ``rot0``/``rot1``: in-plane rotations in multiples of 90 degrees (0 for every ScanNet pair; other
  values are refused here).
* ``K0``/``K1``: intrinsics of the images **as stored on disk** (ScanNet colour: 1296x968). SuperGlue's
  ``match_pairs.py`` reads each image, resizes it (640x480 by default) and scales K by the resize
  factors; pri3d does the same for the evaluated resolution.
* ``T_0to1``: camera 0 to camera 1 (``X_1 = T_0to1 X_0``), rigid, metres.

Blank lines and lines starting with ``#`` are skipped. Every problem is a :class:`DataError` naming the
file and line.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from pri3d.errors import DataError
from pri3d.geometry.camera import pose_is_valid
from pri3d.geometry.pose import intrinsics_are_valid

__all__ = ["PosePair", "read_pose_pairs", "POSE_PAIR_FIELDS"]

POSE_PAIR_FIELDS = 38


class PosePair(NamedTuple):
    name0: str
    name1: str
    K0: np.ndarray  # (3, 3) float64, for image 0 as stored on disk
    K1: np.ndarray  # (3, 3) float64
    T_0to1: np.ndarray  # (4, 4) float64, camera 0 -> camera 1
    line: int  # 1-based line number in the pair file


def read_pose_pairs(path, images_dir=None) -> list[PosePair]:
    """Read a pair list (see the module docstring).

    Args:
        path: the pair file.
        images_dir: when given, both images of every pair must exist under it.

    Returns:
        The pairs in file order. Raises :class:`DataError` (file and line named) for a wrong field
        count, a value that is not a number, a non-zero rotation, a singular or non-finite K, a
        non-rigid or non-finite ``T_0to1``, a missing image, or a file with no pairs.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: pair list not found")
    if images_dir is not None:
        images_dir = Path(images_dir)
        if not images_dir.is_dir():
            raise DataError(f"{images_dir}: image folder not found")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: unreadable pair list ({e})") from e
    out = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        f = line.split()
        where = f"{path}:{n}"
        if len(f) != POSE_PAIR_FIELDS:
            raise DataError(
                f"{where}: {len(f)} fields, expected {POSE_PAIR_FIELDS} "
                "(name0 name1 rot0 rot1, K0 as 9 values, K1 as 9 values, T_0to1 as 16 values)"
            )
        try:
            rot0, rot1 = int(f[2]), int(f[3])
            vals = np.array([float(v) for v in f[4:]], dtype=np.float64)
        except ValueError as e:
            raise DataError(f"{where}: not a number ({e})") from e
        if rot0 or rot1:
            raise DataError(f"{where}: rotated pairs (rot0={rot0}, rot1={rot1}) are not supported; use 0 0")
        K0, K1, T = vals[:9].reshape(3, 3), vals[9:18].reshape(3, 3), vals[18:].reshape(4, 4)
        for name, K in (("K0", K0), ("K1", K1)):
            if not intrinsics_are_valid(K) or abs(np.linalg.det(K)) < 1e-12:
                raise DataError(f"{where}: {name} is singular or not finite: {K.ravel().tolist()}")
        if not pose_is_valid(T):
            raise DataError(f"{where}: T_0to1 is not a finite rigid transform: {T.ravel().tolist()}")
        if images_dir is not None:
            for name in f[:2]:
                if not (images_dir / name).is_file():
                    raise DataError(f"{where}: image {images_dir / name} not found")
        out.append(PosePair(f[0], f[1], K0, K1, T, n))
    if not out:
        raise DataError(f"{path}: no pairs")
    return out
