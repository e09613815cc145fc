"""MoCo's loss (pri3d.losses.moco): the queue of keys and InfoNCE against it."""

from __future__ import annotations

import math

import pytest
import torch

from pri3d.losses.moco import enqueue, moco_logits, moco_loss, new_queue


def test_enqueue_writes_at_the_pointer_and_wraps_around():
    queue = torch.zeros(5, 2)
    ptr = torch.tensor([3])
    keys = torch.arange(8, dtype=torch.float32).reshape(4, 2) + 1
    enqueue(queue, ptr, keys)
    assert int(ptr) == 2
    torch.testing.assert_close(queue[[3, 4, 0, 1]], keys)  # rows 3, 4, then wrapped to 0, 1
    torch.testing.assert_close(queue[2], torch.zeros(2))  # untouched
    enqueue(queue, ptr, keys[:3])  # exactly to the end: the pointer returns to 0
    assert int(ptr) == 0
    torch.testing.assert_close(queue[2:5], keys[:3])
    with pytest.raises(ValueError, match="cannot enqueue 6 keys"):
        enqueue(queue, ptr, torch.zeros(6, 2))


def test_loss_matches_a_naive_computation():
    g = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(3, 4, generator=g), dim=1)
    k = torch.nn.functional.normalize(torch.randn(3, 4, generator=g), dim=1)
    queue = torch.nn.functional.normalize(torch.randn(5, 4, generator=g), dim=1)
    T = 0.2
    logits = moco_logits(q, k, queue, T)
    assert logits.shape == (3, 6)
    naive = 0.0
    for i in range(3):
        pos = math.exp(float(q[i] @ k[i]) / T)
        neg = sum(math.exp(float(q[i] @ queue[j]) / T) for j in range(5))
        naive += -math.log(pos / (pos + neg))
    assert float(moco_loss(logits)) == pytest.approx(naive / 3, rel=1e-5)


def test_new_queue_is_normalised_noise_from_the_global_generator():
    torch.manual_seed(3)
    q = new_queue(6, 4)
    assert q.shape == (6, 4)
    torch.testing.assert_close(q.norm(dim=1), torch.ones(6))
    torch.manual_seed(3)
    torch.testing.assert_close(q, torch.nn.functional.normalize(torch.randn(6, 4), dim=1))
