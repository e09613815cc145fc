"""The real-capture 3D-awareness experiment (pri3d.experiment.awareness), on tiny generated captures."""

from __future__ import annotations

import json

import pytest
from expfixtures import done_files

from pri3d.errors import ConfigError
from pri3d.experiment import load_experiment, run_experiment
from pri3d.experiment.awareness import COLUMNS, VERDICT, awareness_tables, probe_frames, rows

AWARE = """
name: aware
out: {out}
jobs: 1
awareness:
  captures: {{a: {a}, b: {b}}}
  directions: [[a, b]]
  stage1_methods: [view]
  max_frames: 3
  pixels_per_frame: 64
  pairs_per_bin: 2
  points: 16
data: {{pretrain_split: all}}
prepare: {{voxel_size: 0.08}}
pretrain:
  preset: cpu-tiny
  stage1: mocov2
  seeds: [0]
  overrides: ["data.resolution=[32,48]", "train.steps=1", "train.eval_every=0", "train.batch_size=2", "data.val_split="]
  per_method: {{mocov2: [moco.queue_size=8]}}
methods: [scratch, mocov2, view]
"""


@pytest.fixture(scope="module")
def captures(tmp_path_factory):
    from pri3d.data.synth import generate

    root = tmp_path_factory.mktemp("captures")
    for name, seed in (("a", 0), ("b", 1)):
        generate(root / name, scenes=1, frames_per_scene=10, seed=seed, resolution=(48, 64), workers=1)
    return root


def _config(tmp_path, captures, extra=()):
    path = tmp_path / "aware.yaml"
    path.write_text(AWARE.format(out=tmp_path / "out", a=captures / "a", b=captures / "b"))
    return load_experiment(path, list(extra))


def test_runs_every_row_on_the_unseen_capture_and_resumes(tmp_path, captures):
    cfg = _config(tmp_path, captures)
    assert rows(cfg) == ["scratch", "mocov2", "view", "view@mocov2"]
    res = run_experiment(cfg, log=lambda m: None)
    out = tmp_path / "out"
    cells = res["cells"]
    assert [c["row"] for c in cells] == rows(cfg)
    assert all(c["direction"] == ["a", "b"] and c["seed"] == 0 for c in cells)
    for c in cells:
        r = c["results"]
        assert 0 < r["depth"]["abs_rel"] < 10 and 0 <= r["depth"]["delta1"] <= 1
        assert 0 <= r["normals"]["median_deg"] <= 180
        assert set(r["matching"]["by_rotation"]) >= {"0-15", "15-30", "30-60", "60-180"}
        assert r["matching"]["pairs"] >= 1
        # the first seed keeps the pictures: sensor against probe, and one matched pair
        for pic in ("depth.png", "normals.png", "match.png"):
            assert (tmp_path / "out" / c["dir"] / pic).is_file()
    # every row is scored on the same frames, pixels and pairs: the floors agree across rows
    floors = {json.dumps(c["results"]["depth"]["constant"], sort_keys=True) for c in cells}
    assert len(floors) == 1
    # the Stage-I row starts from the Stage-I weights; the plain rows from random weights
    spec = {p.parent.name: json.loads(p.read_text()) for p in (out / "pretrain").glob("*/spec.json")}
    inits = sorted(bool(s["init"]) for s in spec.values())
    assert inits == [False, False, True]  # mocov2, view from scratch; view on mocov2
    table = (out / "table.md").read_text()
    assert "Pre-trained on a, probed on b" in table and "on Stage I" in table and "floor: constant" in table
    assert (out / "recall_by_rotation-a-to-b.png").is_file()
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["summary"]["a->b"]["rows"]) == set(rows(cfg))
    # a re-run reuses every cell
    before = done_files(out)
    run_experiment(_config(tmp_path, captures), log=lambda m: None)
    assert done_files(out) == before


def test_probe_parts_are_disjoint_and_evenly_spaced(captures):
    fit = probe_frames(captures / "a", [0.0, 0.5], 3, "fit")
    test = probe_frames(captures / "a", [0.6, 1.0], 10, "test")
    fit_ids = [f for _, f in fit.refs]
    test_ids = [f for _, f in test.refs]
    assert len(fit_ids) == 3 and len(test_ids) == 4
    assert max(fit_ids) < min(test_ids)
    assert fit_ids == sorted(fit_ids) and fit_ids[0] == 0 and fit_ids[-1] >= 3  # spread over frames 0-4


def _fake(row, seed, abs_rel, recall):
    return {
        "row": row,
        "direction": ["a", "b"],
        "seed": seed,
        "results": {
            "depth": {
                "abs_rel": abs_rel,
                "delta1": 0.5,
                "abs_rel_median": 0.2,
                "constant": {k: 0.3 for k in ("abs_rel", "delta1", "abs_rel_median")},
            },
            "normals": {"median_deg": 30.0, "within_30": 0.5, "constant": {"median_deg": 40.0, "within_30": 0.1}},
            "matching": {
                "recall@8px_img": 0.5,
                "pose_auc@20": 0.1,
                "by_rotation": {
                    b: {"pairs": 5, "recall@8px_img": recall} for b in ("0-15", "15-30", "30-60", "60-180")
                },
            },
        },
    }


def test_paired_deltas_and_the_spread(tmp_path, captures):
    cfg = _config(tmp_path, captures, ["methods=[scratch,view]", "awareness.stage1_methods=[]"])
    cells = [_fake("scratch", sd, 0.30, 0.20) for sd in range(3)]
    # view: depth better on every seed by 0.02 +- 0.01 (beyond the spread), recall worse on one seed
    cells += [_fake("view", sd, 0.30 - d, 0.20 + r) for sd, d, r in zip(range(3), (0.01, 0.02, 0.03), (0.1, 0.1, -0.3))]
    summary, md = awareness_tables(cfg, cells)
    p = summary["a->b"]["paired"]["view"]["scratch"]
    depth, recall = p[COLUMNS[VERDICT[0]][0]], p[COLUMNS[VERDICT[1]][0]]
    assert depth["mean"] == pytest.approx(-0.02) and depth["std"] == pytest.approx(0.01)
    assert depth["better_seeds"] == 3 and depth["beyond_spread"]  # lower AbsRel is better
    assert recall["mean"] == pytest.approx(100 * -0.1 / 3) and recall["better_seeds"] == 2
    assert not recall["beyond_spread"]
    assert "| Pri3D (view) | random init |" in md


@pytest.mark.parametrize(
    "override, message",
    [
        ("awareness.directions=[[a,c]]", "two different names"),
        ("awareness.directions=[[a,a]]", "two different names"),
        ("awareness.test_part=[0.4,1.0]", "overlap"),
        ("awareness.fit_part=[0.5,0.5]", "0 <= lo < hi <= 1"),
        ("awareness.stage1_methods=[mocov2]", "other than it"),
        ("awareness.points=0", "awareness.points"),
        ("methods=[scratch,imagenet]", "scratch and pre-training methods"),
    ],
)
def test_bad_awareness_settings_are_one_line_errors(tmp_path, captures, override, message):
    with pytest.raises(ConfigError, match=message):
        _config(tmp_path, captures, [override])


def test_check_names_the_captures_and_the_stage1_rows(tmp_path, captures):
    from pri3d.experiment import check_experiment

    lines = check_experiment(_config(tmp_path, captures), require_data=True)
    assert "(3D awareness)" in lines[0] and "a -> b" in lines[0]
    assert any("pretrain view:" in ln and "Stage I" not in ln for ln in lines)  # a plain row: random weights
    assert any("pretrain view:" in ln and "from the mocov2 (Stage I) weights" in ln for ln in lines)
    assert not any("finetune" in ln for ln in lines)  # nothing is fine-tuned
    assert sum("awareness.captures" in ln and "(found)" in ln for ln in lines) == 2
    assert lines[-1] == "config OK"
    with pytest.raises(Exception, match="does not exist"):
        check_experiment(_config(tmp_path, captures, [f"awareness.captures.b={tmp_path / 'nope'}"]), require_data=True)
