"""The scaling series (pri3d.experiment.scaling): each step count is its own pre-training cell from the same
Stage-I weights, the config's own step count reuses the table's cell, the gain is paired against Stage I's
probe cell, and a bad series is refused before anything runs (tiny configs, real cells)."""

from __future__ import annotations

import json

import pytest
from expfixtures import STAGED

from pri3d.errors import ConfigError
from pri3d.experiment import load_experiment, run_experiment
from pri3d.experiment.cells import build_pretrain_config
from pri3d.experiment.report import method_label
from pri3d.experiment.scaling import scaling_config

PROBE = ["probe.enabled=true", "finetune.enabled=false", "probe.pixels_per_frame=32"]


def test_scaling_series_pretrains_each_step_count_and_pairs_the_gain_with_stage1(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(STAGED.format(out=tmp_path / "out", test="false"))
    over = [*PROBE, "scaling={steps: [1, 2], methods: [view]}"]
    cfg = load_experiment(p, over)
    # the config's own count (1 step) keeps the table's overrides, so its cell is the table's row
    assert scaling_config(cfg, "view", 1) is cfg
    assert build_pretrain_config(scaling_config(cfg, "view", 2), "view").train.steps == 2
    logs: list[str] = []
    res = run_experiment(cfg, log=logs.append)
    out = tmp_path / "out"
    views = sorted(d.name for d in (out / "pretrain").iterdir() if d.name.startswith("view-"))
    assert len(views) == 2  # the table's 1-step cell (reused by the series) and the 2-step one
    steps = sorted(json.loads((out / "pretrain" / v / "done.json").read_text())["summary"]["steps"] for v in views)
    assert steps == [1, 2]
    sc = res["scaling"]
    assert {(r["steps"], r["seed"]) for r in sc["rows"]} == {(1, 0), (2, 0)}
    probe = {(c["method"], c["seed"]): c["results"]["final"]["value"] for c in res["probe"]["val"]["cells"]}
    for r in sc["rows"]:  # paired against Stage I's own probe cell of the same seed
        assert r["gain_vs_stage1"] == pytest.approx(r["miou"] - probe[("mocov2", r["seed"])])
        if r["steps"] == 1:  # the table's cell: the same probe value as the table's view row
            assert r["miou"] == pytest.approx(probe[("view", r["seed"])])
    assert (out / "scaling.png").stat().st_size > 0
    table = (out / "table.md").read_text()
    assert "### Scaling series" in table and f"| {method_label(cfg, 'view')} | 2 |" in table
    logs.clear()
    run_experiment(load_experiment(p, over), log=logs.append)  # cached: nothing is recomputed
    assert not any(line.startswith(("[probe]", "[pretrain]")) for line in logs)


@pytest.mark.parametrize(
    "bad, words",
    [
        ("scaling={steps: [0], methods: [view]}", "steps"),
        ("scaling={steps: [2, 2], methods: [view]}", "steps"),
        ("scaling={steps: [2], methods: [mocov2]}", "other than Stage I"),
        ("scaling={steps: [2], methods: []}", "other than Stage I"),
        ("scaling={steps: [2], methods: [view], pretrain_seeds: [7]}", "pretrain_seeds"),
    ],
)
def test_a_bad_scaling_series_is_refused_at_load(tmp_path, bad, words):
    p = tmp_path / "c.yaml"
    p.write_text(STAGED.format(out=tmp_path / "out", test="false"))
    with pytest.raises(ConfigError, match=words):
        load_experiment(p, [*PROBE, bad])


def test_scaling_needs_the_probe_and_a_stage1_row(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(STAGED.format(out=tmp_path / "out", test="false"))
    with pytest.raises(ConfigError, match="probe.enabled"):
        load_experiment(p, ["scaling={steps: [2], methods: [view]}"])
    with pytest.raises(ConfigError, match="among methods"):
        load_experiment(p, [*PROBE, "methods=[scratch,view]", "scaling={steps: [2], methods: [view]}"])
