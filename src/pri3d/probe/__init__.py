"""Frozen-feature probes: what a 2D backbone's features know, read out by a light head without training
the backbone (DINOv2's linear semseg and depth heads; Probe3D's depth and normal probes).

* :mod:`~pri3d.probe.features`: the one frozen-feature extractor (which layers, which resolution).
* :mod:`~pri3d.probe.head`: the one way to fit a light head (logistic regression or ridge).
* :mod:`~pri3d.probe.semseg`, :mod:`~pri3d.probe.depth`, :mod:`~pri3d.probe.normals`: the tasks.
* :mod:`~pri3d.probe.run`: ``run_probe(task, checkpoint, fit, test, ...)``, what ``pri3d probe`` calls.

From Python::

    from pri3d.probe import run_probe
    report = run_probe("depth", "backbone.pth", "data/room-a", "data/room-b", max_frames=100)
    report["abs_rel"], report["delta1"], report["constant"]["abs_rel"]

or, with a feature extractor already built, ``probe_semseg(extractor, fit_frames, test_frames)`` (and
``probe_depth``, ``probe_normals``).
"""

from pri3d.probe.depth import probe_depth
from pri3d.probe.features import FeatureExtractor
from pri3d.probe.frames import FrameList, FrameSet, open_frames
from pri3d.probe.normals import probe_normals
from pri3d.probe.run import TASKS, format_probe, run_probe
from pri3d.probe.semseg import probe_semseg

__all__ = [
    "TASKS",
    "FeatureExtractor",
    "FrameList",
    "FrameSet",
    "format_probe",
    "open_frames",
    "probe_depth",
    "probe_normals",
    "probe_semseg",
    "run_probe",
]
