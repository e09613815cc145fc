"""MoCo's loss: InfoNCE of a query against its positive key and a queue of negative keys.

The queue is a ``(K, D)`` tensor of L2-normalised keys of past batches with a write pointer (a
1-element int64 tensor); the owner registers both as buffers (:class:`pri3d.pretrain.mocov2.MoCoV2`),
so they are in the checkpoint. :func:`new_queue` fills it with normalised Gaussian noise, as MoCo;
:func:`enqueue` writes a batch of keys at the pointer, overwriting the oldest.

The loss is ``logits = [q.k+, q.queue^T] / T`` (:func:`moco_logits`) and cross-entropy with the
positive, column 0, as the label (:func:`moco_loss`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["new_queue", "enqueue", "moco_logits", "moco_loss"]


def new_queue(size: int, dim: int) -> torch.Tensor:
    """``(size, dim)`` L2-normalised Gaussian noise (draws from torch's global generator)."""
    return F.normalize(torch.randn(size, dim), dim=1)


@torch.no_grad()
def enqueue(queue: torch.Tensor, ptr: torch.Tensor, keys: torch.Tensor) -> None:
    """In place: write ``keys`` ``(n, D)`` into ``queue`` ``(K, D)`` from row ``ptr`` (a 1-element
    int64 tensor), wrapping around the end (the oldest keys are overwritten), and advance ``ptr`` by n
    modulo K. Requires ``n <= K``."""
    n, K = keys.shape[0], queue.shape[0]
    if n > K:
        raise ValueError(f"cannot enqueue {n} keys into a queue of {K}")
    if keys.shape[1:] != queue.shape[1:]:
        raise ValueError(f"keys {tuple(keys.shape)} do not fit queue {tuple(queue.shape)}")
    start = int(ptr.reshape(-1)[0])
    rows = (start + torch.arange(n, device=queue.device)) % K
    queue[rows] = keys.detach().to(queue.dtype)
    ptr.fill_((start + n) % K)


def moco_logits(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
    """``q``, ``k`` ``(N, D)`` L2-normalised queries and positive keys, ``queue`` ``(K, D)`` negatives
    -> logits ``(N, 1 + K)``: ``[q.k, q.queue^T] / T`` (the positive in column 0)."""
    l_pos = (q * k).sum(dim=1, keepdim=True)
    l_neg = q @ queue.t()
    return torch.cat([l_pos, l_neg], dim=1) / temperature


def moco_loss(logits: torch.Tensor) -> torch.Tensor:
    """InfoNCE of :func:`moco_logits`: cross-entropy with the positive (column 0) as the label."""
    return F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device))
