"""The experiment runner: config checks, aggregation, and kill-and-resume on a tiny config."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pri3d.errors import ConfigError
from pri3d.experiment import (
    ExperimentConfig,
    check_experiment,
    load_experiment,
    markdown_table,
    pretrain_table,
    run_experiment,
    summarize,
)

ROOT = Path(__file__).resolve().parents[1]

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


@pytest.mark.parametrize("name", ["synthetic-cpu", "scannet-paper", "nyuv2-paper"])
def test_shipped_configs_validate(name):
    cfg = load_experiment(ROOT / "configs" / f"{name}.yaml")
    lines = check_experiment(cfg)
    assert lines[-1] == "config OK"
    assert set(cfg.methods) >= {"scratch", "view", "geo", "view+geo"}


def test_demo_config_validates():
    from pri3d.demo import DEMO_CONFIG

    cfg = load_experiment(DEMO_CONFIG)
    assert check_experiment(cfg)[-1] == "config OK"
    # the slice of the protocol: scratch, the Stage-I init alone, Pri3D on top of it, at 20 % of the labels,
    # pre-trained on unlabelled scans of their own generator seed
    assert cfg.methods == ["scratch", "mocov2", "view"] and cfg.pretrain.stage1 == "mocov2" and cfg.fractions == [0.2]
    assert cfg.data.pretrain_synth.scenes > cfg.data.synth.scenes
    assert cfg.data.pretrain_synth.seed != cfg.data.synth.seed


def test_bad_configs_are_rejected(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(TINY.format(out=tmp_path / "o"))
    with pytest.raises(ConfigError, match="unknown method"):
        load_experiment(p, ["methods=[scratch,simclr]"])
    with pytest.raises(ConfigError, match="fractions"):
        load_experiment(p, ["fractions=[0.0]"])
    with pytest.raises(ConfigError, match="unknown config key"):
        load_experiment(p, ["pretrain.preset_name=x"])
    cfg = load_experiment(p, ["pretrain.overrides=[train.stepz=3]"])
    with pytest.raises(ConfigError, match="stepz"):
        check_experiment(cfg)


def test_summary_and_table():
    cfg = ExperimentConfig(methods=["scratch", "view"], fractions=[0.2], seeds=[0, 1])

    def cell(m, s, v):
        return {
            "method": m,
            "fraction": 0.2,
            "seed": s,
            "results": {
                "metric": "miou",
                "final": {"value": v, "scores": {"miou": v, "pixel_acc": 2 * v}},
                "best": {"value": v + 0.1},
            },
        }

    cells = [cell("scratch", 0, 0.10), cell("scratch", 1, 0.20), cell("view", 0, 0.30), cell("view", 1, 0.40)]
    s = summarize(cells, cfg)
    assert s["scratch"][0.2]["mean"] == pytest.approx(0.15)
    assert s["scratch"][0.2]["std"] == pytest.approx(0.0707107, rel=1e-5)  # sample std over seeds
    table = markdown_table(s, cfg)
    assert "| Scratch | 15.0 ± 7.1 |" in table
    assert "| Pri3D (view) | 35.0 ± 7.1 (+20.0) |" in table
    assert summarize(cells, cfg, "best")["view"][0.2]["mean"] == pytest.approx(0.45)
    assert summarize(cells, cfg, metric="pixel_acc")["view"][0.2]["mean"] == pytest.approx(0.70)


def _done_files(out: Path) -> dict[str, float]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("done.json")}


def test_editing_a_preset_changes_the_cell_key(tmp_path):
    from pri3d.experiment import pretrain_spec

    preset = tmp_path / "mine.yaml"
    preset.write_text("base: cpu-tiny\noptim:\n  lr: 0.05\n")
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(TINY.format(out=tmp_path / "o").replace("preset: cpu-tiny", f"preset: {preset}"))
    cfg = load_experiment(cfg_path)
    before = pretrain_spec(cfg, "view", "k")
    assert pretrain_spec(cfg, "view", "k") == before
    preset.write_text("base: cpu-tiny\noptim:\n  lr: 0.01\n")
    after = pretrain_spec(cfg, "view", "k")
    assert after["settings"]["optim"]["lr"] == 0.01 and after != before


def test_pretrain_table_reports_recall_at_init_and_after():
    view = {
        "steps": 400,
        "final_loss": 3.9,
        "stopped_early": False,
        "recall_init": {"recall@4px": 0.357},
        "recall": {"recall@4px": 0.434},
    }
    res = {
        "view": {"seconds": 90.0, "summary": view},
        "geo": {"seconds": 30.0, "summary": {"steps": 120, "final_loss": 8.5, "stopped_early": True}},
    }
    lines = pretrain_table(res).splitlines()
    assert lines[2] == "| view | 400 | 1.5 min | 3.900 | 0.357 | 0.434 |"
    assert lines[3] == "| geo | 120 (time budget) | 0.5 min | 8.500 | - | - |"


def test_killed_experiment_resumes_without_recomputing(tmp_path):
    out = tmp_path / "out"
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(TINY.format(out=out))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pri3d.cli", "experiment", "--config", str(cfg_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:  # kill -9 once the pre-training cell has finished, i.e. half way through
        deadline = time.time() + 300
        while time.time() < deadline and not list((out / "pretrain").glob("*/done.json")):
            assert proc.poll() is None, "experiment ended before the pre-training cell finished"
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    before = _done_files(out)
    assert any(k.startswith("pretrain/") for k in before) and any(k.startswith("data/") for k in before)
    assert not (out / "results.json").exists()

    logs: list[str] = []
    res = run_experiment(load_experiment(cfg_path), log=logs.append)
    after = _done_files(out)
    for k, t in before.items():  # finished cells were kept, not recomputed
        assert after[k] == t, k
    assert not any(line.startswith(("[data] generating", "[prepare] mining", "[pretrain]")) for line in logs)
    assert {c["method"] for c in res["cells"]} == {"scratch", "view"}
    assert (out / "table.md").read_text().count("|") > 8 and (out / "curve.png").stat().st_size > 0
    saved = json.loads((out / "results.json").read_text())
    assert len(saved["cells"]) == 2 and saved["metric"] == "miou"
    assert saved["pretrain"]["view"]["summary"]["steps"] == 2
    assert "### Pre-training" in (out / "table.md").read_text()

    # a third run does nothing at all
    logs.clear()
    run_experiment(load_experiment(cfg_path), log=logs.append)
    assert not any(line.startswith(("[finetune]", "[pretrain]")) for line in logs)


def test_paired_deltas_per_seed():
    from pri3d.experiment import paired_deltas, paired_table

    cfg = ExperimentConfig(methods=["scratch", "view"], fractions=[0.2], seeds=[0, 1, 2])

    def cell(m, s, v):
        return {"method": m, "fraction": 0.2, "seed": s, "results": {"metric": "miou", "final": {"value": v}}}

    cells = [
        cell("scratch", 0, 0.10),
        cell("scratch", 1, 0.30),
        cell("scratch", 2, 0.20),
        cell("view", 0, 0.15),
        cell("view", 1, 0.28),
        cell("view", 2, 0.30),
    ]
    d = paired_deltas(cells, cfg)["view"][0.2]
    assert d["deltas"] == pytest.approx([0.05, -0.02, 0.10]) and d["wins"] == 2
    assert d["mean"] == pytest.approx(0.13 / 3)
    assert "| Pri3D (view) | 20% | +5.0, -2.0, +10.0 | +4.3 ± 6.0 | 2/3 |" in paired_table(
        paired_deltas(cells, cfg), cfg
    )


def test_epoch_table_means_each_evaluation_over_seeds():
    from pri3d.experiment import epoch_table

    cfg = ExperimentConfig(methods=["scratch", "view"], fractions=[0.2, 1.0], seeds=[0, 1])

    def cell(m, s, f, vals):
        hist = [{"epoch": 10 * (i + 1), "value": v} for i, v in enumerate(vals)]
        return {"method": m, "fraction": f, "seed": s, "results": {"metric": "miou", "history": hist}}

    cells = [
        cell("scratch", 0, 0.2, [0.1, 0.2]),
        cell("scratch", 1, 0.2, [0.3, 0.4]),
        cell("view", 0, 0.2, [0.5, 0.6]),
        cell("view", 1, 0.2, [0.5, None]),
        cell("view", 0, 1.0, [0.9, 0.9]),
    ]  # another fraction: not in the table
    lines = epoch_table(cells, cfg).splitlines()
    assert lines[0] == "| Method | ep 10 | ep 20 |"
    assert lines[2] == "| Scratch | 20.0 | 30.0 |"
    assert lines[3] == "| Pri3D (view) | 50.0 | 60.0 |"
    assert epoch_table([], cfg) == ""


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


def test_separate_pretraining_data_stage1_init_and_a_test_set_scored_once(tmp_path):
    import torch

    from pri3d.pairs.store import PreparedData

    out = tmp_path / "out"
    p = tmp_path / "c.yaml"
    p.write_text(STAGED.format(out=out, test="false"))
    cfg = load_experiment(p)
    assert any("from the mocov2 (Stage I) weights" in line for line in check_experiment(cfg))
    res = run_experiment(cfg, log=lambda *a: None)
    dirs = res["cell_dirs"]
    # pre-training reads its own generated scans, not the labelled scenes
    assert dirs["pretrain_data"] != dirs["data"]
    prep = PreparedData(dirs["prepared"])
    assert prep.input_path == Path(dirs["pretrain_data"]).resolve() and len(prep.scene_ids()) == 2
    # the Pri3D run starts from the Stage-I encoder
    view_cfg = (Path(dirs["pretrain"]["view"]) / "run" / "config.yaml").read_text()
    moco_bb = json.loads((Path(dirs["pretrain"]["mocov2"]) / "done.json").read_text())["backbone"]
    assert f"init: {moco_bb}" in view_cfg
    assert (
        "Stage I alone" in (out / "table.md").read_text()
        and "Pri3D (view) on Stage I" in (out / "table.md").read_text()
    )
    assert "Test scenes" not in (out / "table.md").read_text() and not (out / "test").exists()
    # the same config with test: true reuses every cell and only adds the test scores of the final models
    # (here in 2 parallel processes)
    p.write_text(STAGED.format(out=out, test="true"))
    logs: list[str] = []
    done_before = _done_files(out)
    res2 = run_experiment(load_experiment(p, ["jobs=2"]), log=logs.append)
    assert not any(line.startswith(("[pretrain]", "[finetune]")) for line in logs)
    added = set(_done_files(out)) - set(done_before)
    assert sorted(k.split("/")[0] for k in added) == ["data", "test", "test", "test"]  # the test scenes + 3 scores
    assert "## Test scenes" in (out / "table.md").read_text()
    assert set(res2["summary_test"]) == {"scratch", "mocov2", "view"}
    t = json.loads((Path(res2["cell_dirs"]["test"][("view", 1.0, 0)]) / "done.json").read_text())
    ft_run = Path(res2["cell_dirs"]["finetune"][("view", 1.0, 0)]) / "run"
    assert Path(t["checkpoint"]).parent == ft_run / "checkpoints"  # the final model, not best.pt
    state = torch.load(t["checkpoint"], map_location="cpu", weights_only=False)
    assert state["step"] == 1 and t["results"]["final"]["value"] is not None
    assert t["images"] == 2  # every frame of the one test scene
