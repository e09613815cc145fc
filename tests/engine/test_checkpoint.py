"""engine.checkpoint: keep-last-k, fall back past a truncated newest file, config diff on resume."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from pri3d.engine.checkpoint import CheckpointManager, capture_rng, config_changes, load_checkpoint, restore_rng
from pri3d.errors import CheckpointError


def test_keeps_the_newest_k_and_skips_a_truncated_newest(tmp_path):
    m = CheckpointManager(tmp_path / "ck", keep=2)
    for step in (1, 2, 3):
        m.save({"step": step}, step)
    assert [p.name for p in m.paths()] == ["ckpt_00000002.pt", "ckpt_00000003.pt"]
    m.paths()[-1].write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="ckpt_00000003.pt"):
        state, path = m.latest()
    assert state["step"] == 2 and path.name == "ckpt_00000002.pt"
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    assert CheckpointManager(tmp_path / "empty").latest() is None


def test_rng_state_round_trips():
    state = capture_rng()
    a = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    restore_rng(state)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == a


def test_config_changes_lists_dotted_keys_except_the_free_ones():
    old = {"out": "a", "optim": {"lr": 0.1, "gamma": 0.9}, "train": {"steps": 10}}
    new = {"out": "b", "optim": {"lr": 0.2, "gamma": 0.9}, "train": {"steps": 20, "seed": 1}}
    assert config_changes(old, new) == ["optim.lr", "out", "train.seed", "train.steps"]
    assert config_changes(old, new, {"out", "train.steps"}) == ["optim.lr", "train.seed"]
