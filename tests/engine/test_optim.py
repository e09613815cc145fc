"""engine.optim: one optimizer config, builder and schedule for both phases."""

from __future__ import annotations

import pytest
import torch

from pri3d.config import build
from pri3d.engine.optim import OptimConfig, build_optimizer, lr_at, set_lr
from pri3d.errors import ConfigError
from pri3d.pretrain.config import PretrainOptimConfig


def test_poly_step_cosine_and_warmup():
    poly = OptimConfig(lr=0.01, schedule="poly", poly_power=0.9)
    assert lr_at(0, 100, poly) == pytest.approx(0.01)
    assert lr_at(50, 100, poly) == pytest.approx(0.01 * 0.5**0.9)
    assert lr_at(100, 100, poly) == 0.0
    step = OptimConfig(lr=0.02, schedule="step", milestones=[60, 0.8], gamma=0.1, warmup_steps=10, warmup_factor=0.001)
    assert lr_at(0, 100, step) == pytest.approx(0.02 * 0.001)
    assert lr_at(5, 100, step) == pytest.approx(0.02 * (0.001 * 0.5 + 0.5))
    assert lr_at(59, 100, step) == pytest.approx(0.02)
    assert lr_at(60, 100, step) == pytest.approx(0.002)
    assert lr_at(80, 100, step) == pytest.approx(0.0002)
    periodic = OptimConfig(lr=0.1, schedule="step", gamma=0.5, step_size=10)  # no milestones: every step_size
    assert [lr_at(s, 100, periodic) for s in (0, 9, 10, 25)] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    cos = OptimConfig(lr=0.03, schedule="cosine")
    assert lr_at(50, 100, cos) == pytest.approx(0.015) and lr_at(100, 100, cos) == pytest.approx(0.0)
    assert lr_at(7, 100, OptimConfig(lr=0.2, schedule="constant")) == 0.2


def test_pretraining_defaults_are_the_papers():
    o = PretrainOptimConfig()
    assert (o.name, o.lr, o.weight_decay, o.schedule, o.gamma, o.step_size) == ("sgd", 0.1, 0.0, "step", 0.99, 1000)
    assert lr_at(1000, 60000, o) == pytest.approx(0.099)
    # the same fields as the fine-tuning one: one config, other defaults
    assert set(o.__dataclass_fields__) == set(OptimConfig.__dataclass_fields__)


def test_old_names_load_with_one_warning_each():
    with pytest.warns(FutureWarning) as w:
        o = build(OptimConfig, {"power": 0.5, "warmup_iters": 3}, "optim.")
    assert (o.poly_power, o.warmup_steps) == (0.5, 3)
    msgs = sorted(str(x.message) for x in w)
    assert msgs == [
        "config key optim.power is deprecated; use optim.poly_power",
        "config key optim.warmup_iters is deprecated; use optim.warmup_steps",
    ]
    with pytest.raises(ConfigError, match="same setting"):
        build(OptimConfig, {"power": 0.5, "poly_power": 0.9}, "optim.")


@pytest.mark.parametrize(
    "bad", [{"name": "adam"}, {"schedule": "linear"}, {"lr": 0.0}, {"step_size": 0}, {"warmup_steps": -1}]
)
def test_invalid_settings_are_rejected(bad):
    with pytest.raises(ConfigError, match="optim"):
        build(OptimConfig, bad)


def test_builder_and_set_lr():
    m = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    m[0].weight.requires_grad_(False)
    sgd = build_optimizer(m.parameters(), OptimConfig(lr=0.5, momentum=0.8, weight_decay=0.1))
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.8
    assert sum(len(g["params"]) for g in sgd.param_groups) == 3  # the frozen weight is left out
    adamw = build_optimizer(m.parameters(), OptimConfig(name="adamw", lr=1e-3, weight_decay=0.05))
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["weight_decay"] == 0.05
    set_lr(sgd, 0.25)
    assert all(g["lr"] == 0.25 for g in sgd.param_groups)
