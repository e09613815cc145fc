"""The probes on real captures (../shared/data; skipped when absent): another room and another sensor
for the depth and normal probes, NYUv2's labelled frames for semseg. Tiny: a random ResNet-18 at 96x128
on a few frames; the checks are that real data flow through (registration, holes, label ids), not scores."""

from __future__ import annotations

import math

from pri3d.probe import run_probe
from realdata import shared_data

SMALL = dict(arch="resnet18", resolution=(96, 128), pixels_per_frame=128, max_frames=3)


def test_depth_and_normals_fit_on_7scenes_score_on_the_hololens_room():
    kitchen, room = shared_data("7scenes-redkitchen-150-199"), shared_data("hololens-room-000")
    d = run_probe("depth", "scratch", kitchen, room, **SMALL)
    assert d["test_frames"] == 3 and d["test_pixels"] > 0.3 * 3 * 540 * 360  # ~38 % of the room's depth is invalid
    assert all(math.isfinite(d[k]) and math.isfinite(d["constant"][k]) for k in ("abs_rel", "rmse", "delta1"))
    assert 1.0 < d["constant"]["depth_m"] < 4.0  # a kitchen's mean depth in metres
    n = run_probe("normals", "scratch", kitchen, room, **SMALL)
    assert n["test_pixels"] > 0.2 * 3 * 540 * 360 and 0 <= n["within_30"] <= 1
    assert math.isfinite(n["median_deg"]) and math.isfinite(n["constant"]["median_deg"])


def test_semseg_on_nyuv2_labelled_frames():
    nyu = shared_data("nyuv2-labeled-samples")
    r = run_probe("semseg", "scratch", nyu, nyu, label_set="nyu40", **SMALL)
    assert r["fit_frames"] == 2 and r["test_pixels"] > 0.3 * 2 * 640 * 480
    assert 0 <= r["miou"] <= 1 and r["majority"]["class"]
