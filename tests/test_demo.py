"""`pri3d demo` end to end on a tiny override of its config: the report and its pictures are written."""

from __future__ import annotations

import numpy as np
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
    "finetune.overrides=[]",
]


def test_demo_writes_report_with_pictures(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), *TINY]) == 0
    report_dir = tmp_path / "d" / "report"
    text = (report_dir / "report.md").read_text()
    for name in ("curve", "correspondences", "features", "segmentation"):
        png = report_dir / f"{name}.png"
        assert f"]({name}.png)" in text
        img = np.asarray(Image.open(png))
        assert img.ndim == 3 and img.shape[0] > 20 and img.std() > 0, name  # a real picture, not blank
    # the slice's rows: scratch, the Stage-I init alone, Pri3D on top of it
    assert "| Scratch |" in text and "MoCoV2" in text and "Stage I alone" in text and "Pri3D (view) on Stage I" in text
    # what the slice measured against scratch, and what it cannot show
    assert text.count("measured here:") == 2 and "cannot show" in text and "configs/synthetic-cpu.yaml" in text
    # ...on the table's scale: the scratch figure it quotes is the table's scratch row
    scratch = next(line for line in text.splitlines() if line.startswith("| Scratch |")).split("|")[2].split("±")[0]
    assert f"vs Scratch {float(scratch):.1f} " in text
    # the pre-training table reports the held-out recall before and after pre-training, Stage I included
    for m in ("mocov2", "view"):
        row = next(line for line in text.splitlines() if line.startswith(f"| {m} |"))
        assert row.count("|") == 7 and " - |" not in row
    assert "report" in capsys.readouterr().out
    # a re-run recomputes nothing and rewrites the same report
    assert main(["demo", "--out", str(tmp_path / "d"), *TINY]) == 0
    assert "[pretrain]" not in capsys.readouterr().out
