"""``pri3d experiment --check`` (check_experiment): the shipped configs, and the cells' own builders."""

from __future__ import annotations

import pytest
from expfixtures import ROOT, TINY

from pri3d.errors import ConfigError
from pri3d.experiment import check_experiment, load_experiment


@pytest.mark.parametrize("name", ["synthetic-cpu", "scannet-paper", "nyuv2-paper"])
def test_shipped_configs_validate(name):
    cfg = load_experiment(ROOT / "configs" / f"{name}.yaml")
    lines = check_experiment(cfg)
    assert lines[-1].startswith("config OK")  # (with the datasets it names when they are not here)
    assert set(cfg.methods) >= {"scratch", "view", "geo", "view+geo"}


def test_demo_config_validates():
    from pri3d.demo import DEMO_CONFIG

    cfg = load_experiment(DEMO_CONFIG)
    assert check_experiment(cfg)[-1] == "config OK"
    # the slice of the protocol: scratch, the Stage-I init alone, Pri3D on top of it, at 20 % of the labels,
    # pre-trained on more unlabelled frames than the labelled set holds, scans of their own generator seed;
    # read out by the frozen-feature probe over several seeds, beside the floor
    assert cfg.methods == ["scratch", "mocov2", "view"] and cfg.pretrain.stage1 == "mocov2" and cfg.fractions == [0.2]
    pre, lab = cfg.data.pretrain_synth, cfg.data.synth
    assert pre.scenes * pre.frames_per_scene > lab.scenes * lab.frames_per_scene
    assert pre.seed != lab.seed
    assert cfg.probe.enabled and len(cfg.seeds) >= 3 and cfg.finetune.floors


def test_check_builds_every_fine_tuning_cell_config(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(TINY.format(out=tmp_path / "o"))
    cfg = load_experiment(p, ["finetune.per_method={view: [model.transfer=decoder]}"])
    with pytest.raises(ConfigError, match="model.transfer"):
        check_experiment(cfg)  # only the view cells have the bad override


def test_check_reports_the_stage1_method_even_without_its_row(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(TINY.format(out=tmp_path / "o"))
    lines = check_experiment(load_experiment(p, ["pretrain.stage1=mocov2"]))
    assert any(line.startswith("  pretrain mocov2: preset cpu-tiny") for line in lines)
    assert any("pretrain view:" in line and "from the mocov2 (Stage I) weights" in line for line in lines)


@pytest.mark.parametrize(
    "over,match",
    [
        ("data.synth.resolution=[0,0]", "data.synth.resolution 0x0"),
        ("data.synth.frames_per_scene=0", "frames_per_scene"),
        ("finetune.per_method={bogus: [model.transfer=encoder]}", "finetune.per_method names unknown method"),
        ("pretrain.per_method={view: model.transfer=encoder}", "must be a list"),
    ],
)
def test_check_reports_bad_values(tmp_path, over, match):
    """Issue 24: `experiment --check` said "config OK" for these."""
    p = tmp_path / "c.yaml"
    p.write_text(TINY.format(out=tmp_path / "o"))
    with pytest.raises(ConfigError, match=match):
        check_experiment(load_experiment(p, [over]))


def test_check_says_when_a_test_set_is_not_here(tmp_path, capsys):
    from pri3d.cli import main

    p = tmp_path / "c.yaml"
    p.write_text(TINY.format(out=tmp_path / "o"))
    over = ["test=true", "data.test_path=/nonexistent"]
    assert check_experiment(load_experiment(p, over))[-1].startswith("config OK, but data.test_path not found")
    assert main(["experiment", "--config", str(p), "--check", "--require-data", *over]) == 1
    assert "/nonexistent does not exist" in capsys.readouterr().err
