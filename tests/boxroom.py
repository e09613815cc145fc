"""An analytic RGB-D test scene: a box room with two boxes, ray-cast exactly, and helpers that write it
in ScanNet's exported layout. Shared by the overlap, mining and split tests (``from boxroom import ...``;
``tests/`` is on ``sys.path`` through the root ``conftest.py``, as for ``realdata``)."""

from __future__ import annotations

import numpy as np

from pri3d.data.io import write_color, write_depth, write_matrix

H, W = 96, 128
K = np.array([[110.0, 0, 63.5], [0, 110.0, 47.5], [0, 0, 1]])
ROOM = (np.zeros(3), np.array([4.0, 3.0, 2.5]))
BOXES = [(np.array([0.5, 0.4, 0.0]), np.array([1.3, 1.0, 0.9])), (np.array([2.8, 1.8, 0.0]), np.array([3.5, 2.6, 1.6]))]


def look_pose(pos, yaw, pitch=0.0) -> np.ndarray:
    """Camera-to-world pose (OpenCV axes) at ``pos`` looking along ``yaw`` (world z up)."""
    z = np.array([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), -np.sin(pitch)])
    up = np.array([0.0, 0.0, -1.0])
    x = np.cross(up, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, z], axis=1)
    T[:3, 3] = pos
    return T


def render_depth(pose, K=K, size=(H, W), noise=0.0, holes=0.0, rng=None) -> np.ndarray:
    """Ray-cast the box room: ``(H, W)`` float32 z-depth in metres."""
    h, w = size
    v, u = np.mgrid[0:h, 0:w]
    d_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u, float)], -1).reshape(-1, 3)
    d = d_cam @ pose[:3, :3].T
    o = pose[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        lo, hi = ROOM
        t_exit = np.where(d > 0, (hi - o) / d, np.where(d < 0, (lo - o) / d, np.inf)).min(axis=1)
        t = t_exit
        for blo, bhi in BOXES:
            t1, t2 = (blo - o) / d, (bhi - o) / d
            tn = np.nanmax(np.minimum(t1, t2), axis=1)
            tf = np.nanmin(np.maximum(t1, t2), axis=1)
            hit = (tn <= tf) & (tn > 0)
            t = np.where(hit & (tn < t), tn, t)
    z = t.reshape(h, w).astype(np.float64)  # d_cam has z = 1, so t is the z-depth
    rng = rng or np.random.default_rng(0)
    if noise:
        z = z + rng.normal(0.0, noise, z.shape) * (1 + z * z)
    if holes:
        z[rng.random(z.shape) < holes] = 0
    return z.astype(np.float32)


def trajectory(n, start=0.0, step=0.35):
    return [
        look_pose(np.array([2.0 + 0.3 * np.sin(i), 1.5 + 0.2 * np.cos(i), 1.3]), start + step * i, 0.25)
        for i in range(n)
    ]


def write_scene(root, name, poses, *, K=K, depths=None, ids=None, surface=False, noise=0.003, seed=0):
    """A ScanNet exported-layout scene (colour, depth in mm, poses, intrinsics)."""
    s = root / name
    for sub in ("color", "depth", "pose", "intrinsic"):
        (s / sub).mkdir(parents=True, exist_ok=True)
    K4 = np.eye(4)
    K4[:3, :3] = K
    write_matrix(s / "intrinsic" / "intrinsic_depth.txt", K4)
    write_matrix(s / "intrinsic" / "intrinsic_color.txt", K4)
    rng = np.random.default_rng(seed)
    ids = ids or [10 * i for i in range(len(poses))]
    for k, (fid, T) in enumerate(zip(ids, poses)):
        d = depths[k] if depths is not None else render_depth(T, noise=noise, holes=0.03, rng=rng)
        write_depth(s / "depth" / f"{fid}.png", np.where(np.isfinite(d), d, 0))
        write_color(s / "color" / f"{fid}.jpg", np.full((H, W, 3), (40 * k) % 255, dtype=np.uint8))
        write_matrix(s / "pose" / f"{fid}.txt", T)
    if surface:
        write_room_ply(s / "surface.ply")
    return s


def write_room_ply(path):
    from plyfile import PlyData, PlyElement

    lo, hi = ROOM
    V = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])], dtype=np.float32)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = [(a, b, c) for a, b, c, d in quads] + [(a, c, d) for a, b, c, d in quads]
    vert = np.array(
        [tuple(v) + (200, 100, 50) for v in V],
        dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")],
    )
    face = np.array([(list(f),) for f in faces], dtype=[("vertex_indices", "i4", (3,))])
    PlyData([PlyElement.describe(vert, "vertex"), PlyElement.describe(face, "face")]).write(str(path))


def check_faithful(fast, ref, thr=0.30):
    """The fast miner agrees with the exact reference: keep/drop decisions at ``thr`` and overlap error."""
    agree = np.mean((fast >= thr) == (ref >= thr))
    err = np.abs(fast - ref).max()
    assert agree >= 0.97, (agree, fast, ref)
    assert err <= 0.05, (err, fast, ref)
    return agree, err
