"""The experiment driver: kill-and-resume, separate pre-training data, Stage-I init, a test set scored once
(tiny configs, real cells)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from expfixtures import STAGED, TINY, done_files

from killed import AFTER_CELL, run_killed
from pri3d.experiment import check_experiment, load_experiment, run_experiment


def test_killed_experiment_resumes_without_recomputing(tmp_path):
    out = tmp_path / "out"
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(TINY.format(out=out))
    # the experiment dies by SIGKILL right after its pre-training cell finished, i.e. half way through
    run_killed(
        ["experiment", "--config", str(cfg_path)], AFTER_CELL, "pretrain", env=dict(os.environ, OMP_NUM_THREADS="1")
    )
    before = done_files(out)
    assert any(k.startswith("pretrain/") for k in before) and any(k.startswith("data/") for k in before)
    assert not (out / "results.json").exists()

    logs: list[str] = []
    res = run_experiment(load_experiment(cfg_path), log=logs.append)
    after = done_files(out)
    for k, t in before.items():  # finished cells were kept, not recomputed
        assert after[k] == t, k
    assert not any(line.startswith(("[data] generating", "[prepare] mining", "[pretrain]")) for line in logs)
    assert {c["method"] for c in res["cells"]} == {"scratch", "view"}
    assert (out / "table.md").read_text().count("|") > 8 and (out / "curve.png").stat().st_size > 0
    saved = json.loads((out / "results.json").read_text())
    assert len(saved["cells"]) == 2 and saved["metric"] == "miou"
    assert saved["pretrain"]["view"][0]["summary"]["steps"] == 2 and saved["pretrain"]["view"][0]["seed"] == 0
    assert "### Pre-training" in (out / "table.md").read_text()

    # a third run does nothing at all
    logs.clear()
    run_experiment(load_experiment(cfg_path), log=logs.append)
    assert not any(line.startswith(("[finetune]", "[pretrain]")) for line in logs)


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
    # the floor of the table, measured on the same splits, with the class coverage of the labelled subset
    table = (out / "table.md").read_text()
    assert "### The floor on the same splits" in table and "| Position + colour lookup | val | 1 |" in table
    floor = json.loads((out / "results.json").read_text())["floors"]["val"]
    assert len(floor) == 1 and 0 < floor[0]["majority"] <= 1 and 0 <= floor[0]["lookup"] <= 1
    assert isinstance(floor[0]["gaps"], list) and f"seed 0: {', '.join(floor[0]['gaps']) or 'none'}" in table
    # the same config with test: true reuses every cell and only adds the test scores of the final models
    # (here in 2 parallel processes)
    p.write_text(STAGED.format(out=out, test="true"))
    logs: list[str] = []
    done_before = done_files(out)
    res2 = run_experiment(load_experiment(p, ["jobs=2"]), log=logs.append)
    assert not any(line.startswith(("[pretrain]", "[finetune]")) for line in logs)
    added = set(done_files(out)) - set(done_before)
    # the test scenes, 3 scores and the floor on the test scenes
    assert sorted(k.split("/")[0] for k in added) == ["data", "floor", "test", "test", "test"]
    assert "| Majority class" in (out / "table.md").read_text().split("## Test scenes")[0]
    assert "| test | 1 |" in (out / "table.md").read_text()
    assert "## Test scenes" in (out / "table.md").read_text()
    assert set(res2["summary_test"]) == {"scratch", "mocov2", "view"}
    t = json.loads((Path(res2["cell_dirs"]["test"][("view", 1.0, 0)]) / "done.json").read_text())
    ft_run = Path(res2["cell_dirs"]["finetune"][("view", 1.0, 0)]) / "run"
    assert Path(t["checkpoint"]).parent == ft_run / "checkpoints"  # the final model, not best.pt
    state = torch.load(t["checkpoint"], map_location="cpu", weights_only=False)
    assert state["step"] == 1 and t["results"]["final"]["value"] is not None
    assert t["images"] == 2  # every frame of the one test scene


def test_two_pretraining_seeds_each_fine_tuning_seed_starts_from_its_own(tmp_path):
    import yaml

    p = tmp_path / "c.yaml"
    p.write_text(TINY.format(out=tmp_path / "out"))
    cfg = load_experiment(p, ["seeds=[0,1]", "pretrain.seeds=[0,1]", "finetune.floors=false"])
    res = run_experiment(cfg, log=lambda *a: None)
    dirs = res["cell_dirs"]
    runs = {sd: Path(dirs["pretrain_seeds"][("view", sd)]) for sd in (0, 1)}
    assert runs[0] != runs[1]
    for sd in (0, 1):
        assert yaml.safe_load((runs[sd] / "run" / "config.yaml").read_text())["train"]["seed"] == sd
        ft = yaml.safe_load((Path(dirs["finetune"][("view", 1.0, sd)]) / "run" / "config.yaml").read_text())
        assert ft["init"] == json.loads((runs[sd] / "done.json").read_text())["backbone"]
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["seed"] for r in saved["pretrain"]["view"]] == [0, 1]
    assert "| view (seed 1) |" in (tmp_path / "out" / "table.md").read_text()


def test_probe_only_experiment_reads_out_every_method_on_the_labelled_frames_of_each_seed(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(TINY.format(out=tmp_path / "out"))
    over = [
        "probe.enabled=true",
        "finetune.enabled=false",
        "fractions=[0.5]",
        "seeds=[0,1]",
        "probe.pixels_per_frame=64",
    ]
    logs: list[str] = []
    res = run_experiment(load_experiment(p, over), log=logs.append)
    assert not (tmp_path / "out" / "finetune").exists()  # no fine-tuning cell
    cells = res["probe"]["val"]["cells"]
    assert {(c["method"], c["seed"]) for c in cells} == {("scratch", 0), ("scratch", 1), ("view", 0), ("view", 1)}
    assert all(0 <= c["results"]["final"]["value"] <= 1 for c in cells)
    done = [json.loads(d.read_text()) for d in (tmp_path / "out" / "probe").glob("*/done.json")]
    # fitted on the seed's labelled half of the train scenes' frames, scored on every validation frame
    assert {d["probe"]["fit_frames"] for d in done} == {4} and {d["probe"]["test_frames"] for d in done} == {4}
    assert any("random init" in d["backbone"] or "scratch" in d["backbone"] for d in done)
    table = (tmp_path / "out" / "table.md").read_text()
    assert "## Frozen-feature probe" in table and "| Pri3D (view) |" in table
    logs.clear()
    run_experiment(load_experiment(p, over), log=logs.append)  # cached: nothing is recomputed
    assert not any(line.startswith(("[probe]", "[pretrain]")) for line in logs)
