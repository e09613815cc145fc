"""The experiment config: loading, validation, the method list."""

from __future__ import annotations

import pytest
from expfixtures import TINY

from pri3d.errors import ConfigError
from pri3d.experiment import ALL_METHODS, PRETRAIN_METHODS, ExperimentConfig, check_experiment, load_experiment
from pri3d.pretrain.modes import MODES


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


def test_the_methods_are_the_baselines_and_the_registered_modes(tmp_path):
    assert PRETRAIN_METHODS == tuple(MODES)
    assert ALL_METHODS == ("scratch", "imagenet", "trivial", "mocov2", "view", "geo", "view+geo")
    assert ExperimentConfig().methods == list(ALL_METHODS)
    p = tmp_path / "c.yaml"
    p.write_text(TINY.format(out=tmp_path / "o"))
    with pytest.raises(
        ConfigError, match=r"stage1 must be a pre-training method \(trivial, mocov2, view, geo, view\+geo\)"
    ):
        load_experiment(p, ["pretrain.stage1=scratch"])
