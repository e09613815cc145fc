"""Shared by the experiment tests: tiny experiment configs and a helper (a module with a unique name, as
tests/downstream/dsfixtures.py)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

TINY = """
name: tiny
out: {out}
data:
  synth: {{scenes: 3, frames_per_scene: 4, seed: 0, resolution: [48, 64], workers: 1}}
prepare: {{voxel_size: 0.08}}
pretrain:
  preset: cpu-tiny
  overrides: ["data.resolution=[32,48]", "train.steps=2", "train.eval_every=0"]
finetune:
  task: semseg
  preset: tiny-semseg
methods: [scratch, view]
fractions: [1.0]
seeds: [0]
"""


STAGED = """
name: staged
out: {out}
data:
  synth: {{scenes: 3, frames_per_scene: 3, seed: 0, resolution: [48, 64], workers: 1}}
  pretrain_synth: {{scenes: 2, frames_per_scene: 3, seed: 5, resolution: [48, 64], workers: 1}}
  test_synth: {{scenes: 1, frames_per_scene: 2, seed: 9, resolution: [48, 64], workers: 1}}
prepare: {{voxel_size: 0.08}}
pretrain:
  preset: cpu-tiny
  overrides: ["data.resolution=[32,48]", "train.steps=1", "train.eval_every=0"]
  per_method: {{mocov2: [moco.queue_size=8]}}
  stage1: mocov2
finetune:
  task: semseg
  preset: tiny-semseg
  overrides: ["train.steps=1"]
methods: [scratch, mocov2, view]
fractions: [1.0]
seeds: [0]
test: {test}
"""


def done_files(out: Path) -> dict[str, float]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("done.json")}
