"""The training settings both phases share (engine/config.py; this file's name avoids tests/test_config.py's): one
meaning, one unit per key (issue 23)."""

import dataclasses

import pytest

from pri3d.config import build, resolve, to_dict
from pri3d.downstream.config import FinetuneConfig
from pri3d.downstream.config import TrainConfig as FinetuneTrain
from pri3d.engine.config import TrainConfig
from pri3d.errors import ConfigError
from pri3d.pretrain.config import PretrainConfig
from pri3d.pretrain.config import TrainConfig as PretrainTrain

SHARED = ["batch_size", "log_every", "ckpt_every", "keep_checkpoints", "amp", "device"]


def test_both_phases_train_sections_are_the_shared_config_plus_their_own():
    assert [f.name for f in dataclasses.fields(TrainConfig)] == SHARED
    for phase in (PretrainTrain, FinetuneTrain):
        assert issubclass(phase, TrainConfig)
        # a phase gives a shared key another default, never another meaning: the check is the shared one
        assert phase.checkpoint_due is TrainConfig.checkpoint_due
    assert to_dict(PretrainConfig())["train"]["ckpt_every"] == 1000  # the defaults stay the phases' own
    assert to_dict(FinetuneConfig())["train"]["ckpt_every"] == 0


@pytest.mark.parametrize("phase", [PretrainTrain, FinetuneTrain])
def test_ckpt_every_means_the_same_in_both_phases(phase):
    """Checkpoints at every evaluation and at the end, and every ``ckpt_every`` optimizer steps; 0 = none in
    between. Before, 0 meant "at every evaluation" in fine-tuning and was refused by pre-training."""
    every3 = build(phase, {"ckpt_every": 3})
    assert [s for s in range(1, 10) if every3.checkpoint_due(s, evaluated=False, last=False)] == [3, 6, 9]
    assert every3.checkpoint_due(4, evaluated=True, last=False) and every3.checkpoint_due(5, evaluated=False, last=True)
    zero = build(phase, {"ckpt_every": 0})
    assert not any(zero.checkpoint_due(s, evaluated=False, last=False) for s in range(1, 10))
    assert zero.checkpoint_due(4, evaluated=True, last=False) and zero.checkpoint_due(9, evaluated=False, last=True)
    with pytest.raises(ConfigError, match="train.ckpt_every >= 0"):
        build(phase, {"ckpt_every": -1})


def test_pretraining_accepts_ckpt_every_0():
    cfg = resolve(PretrainConfig, "cpu-tiny", ["train.ckpt_every=0"])
    assert cfg.train.ckpt_every == 0


@pytest.mark.parametrize(
    "over,match",
    [
        ("train.batch_size=0", "train.batch_size must be >= 1"),
        ("train.log_every=0", "train.log_every and train.keep_checkpoints must be >= 1"),
        ("train.amp=fp32", "train.amp must be one of"),
        ("train.device=tpu", "train.device must be"),
    ],
)
def test_the_shared_keys_are_checked_alike_in_both_phases(over, match):
    for cls, preset in ((PretrainConfig, "cpu-tiny"), (FinetuneConfig, "tiny-semseg")):
        with pytest.raises(ConfigError, match=match):
            resolve(cls, preset, [over])
    # what a phase allows less of is its own: pre-training has no fp16 (it would need loss scaling)
    with pytest.raises(ConfigError, match="train.amp must be one of auto, bf16, off"):
        resolve(PretrainConfig, "cpu-tiny", ["train.amp=fp16"])
    assert resolve(FinetuneConfig, "tiny-semseg", ["train.amp=fp16"]).train.amp == "fp16"
