"""The cells: their typed configs and keys."""

from __future__ import annotations

from expfixtures import TINY

from pri3d.experiment import load_experiment
from pri3d.experiment.cells import pretrain_spec


def test_editing_a_preset_changes_the_cell_key(tmp_path):
    from pri3d.experiment.cells import pretrain_spec

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


def test_typed_configs_equal_the_override_strings_of_earlier_code(tmp_path):
    """The cells set mode, split, init, task, seed and fraction as typed values; the resolved settings (part
    of the key) are those the ``key=value`` strings of earlier code gave, and the key records them."""
    from pri3d.config import resolve, to_dict
    from pri3d.downstream.config import FinetuneConfig
    from pri3d.experiment.cells import build_finetune_config, build_pretrain_config
    from pri3d.pretrain.config import PretrainConfig

    p = tmp_path / "c.yaml"
    p.write_text(TINY.format(out=tmp_path / "o"))
    cfg = load_experiment(p, ["data.pretrain_split=all", "finetune.per_method={view: [model.transfer=encoder]}"])
    for init in (None, "/some/stage1/backbone.pth"):
        ov = [*cfg.pretrain.overrides, *cfg.pretrain.per_method.get("view", []), "mode=view", "data.train_split=all"]
        ov += [f"model.init={init}"] if init else []
        assert to_dict(build_pretrain_config(cfg, "view", init)) == to_dict(resolve(PretrainConfig, "cpu-tiny", ov))
        spec = pretrain_spec(cfg, "view", "k", (init, "ik") if init else None)
        assert spec["settings"]["mode"] == "view" and spec["settings"]["data"]["train_split"] == "all"
        assert spec["settings"]["model"]["init"] == (init or resolve(PretrainConfig, "cpu-tiny").model.init)
    old = resolve(
        FinetuneConfig, "tiny-semseg", ["model.transfer=encoder", "task=semseg", "seed=3", "data.fraction=0.5"]
    )
    assert to_dict(build_finetune_config(cfg, "view", 0.5, 3)) == to_dict(old)


def test_cell_keys_carry_the_cell_version_and_the_generator_version(tmp_path, monkeypatch):
    import pri3d.data.synth as synth
    from pri3d.experiment.cells import CELL_VERSION, pretrain_spec, synth_cell
    from pri3d.experiment.config import SynthSpec

    p = tmp_path / "c.yaml"
    p.write_text(TINY.format(out=tmp_path / "o"))
    assert pretrain_spec(load_experiment(p), "view", "k")["version"] == CELL_VERSION
    monkeypatch.setattr(synth, "generate", lambda out, **kw: out.mkdir(parents=True))
    spec = SynthSpec(scenes=1, workers=1)
    path, key = synth_cell(tmp_path, spec, "synth", log=lambda *a: None)
    assert synth_cell(tmp_path, SynthSpec(scenes=1, workers=3), "synth", log=print) == (path, key)  # cached
    monkeypatch.setattr(synth, "VERSION", "0.test")
    assert synth_cell(tmp_path, spec, "synth", log=lambda *a: None)[1] != key  # a new generator: a new cell


def test_pretraining_seeds_pair_with_fine_tuning_seeds_and_seed_0_keeps_its_cells(tmp_path):
    import pytest

    from pri3d.errors import ConfigError
    from pri3d.experiment.config import pretrain_seed

    p = tmp_path / "c.yaml"
    p.write_text(TINY.format(out=tmp_path / "o"))
    cfg = load_experiment(p, ["seeds=[0,1,2]", "pretrain.seeds=[0,1]"])
    # fine-tuning seed number i starts from pre-training seed number i mod 2
    assert [pretrain_seed(cfg, s) for s in (0, 1, 2)] == [0, 1, 0]
    # an explicit pre-training seed 0 is the preset's own: the cells made before pretrain.seeds existed
    # keep their keys; another seed is another cell
    assert pretrain_spec(cfg, "view", "k", seed=0) == pretrain_spec(cfg, "view", "k")
    other = pretrain_spec(cfg, "view", "k", seed=1)
    assert other != pretrain_spec(cfg, "view", "k") and other["settings"]["train"]["seed"] == 1
    with pytest.raises(ConfigError, match="pretrain.seeds"):
        load_experiment(p, ["pretrain.seeds=[1,1]"])
