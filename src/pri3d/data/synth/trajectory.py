"""Handheld-like camera walks through a synthetic room.

The camera walks a wobbly loop around the middle of the room (at least about a metre from the
walls, above the low free-standing furniture). Its gaze drifts slowly between looking outward at
the nearest walls and the furniture against them (close-ups) and looking back across the room over
the middle, and swings to the sides on top of that. Every quantity
is a smooth function of the frame index (sums of sinusoids with random periods), plus small fast
"hand shake" terms, so frame ``t`` is the same whatever the number of frames asked for.

Per-frame motion is fixed (a few degrees and centimetres per frame, like ScanNet's every-25th
frame), so consecutive frames overlap heavily and frames half a loop apart hardly at all.

Poses are camera-to-world 4x4 float64 in the OpenCV camera convention (x right, y down, z forward);
the world is z up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pri3d.data.synth.scene import SceneSpec, scene_rng

__all__ = ["intrinsics", "camera_poses", "look_rotation", "TrajectoryParams"]


def intrinsics(height: int, width: int, focal_ratio: float = 0.9) -> np.ndarray:
    """Pinhole intrinsics ``(3, 3)`` float64 with ``fx = fy = focal_ratio * width`` (ScanNet's depth
    camera: 577.9 px at 640 px wide, i.e. about 58 degrees horizontally) and the principal point at
    the image centre."""
    f = focal_ratio * width
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def look_rotation(yaw: float, pitch: float, roll: float = 0.0) -> np.ndarray:
    """Camera-to-world rotation ``(3, 3)`` of an OpenCV camera (x right, y down, z forward) in a
    z-up world, looking along heading ``yaw`` (radians from +x towards +y), tilted up by ``pitch``
    and rolled by ``roll`` about the viewing axis."""
    f = np.array([math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), math.sin(pitch)])
    r = np.cross(f, [0.0, 0.0, 1.0])
    r /= np.linalg.norm(r)
    d = np.cross(f, r)
    c, s = math.cos(roll), math.sin(roll)
    r, d = c * r + s * d, -s * r + c * d
    return np.stack([r, d, f], axis=1)


class _Wiggle:
    """A smooth zero-mean signal: a sum of sinusoids with random periods (frames) and phases."""

    def __init__(self, rng: np.random.Generator, amp: float, periods: tuple[float, float], n: int = 3):
        self.w = 2 * math.pi / rng.uniform(periods[0], periods[1], n)
        self.phase = rng.uniform(0, 2 * math.pi, n)
        a = rng.uniform(0.5, 1.0, n)
        self.a = amp * a / math.sqrt(0.5 * float((a**2).sum()))  # standard deviation ~= amp

    def __call__(self, t: np.ndarray) -> np.ndarray:
        return (self.a[None, :] * np.sin(t[:, None] * self.w[None, :] + self.phase[None, :])).sum(axis=1)


@dataclass
class TrajectoryParams:
    """Motion statistics (per frame). Defaults give consecutive-frame overlaps of ~0.6-0.9."""

    loop_speed_deg: tuple[float, float] = (4.0, 6.5)  # mean progress around the loop, degrees/frame
    wall_clearance: float = 1.0  # the loop stays this far (metres) inside the walls, roughly
    height: tuple[float, float] = (1.3, 1.7)  # mean camera height (metres); varies +-0.1
    gaze_swing_deg: tuple[float, float] = (20.0, 40.0)  # amplitude of the gaze swing left/right
    mode_period: tuple[float, float] = (90.0, 160.0)  # frames between looking outward and across the room
    pitch_deg: tuple[float, float] = (-26.0, -12.0)  # mean pitch (looking down)
    shake_m: float = 0.006
    shake_deg: float = 0.4


def camera_poses(spec: SceneSpec, n_frames: int, params: TrajectoryParams | None = None) -> np.ndarray:
    """Camera-to-world poses ``(n_frames, 4, 4)`` float64 of scene ``spec``'s walk.

    Deterministic in ``(spec.seed, spec.index)``; frame ``t`` does not depend on ``n_frames``.
    """
    p = params or TrajectoryParams()
    rng = scene_rng(spec.seed, spec.index, 1)
    Lx, Ly, _ = (float(v) for v in spec.size)
    centre = np.array([Lx / 2, Ly / 2]) + rng.uniform(-0.15, 0.15, 2)
    ax = max(0.15, Lx / 2 - p.wall_clearance) * rng.uniform(0.45, 0.8)
    ay = max(0.15, Ly / 2 - p.wall_clearance) * rng.uniform(0.45, 0.8)
    direction = 1.0 if rng.random() < 0.5 else -1.0
    theta0 = rng.uniform(0, 2 * math.pi)
    speed = math.radians(rng.uniform(*p.loop_speed_deg))
    speed_wiggle = _Wiggle(rng, 0.35, (20, 60))  # relative speed variation
    radius_wiggle = _Wiggle(rng, 0.12, (15, 50))
    height0 = rng.uniform(*p.height)
    height_wiggle = _Wiggle(rng, 0.05, (10, 40))
    swing = _Wiggle(rng, math.radians(rng.uniform(*p.gaze_swing_deg)), (30, 80), n=2)
    glance = _Wiggle(rng, math.radians(12.0), (8, 20), n=2)
    # gaze mode: 0 = outward at the nearest walls (close-ups), pi = back across the room
    mode_period = rng.uniform(*p.mode_period)
    mode_phase = rng.uniform(0, 2 * math.pi)
    pitch0 = math.radians(rng.uniform(*p.pitch_deg))
    pitch_wiggle = _Wiggle(rng, math.radians(7.0), (12, 45))
    roll_wiggle = _Wiggle(rng, math.radians(2.0), (15, 50))
    shake_pos = [_Wiggle(rng, p.shake_m, (2.5, 6.0), n=2) for _ in range(3)]
    shake_rot = [_Wiggle(rng, math.radians(p.shake_deg), (2.5, 6.0), n=2) for _ in range(3)]

    t = np.arange(n_frames, dtype=np.float64)
    # loop angle: integral of a positive, varying speed (cumulative sum keeps frame t independent of n)
    rate = speed * np.clip(1.0 + speed_wiggle(t), 0.2, None)
    theta = theta0 + direction * (np.cumsum(rate) - rate[0])
    rad = 1.0 + radius_wiggle(t)
    x = centre[0] + ax * rad * np.cos(theta) + shake_pos[0](t)
    y = centre[1] + ay * rad * np.sin(theta) + shake_pos[1](t)
    z = np.clip(height0 + height_wiggle(t), 1.2, 1.8) + shake_pos[2](t)
    x = np.clip(x, 0.6, Lx - 0.6)
    y = np.clip(y, 0.6, Ly - 0.6)
    # Look outward (along the loop's radial direction) with a swinging gaze.
    mode = 0.5 * math.pi * (1.0 - np.cos(2 * math.pi * t / mode_period + mode_phase))
    yaw = np.arctan2(ay * np.sin(theta) * ax, ax * np.cos(theta) * ay) + mode + swing(t) + glance(t) + shake_rot[0](t)
    # look down more at close range, less when looking across the room
    pitch = pitch0 + math.radians(6.0) * (mode / math.pi - 0.5) + pitch_wiggle(t) + shake_rot[1](t)
    pitch = np.clip(pitch, math.radians(-50), math.radians(5))
    roll = roll_wiggle(t) + shake_rot[2](t)
    poses = np.tile(np.eye(4), (n_frames, 1, 1))
    for i in range(n_frames):
        poses[i, :3, :3] = look_rotation(float(yaw[i]), float(pitch[i]), float(roll[i]))
        poses[i, :3, 3] = (x[i], y[i], z[i])
    return poses
