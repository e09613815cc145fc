"""pri3d.config: typed configs from YAML presets and overrides; old key names still load."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import pytest

from pri3d.config import apply_overrides, build, flatten, load_preset, resolve, to_dict
from pri3d.downstream.config import FinetuneConfig
from pri3d.errors import ConfigError
from pri3d.pretrain.config import PretrainConfig


@dataclass
class Inner:
    n: int = 1
    xs: list[float] = field(default_factory=list)
    name: str | None = None


@dataclass
class Outer:
    flag: bool = False
    rate: float = 0.5
    inner: Inner = field(default_factory=Inner)


def test_values_are_coerced_to_the_declared_types():
    cfg = build(Outer, {"flag": True, "rate": 2, "inner": {"n": 3.0, "xs": [1, 2.5], "name": None}})
    assert cfg.rate == 2.0 and isinstance(cfg.rate, float)
    assert cfg.inner.n == 3 and isinstance(cfg.inner.n, int) and cfg.inner.xs == [1.0, 2.5]
    assert to_dict(cfg) == {"flag": True, "rate": 2.0, "inner": {"n": 3, "xs": [1.0, 2.5], "name": None}}
    assert flatten(to_dict(cfg))["inner.n"] == 3


@pytest.mark.parametrize(
    "d, match",
    [
        ({"flag": "yes"}, "flag: expected true/false"),
        ({"rate": "fast"}, "rate: expected a number"),
        ({"inner": {"n": 1.5}}, r"inner\.n: expected an integer"),
        ({"inner": {"n": True}}, r"inner\.n: expected an integer"),
        ({"inner": 3}, "inner: expected a section"),
        ({"inner": {"xs": 1}}, r"inner\.xs: expected a list"),
    ],
)
def test_wrong_types_name_the_key(d, match):
    with pytest.raises(ConfigError, match=match):
        build(Outer, d)


def test_unknown_keys_are_errors_that_list_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) inner\.m; valid keys under inner: n, xs, name"):
        build(Outer, {"inner": {"m": 1}})


def test_overrides_parse_yaml_values_and_reject_bad_forms():
    d = apply_overrides({"a": {"b": 1}}, ["a.b=2", "a.c=[1,2]", "d=true", "e="])
    assert d == {"a": {"b": 2, "c": [1, 2]}, "d": True, "e": ""}
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["nonsense"])
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"a": 1}, ["a.b=2"])


def test_base_chains_merge_and_cycles_are_caught(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\ntrain:\n  steps: 5\n")
    (tmp_path / "b.yaml").write_text("base: cpu-tiny\ntrain:\n  seed: 7\n")
    cfg = resolve(PretrainConfig, tmp_path / "a.yaml", ["optim.lr=0.02"])
    assert (cfg.train.steps, cfg.train.seed, cfg.optim.lr) == (5, 7, 0.02)
    (tmp_path / "c.yaml").write_text("base: d.yaml\n")
    (tmp_path / "d.yaml").write_text("base: c.yaml\n")
    with pytest.raises(ConfigError, match="circular 'base:' chain"):
        load_preset(tmp_path / "c.yaml", "pretrain")
    with pytest.raises(ConfigError, match="not found"):
        load_preset("no-such-preset", "pretrain")
    (tmp_path / "bad.yaml").write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_preset(tmp_path / "bad.yaml", "pretrain")


OLD_FINETUNE = """\
task: semseg
data:
  root: /data/scannet
  image_size: [96, 128]
  num_workers: 0
optim:
  power: 0.8
  warmup_iters: 5
train:
  iters: 7
  keep: 4
  amp: true
"""


def test_old_finetune_keys_load_with_one_warning_each(tmp_path):
    (tmp_path / "old.yaml").write_text(OLD_FINETUNE)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = resolve(FinetuneConfig, tmp_path / "old.yaml", [])
    msgs = sorted(str(w.message) for w in caught if issubclass(w.category, FutureWarning))
    assert msgs == [
        "config key data.image_size is deprecated; use data.resolution",
        "config key data.num_workers is deprecated; use data.workers",
        "config key data.root is deprecated; use data.path",
        "config key optim.power is deprecated; use optim.poly_power",
        "config key optim.warmup_iters is deprecated; use optim.warmup_steps",
        "config key train.iters is deprecated; use train.steps",
        "config key train.keep is deprecated; use train.keep_checkpoints",
        "config train.amp: true is deprecated; use train.amp: fp16",
    ]
    assert (cfg.data.path, cfg.data.resolution, cfg.data.workers) == ("/data/scannet", [96, 128], 0)
    assert (cfg.optim.poly_power, cfg.optim.warmup_steps) == (0.8, 5)
    assert (cfg.train.steps, cfg.train.keep_checkpoints, cfg.train.amp) == (7, 4, "fp16")
    # the saved config uses only the new names, so it loads without warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert build(FinetuneConfig, to_dict(cfg)) == cfg


def test_an_old_and_a_new_name_together_is_an_error():
    with pytest.raises(ConfigError, match="data.root and data.path are the same setting"):
        build(FinetuneConfig, {"data": {"root": "a", "path": "b"}})


def test_both_phases_use_the_same_names():
    p, f = to_dict(PretrainConfig()), to_dict(FinetuneConfig())
    for section, keys in {
        "data": ["path", "resolution", "workers"],
        "train": ["steps", "batch_size", "keep_checkpoints", "amp", "device", "log_every", "ckpt_every"],
        "optim": list(p["optim"]),
    }.items():
        for k in keys:
            assert k in p[section] and k in f[section], f"{section}.{k}"
    assert type(p["train"]["amp"]) is type(f["train"]["amp"]) is str
    # one unit per name (issue 23): eval_every counts optimizer steps and is pre-training's only; fine-tuning
    # evaluates every eval_every_epochs epochs
    assert "eval_every" in p["train"] and "eval_every" not in f["train"]
    assert "eval_every_epochs" in f["train"] and "eval_every_epochs" not in p["train"]


def test_fine_tunings_old_eval_every_loads_with_one_warning_and_counts_epochs(tmp_path):
    (tmp_path / "old.yaml").write_text("base: tiny-semseg\ntrain:\n  eval_every: 3\n")
    for preset, over in ((tmp_path / "old.yaml", []), ("tiny-semseg", ["train.eval_every=3"])):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cfg = resolve(FinetuneConfig, preset, over)
        msgs = [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
        assert msgs == [
            "config key train.eval_every is deprecated; use train.eval_every_epochs (the same count of epochs)"
        ]
        assert cfg.train.eval_every_epochs == 3  # epochs, as before: the loop evaluates every 3rd epoch
    # the shipped presets say eval_every_epochs: the old name given later replaces it (no "same setting" error)
    assert load_preset("cpu-small-semseg", "finetune")["train"]["eval_every_epochs"] == 5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        assert resolve(FinetuneConfig, "cpu-small-semseg", ["train.eval_every=2"]).train.eval_every_epochs == 2
        cfg = resolve(FinetuneConfig, "tiny-semseg", ["train.eval_every_epochs=4"])
    assert cfg.train.eval_every_epochs == 4
    with pytest.raises(ConfigError, match="train.eval_every and train.eval_every_epochs are the same setting"):
        build(FinetuneConfig, {"train": {"eval_every": 1, "eval_every_epochs": 2}})  # both in one mapping
    with pytest.raises(ConfigError, match="train.eval_every_epochs must be >= 0"):
        resolve(FinetuneConfig, "tiny-semseg", ["train.eval_every_epochs=-1"])
    # pre-training's eval_every (steps) is no alias of anything
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve(PretrainConfig, "cpu-tiny", ["train.eval_every=3"]).train.eval_every == 3


def test_an_old_name_in_a_file_and_the_new_one_in_its_base_are_one_setting(tmp_path):
    (tmp_path / "base.yaml").write_text("base: tiny-semseg\ntrain:\n  keep_checkpoints: 5\n")
    (tmp_path / "top.yaml").write_text("base: base.yaml\ntrain:\n  keep: 7\n")
    with pytest.warns(FutureWarning, match="train.keep is deprecated"):
        assert resolve(FinetuneConfig, tmp_path / "top.yaml").train.keep_checkpoints == 7
    with pytest.warns(FutureWarning, match="train.iters is deprecated"):
        assert resolve(FinetuneConfig, "tiny-semseg", values={"train.iters": 3}).train.steps == 3


def test_a_saved_config_with_old_names_builds_silently_and_compares_under_new_ones(tmp_path):
    import yaml

    from pri3d.config import build_saved, saved_as_current
    from pri3d.engine.checkpoint import config_changes

    old = yaml.safe_load(OLD_FINETUNE)  # as an earlier version saved it in a checkpoint
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cfg = build_saved(FinetuneConfig, old)
    assert cfg.data.path == "/data/scannet" and cfg.train.steps == 7
    assert config_changes(saved_as_current(FinetuneConfig, old), to_dict(cfg)) == []
    # a pre-training checkpoint from before the optimizer settings were shared lacks the new fields
    saved = to_dict(PretrainConfig())
    for k in ("milestones", "warmup_factor", "clip_grad"):
        del saved["optim"][k]
    new_fields = ["optim.clip_grad", "optim.milestones", "optim.warmup_factor"]
    assert config_changes(saved, to_dict(PretrainConfig())) == new_fields
    assert config_changes(saved_as_current(PretrainConfig, saved), to_dict(PretrainConfig())) == []
    assert saved_as_current(PretrainConfig, {"no_such_key": 1}) == {"no_such_key": 1}  # unbuildable: as saved


# ------------------------------------------------------------------ config files and values (issue 24)


def test_exponent_numbers_are_numbers_in_files_and_overrides(tmp_path):
    """YAML 1.1 reads 1e-3 as a string; users type 1e-3."""
    f = tmp_path / "c.yaml"
    f.write_text("optim:\n  lr: 1e-3\n  weight_decay: 1E-4\n")
    cfg = resolve(PretrainConfig, f, ["optim.clip_grad=1e30"])
    assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.clip_grad) == (1e-3, 1e-4, 1e30)
    d = apply_overrides({}, ["a=1e-3", "b=-2.5e+2", "c=.5e1", "d=1_000", "e=e3", "f=1e", "g=abc"])
    assert d == {"a": 1e-3, "b": -250.0, "c": 5.0, "d": 1000, "e": "e3", "f": "1e", "g": "abc"}


@pytest.mark.parametrize(
    "text,match",
    [
        ("", "empty config file"),
        ("# only a comment\n", "empty config file"),
        ("- a\n- b\n", "mapping of settings, got a list"),
        ("just a string\n", "mapping of settings, got a str"),
        ("optim:\n  lr: 0.1\n  lr: 0.2\n", "duplicate key 'lr'"),
        ("mode: view\nmode: geo\n", "duplicate key 'mode'"),
    ],
)
def test_empty_non_mapping_and_duplicate_key_files_are_errors(tmp_path, text, match):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=match) as e:
        load_preset(f, "pretrain")
    assert str(f) in str(e.value) and "\n" not in str(e.value)


def test_a_non_utf8_config_is_a_config_error(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_bytes(b"mode: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not a UTF-8 text file"):
        load_preset(f, "pretrain")


@pytest.mark.parametrize(
    "over,match",
    [
        ("train.steps=-1", "train.steps must be >= 1, or 0"),
        ("train.device=tpu", "train.device must be auto, cpu, cuda or cuda:N"),
        ("data.resolution=[50,66]", "multiples of 4"),
        ("train.keep_checkpoints=0", "keep_checkpoints"),
    ],
)
def test_finetune_values_are_range_checked(over, match):
    with pytest.raises(ConfigError, match=match):
        resolve(FinetuneConfig, "tiny-semseg", [over], values={"data.path": "somewhere"})


@pytest.mark.parametrize(
    "over,match",
    [
        ("train.device=tpu", "train.device must be"),
        ("train.steps=-1", "train.steps >= 0"),
        ("data.resolution=[50,66]", "multiples of 4"),
        ("train.eval_points=0", "eval_points"),
    ],
)
def test_pretrain_values_are_range_checked(over, match):
    with pytest.raises(ConfigError, match=match):
        resolve(PretrainConfig, "cpu-tiny", [over])
    assert resolve(PretrainConfig, "cpu-tiny", ["train.device=cuda:1", "train.steps=0"]).train.steps == 0


@pytest.mark.parametrize(
    "args,match",
    [
        (["eval-matching", "--points", "0"], "--points and --max-pairs must be >= 1"),
        (["eval-matching", "--max-pairs", "0"], "--points and --max-pairs must be >= 1"),
        (["eval-matching", "--resolution", "-48", "64"], "positive multiples of 4"),
        (["eval-matching", "--device", "tpu"], "device must be auto, cpu, cuda or cuda:N"),
        (["evaluate", "--max-images", "0"], "--max-images and --batch-size must be >= 1"),
        (["evaluate", "--batch-size", "0"], "--max-images and --batch-size must be >= 1"),
        (["evaluate", "--device", "tpu"], "--device must be auto, cpu, cuda or cuda:N"),
    ],
)
def test_evaluation_options_are_range_checked_in_one_line(tmp_path, capsys, args, match):
    from pri3d.cli import main

    data = ["--data", str(tmp_path)] if args[0] == "eval-matching" else []
    assert main([args[0], "--checkpoint", str(tmp_path / "x.pt"), *data, *args[1:]]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0], err


def test_cuda_without_a_gpu_is_one_line(tmp_path, capsys):
    import torch

    from pri3d.cli import main

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["eval-matching", "--checkpoint", "x.pt", "--data", str(tmp_path), "--device", "cuda"]) == 1
    assert "CUDA is not available" in capsys.readouterr().err


def test_paper_presets_hold_the_values_the_paper_states():
    """Pri3D (ICCV 2021), Sec. 4 "Implementation details": "SGD optimizer with learning rate 0.1 and
    batch-size of 64. The learning rate is decreased by a factor of 0.99 every 1000 steps, [...] trained
    for 60,000 iterations"; fine-tuning "with a batch size of 64 for 80 epochs. The initial learning rate
    is 0.01, with polynomial decay with power 0.9" (docs/fidelity.md, Sec. 5 and 6)."""
    pre = resolve(PretrainConfig, "paper", None)
    assert (pre.optim.name, pre.optim.lr, pre.train.batch_size, pre.train.steps) == ("sgd", 0.1, 64, 60000)
    assert (pre.optim.schedule, pre.optim.gamma, pre.optim.step_size) == ("step", 0.99, 1000)
    assert (pre.model.init, pre.model3d.input, pre.model.depth_head) == ("imagenet", "occupancy", False)
    ft = resolve(FinetuneConfig, "paper-semseg", None)
    assert (ft.optim.name, ft.optim.lr, ft.optim.schedule, ft.optim.poly_power) == ("sgd", 0.01, "poly", 0.9)
    assert (ft.train.batch_size, ft.train.epochs, ft.train.steps) == (64, 80, 0)
    assert ft.model.transfer in ("auto", "encoder+decoder")  # "The encoder and decoder networks are both pre-trained"
