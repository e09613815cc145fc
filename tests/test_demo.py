"""`pri3d demo` end to end on a tiny override of its config: the probe readout, the floor, the report and
its pictures; and the shipped config's labelled frames cover the validation classes."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from pri3d.cli import main

TINY = [
    "data.synth={scenes: 3, frames_per_scene: 4, seed: 0, resolution: [48, 64], workers: 1}",
    "data.pretrain_synth={scenes: 3, frames_per_scene: 8, seed: 1, resolution: [48, 64], workers: 1}",
    "jobs=1",
    "prepare={voxel_size: 0.08}",
    "pretrain.preset=cpu-tiny",
    'pretrain.overrides=["data.resolution=[32,48]", "train.steps=2", "train.eval_every=1"]',
    "finetune.preset=tiny-semseg",
    "finetune.overrides=[data.fraction_by=image]",
    "probe.pixels_per_frame=64",
    "seeds=[0,1]",
]


@pytest.fixture
def one_thread():
    """The probe cells run in this process here (jobs=1): one torch thread, as each cell has in the demo's
    pool. A tiny L-BFGS fit is mostly per-iteration overhead, which a second thread on a busy 2-core
    machine multiplies (seconds instead of tens of seconds per fit)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _row(text: str, label: str, after: str) -> str:
    """The first table row starting with ``| label |`` after the line containing ``after``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if after in line)
    return next(line for line in lines[start:] if line.startswith(f"| {label} |"))


def _pictures(report_dir, names) -> None:
    text = (report_dir / "report.md").read_text()
    for name in names:
        assert f"]({name}.png)" in text
        img = np.asarray(Image.open(report_dir / f"{name}.png"))
        assert img.ndim == 3 and img.shape[0] > 20 and img.std() > 0, name  # a real picture, not blank


def test_demo_reads_out_by_the_probe_beside_the_floor(tmp_path, capsys, one_thread):
    assert main(["demo", "--out", str(tmp_path / "d"), *TINY]) == 0
    report_dir = tmp_path / "d" / "report"
    text = (report_dir / "report.md").read_text()
    # no fine-tuning cell: no curve; the segmentation picture is the probe's
    _pictures(report_dir, ("correspondences", "features", "segmentation"))
    assert "curve" not in text and not (tmp_path / "d" / "experiment" / "finetune").exists()
    assert "the frozen-feature probe's prediction for each row" in text
    # the readout named: frozen backbone, which features, linear head, where it is fitted and scored
    assert "**Frozen-feature probe**" in text and "frozen: eval mode" in text and "linear head" in text
    assert "decoder+layer1+layer2+layer3+layer4 (992 channels)" in text  # the extractor's own description
    assert "Fine-tuning (the paper's readout) is off" in text
    # the probe table: every row, random init included; the floor of the same frames
    probe = "## Frozen-feature probe"
    assert probe in text
    for label in ("Scratch", "MoCoV2 (scans): Stage I alone", "Pri3D (view) on Stage I"):
        _row(text, label, probe)
    assert "| Majority class (" in text and "| Position + colour lookup |" in text
    assert "Classes present in the scored frames with no labelled pixel" in text
    # the summary reads the probe table (its figures, on the table's scale) and names floor and random init
    scratch = _row(text, "Scratch", probe).split("|")[2].strip()  # e.g. "12.3 ± 0.4"
    assert f"measured here: probe, Scratch (random init) {scratch} mIoU over seeds [0, 1]" in text
    assert text.count("measured here: probe,") == 3 and "the floor (no learning" in text
    lookup = _row(text, "Position + colour lookup", "### The floor").split("|")[4].strip()
    assert f"position + colour lookup {lookup} mIoU" in text
    # every difference is judged against the seed spread: vs random init (2), Pri3D vs Stage I (1), vs floor (3)
    verdicts = re.findall(r"\(per seed [^)]*\): (within the seed spread|(above|below) on every seed)", text)
    assert len(verdicts) == 6
    assert text.count("minus Scratch (random init), paired by seed") == 2
    assert "Pri3D (view) on Stage I minus MoCoV2 (scans): Stage I alone" in text
    assert "cannot show" in text and "configs/synthetic-cpu.yaml" in text
    # the pre-training table reports the held-out recall before and after pre-training, Stage I included
    for m in ("mocov2", "view"):
        row = next(line for line in text.splitlines() if line.startswith(f"| {m} |"))
        assert row.count("|") == 7 and " - |" not in row
    assert "report" in capsys.readouterr().out
    # a re-run recomputes nothing and rewrites the same report
    assert main(["demo", "--out", str(tmp_path / "d"), *TINY]) == 0
    out = capsys.readouterr().out
    assert "[pretrain]" not in out and "[probe]" not in out
    # fine-tuning instead of the probe (finetune.enabled=true): the fine-tuned models' table, curve, picture
    over = [*TINY, "seeds=[0]", "finetune.enabled=true", "probe.enabled=false"]
    assert main(["demo", "--out", str(tmp_path / "d"), *over]) == 0
    text = (report_dir / "report.md").read_text()
    _pictures(report_dir, ("curve", "correspondences", "features", "segmentation"))
    assert "[pretrain]" not in capsys.readouterr().out  # the pre-trained cells are reused
    assert "## demo: miou on the validation scenes (final epoch" in text and probe not in text
    assert text.count("measured here: fine-tuning,") == 2 and "one seed, no spread to judge it by" in text
    assert "**Fine-tuning** (the paper's readout)" in text and "the frozen-feature probe's prediction" not in text


@pytest.mark.slow
def test_shipped_demo_covers_every_room_type_and_all_but_two_rare_classes():
    """The shipped demo config (demo.yaml): every room type in the labelled pool and in the 6 validation
    scenes; in every probe seed's labelled 20 % (29 frames, by image) every class of the validation frames
    has labelled pixels but at most shower curtain and bathtub, which only 2 of the pool's 144 frames show
    (the report's class-coverage line says which). Label maps from the generator's ray caster alone,
    resized as the datasets do (tests/experiment/test_synthetic_config.py does the same for the full
    benchmark, where the coverage is complete)."""
    from pri3d.data.synth.render import cast_rays, compile_scene
    from pri3d.data.synth.scene import ROOM_TYPES, build_scene
    from pri3d.data.synth.trajectory import camera_poses, intrinsics
    from pri3d.data.synth.writer import scene_ids, split_scene_ids
    from pri3d.demo import DEMO_CONFIG
    from pri3d.downstream.classes import get_label_set
    from pri3d.downstream.datasets import _resize
    from pri3d.downstream.floors import coverage_gaps
    from pri3d.downstream.fractions import select_fraction
    from pri3d.experiment import load_experiment
    from pri3d.experiment.cells import build_finetune_config

    cfg = load_experiment(DEMO_CONFIG)
    spec, fraction = cfg.data.synth, min(cfg.fractions)
    ids = scene_ids(spec.scenes)
    pool, val = split_scene_ids(ids)
    assert len(val) == 6
    for scenes in (pool, val):
        assert {ROOM_TYPES[ids.index(s) % len(ROOM_TYPES)] for s in scenes} == set(ROOM_TYPES)
    label_set = get_label_set("scannet20")
    names, n = list(label_set.class_names), label_set.num_classes
    H, W = spec.resolution
    K = intrinsics(H, W)
    compiled: dict = {}

    def counts(scene: str, frames, net) -> np.ndarray:
        if scene not in compiled:
            built = build_scene(spec.seed, ids.index(scene), materials=spec.materials)
            compiled[scene] = (compile_scene(built), camera_poses(built, spec.frames_per_scene))
        cs, poses = compiled[scene]
        out = np.zeros(n, dtype=np.int64)
        for f in frames:
            _, pid, _ = cast_rays(cs, poses[f], K, H, W)
            lab = _resize(label_set.map(cs.labels[pid])[0], net, nearest=True)
            out += np.bincount(lab[lab != 255].reshape(-1), minlength=n)[:n]
        return out

    items = [(s, f) for s in pool for f in range(spec.frames_per_scene)]
    for seed in cfg.seeds:
        fcfg = build_finetune_config(cfg, "scratch", fraction, seed)
        net = tuple(fcfg.data.resolution)
        val_counts = sum(counts(s, range(spec.frames_per_scene), net) for s in val)
        keep = select_fraction(items, fraction, by=fcfg.data.fraction_by, seed=seed)
        assert len(keep) == 29, seed
        train = sum(counts(s, [f for s2, f in keep if s2 == s], net) for s in sorted({s for s, _ in keep}))
        assert set(coverage_gaps(train, val_counts, names)) <= {"shower curtain", "bathtub"}, seed
    rare = [names.index("shower curtain"), names.index("bathtub")]
    shown = [(s, f) for s, f in items if counts(s, [f], net)[rare].any()]
    assert len(shown) == 2, shown
