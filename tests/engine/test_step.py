"""engine.step: the one training step (accumulation, clipping, the non-finite stop)."""

import math

import pytest
import torch

from pri3d.engine.checkpoint import CheckpointManager
from pri3d.engine.step import TrainStep
from pri3d.errors import TrainingError


def _setup(accumulate: int, clip: float = 0.0, checkpoints=None):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    step = TrainStep(
        model, opt, device=torch.device("cpu"), amp=None, clip_grad=clip, accumulate=accumulate, checkpoints=checkpoints
    )
    return model, step


def _loss(model):
    return lambda batch: {"mse": ((model(batch[0]) - batch[1]) ** 2).mean()}


def test_accumulated_micro_batches_step_like_one_batch():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(4, 3, generator=g), torch.randn(4, 1, generator=g)
    one, step1 = _setup(1)
    out = step1(0, 0.1, iter([(x, y)]), _loss(one))
    two, step2 = _setup(2)
    parts = step2(0, 0.1, iter([(x[:2], y[:2]), (x[2:], y[2:])]), _loss(two))
    assert len(out) == 1 and len(parts) == 2 and not parts[0]["mse"].requires_grad
    torch.testing.assert_close(one.weight, two.weight)
    assert all(p.grad is None for p in two.parameters())  # zeroed after the step
    assert two.weight.ne(_setup(1)[0].weight).any()


def test_clipping_bounds_the_update():
    model, step = _setup(1, clip=1e-3)
    before = model.weight.detach().clone()
    x = torch.full((2, 3), 100.0)
    step(0, 1.0, iter([(x, torch.zeros(2, 1))]), _loss(model))
    assert (model.weight - before).norm() <= 1e-3 + 1e-6  # lr 1: the step is the clipped gradient (weight part of it)


def test_a_non_finite_loss_names_the_step_counted_from_1_and_the_last_checkpoint(tmp_path):
    ckpts = CheckpointManager(tmp_path)
    ckpts.save({"step": 4}, 4)
    model, step = _setup(2, checkpoints=ckpts)
    before = model.weight.detach().clone()
    x = torch.ones(2, 3)
    batches = iter([(x, torch.zeros(2, 1)), (x, torch.full((2, 1), math.nan))])
    with pytest.raises(
        TrainingError, match=r"^non-finite loss at step 5 \(micro-batch 1; mse=nan; batch b\).*ckpt_00000004"
    ):
        step(4, 0.1, batches, _loss(model), describe=lambda b: "batch b")
    assert torch.equal(model.weight, before)  # stopped before the update
