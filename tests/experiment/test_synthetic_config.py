"""The shipped benchmark (configs/synthetic-cpu.yaml) can see every class it scores: in every fine-tuning
seed's labelled subset, every class present in the validation and test frames has labelled pixels.

Label maps come from the generator's ray caster alone (no shading, no files), at the configs' own
resolutions, and the subset from the fraction selector the fine-tuning uses, so this is the experiment's
class-coverage line computed without running it (the report prints the same line from the real data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pri3d.data.synth.render import cast_rays, compile_scene
from pri3d.data.synth.scene import ROOM_TYPES, build_scene
from pri3d.data.synth.trajectory import camera_poses, intrinsics
from pri3d.data.synth.writer import scene_ids, split_scene_ids
from pri3d.downstream.classes import get_label_set
from pri3d.downstream.datasets import _resize
from pri3d.downstream.floors import coverage_gaps
from pri3d.downstream.fractions import select_fraction
from pri3d.experiment import load_experiment
from pri3d.experiment.cells import build_finetune_config

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "synthetic-cpu.yaml"


def _counts(seed: int, index: int, spec, net: tuple[int, int], frames=None) -> np.ndarray:
    """Labelled pixels per ScanNet-20 class in frames ``frames`` of scene ``(seed, index)`` at the
    network's resolution (labels resized with nearest neighbour, as the datasets do)."""
    label_set = get_label_set("scannet20")
    H, W = spec.resolution
    K = intrinsics(H, W)
    scene = build_scene(seed, index, materials=spec.materials)
    cs, poses = compile_scene(scene), camera_poses(scene, spec.frames_per_scene)
    n = label_set.num_classes
    out = np.zeros(n, dtype=np.int64)
    for f in range(spec.frames_per_scene) if frames is None else frames:
        _, pid, _ = cast_rays(cs, poses[f], K, H, W)
        lab = _resize(label_set.map(cs.labels[pid])[0], net, nearest=True)
        out += np.bincount(lab[lab != 255].reshape(-1), minlength=n)[:n]
    return out


@pytest.mark.slow
def test_every_scored_class_is_labelled_in_every_seed_and_every_split_holds_every_room_type():
    cfg = load_experiment(CONFIG)
    lab, test = cfg.data.synth, cfg.data.test_synth
    ids = scene_ids(lab.scenes)
    pool, val = split_scene_ids(ids)
    assert len(val) >= 6 and lab.frames_per_scene >= 32 and test.scenes >= 6 and test.frames_per_scene >= 32
    for scenes in (pool, val, [f"scene{i:04d}_00" for i in range(test.scenes)]):
        assert {ROOM_TYPES[ids.index(s) % len(ROOM_TYPES)] for s in scenes} == set(ROOM_TYPES)
    names = list(get_label_set("scannet20").class_names)
    for fraction in cfg.fractions:
        fcfg = build_finetune_config(cfg, "scratch", fraction, cfg.seeds[0])
        net = tuple(fcfg.data.resolution)
        val_counts = sum(_counts(lab.seed, ids.index(s), lab, net) for s in val)
        test_counts = sum(_counts(test.seed, i, test, net) for i in range(test.scenes))
        items = [(s, f) for s in pool for f in range(lab.frames_per_scene)]
        for seed in cfg.seeds:
            fcfg = build_finetune_config(cfg, "scratch", fraction, seed)
            keep = select_fraction(items, fraction, by=fcfg.data.fraction_by, seed=seed)
            train = np.zeros(len(names), dtype=np.int64)
            for s in sorted({s for s, _ in keep}):
                train += _counts(lab.seed, ids.index(s), lab, net, [f for s2, f in keep if s2 == s])
            assert coverage_gaps(train, val_counts, names) == [], (fraction, seed, "val")
            assert coverage_gaps(train, test_counts, names) == [], (fraction, seed, "test")
