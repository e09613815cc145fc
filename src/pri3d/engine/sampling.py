"""Resumable data order for both loops, and the one way they build a ``DataLoader``.

* :class:`StepBatchSampler` (pre-training): the batches are a pure function of the optimizer step, so a
  run resumed at step ``s`` sees exactly the batches an uninterrupted run would, on any number of
  processes and workers.
* :class:`EpochSampler` (fine-tuning): a per-epoch shuffle, sharded over ranks, resumable mid-epoch.
* :func:`make_loader`: a ``DataLoader`` over either (or over plain index order, for evaluation).
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader, Sampler

from pri3d.engine.seed import derive_seed, worker_init_fn
from pri3d.errors import ConfigError, DataError

__all__ = ["StepBatchSampler", "EpochSampler", "make_loader"]


class StepBatchSampler:
    """Batch sampler whose batches are a pure function of the optimizer step.

    The global sample index of micro-batch ``micro`` of step ``s``, rank ``r``, slot ``j`` is
    ``g = s * batch_size + (micro * world + r) * micro_batch + j``; it picks item ``perm_e[g % n]``
    with ``e = g // n`` and ``perm_e`` a permutation seeded by ``(seed, e)`` (epochs without
    repetition), and seeds the sample's randomness with ``(seed, g)``. Yields lists of
    ``(item_index, sample_seed)`` for steps ``start_step .. steps - 1``.
    """

    def __init__(
        self,
        num_items: int,
        *,
        batch_size: int,
        world_size: int = 1,
        rank: int = 0,
        accumulate: int = 1,
        seed: int = 0,
        start_step: int = 0,
        steps: int = 1,
    ):
        if num_items < 1:
            raise DataError("no training pairs to sample from")
        if batch_size % (world_size * accumulate):
            raise ConfigError(
                f"train.batch_size {batch_size} does not split into {world_size} process(es) x train.accumulate "
                f"{accumulate} equal micro-batches: use a multiple of {world_size * accumulate}"
            )
        self.n = num_items
        self.batch_size = batch_size
        self.world, self.rank, self.accumulate = world_size, rank, accumulate
        self.micro = batch_size // (world_size * accumulate)
        self.seed = seed
        self.start_step, self.steps = start_step, steps
        self._perm: tuple[int, torch.Tensor] | None = None

    def _pair(self, g: int) -> int:
        e, i = divmod(g, self.n)
        if self._perm is None or self._perm[0] != e:
            gen = torch.Generator().manual_seed(derive_seed(self.seed, 1, e))
            self._perm = (e, torch.randperm(self.n, generator=gen))
        return int(self._perm[1][i])

    def batch(self, step: int, micro: int) -> list[tuple[int, int]]:
        base = step * self.batch_size + (micro * self.world + self.rank) * self.micro
        return [(self._pair(g), derive_seed(self.seed, 2, g)) for g in range(base, base + self.micro)]

    def __iter__(self):
        for s in range(self.start_step, self.steps):
            for m in range(self.accumulate):
                yield self.batch(s, m)

    def __len__(self) -> int:
        return max(0, self.steps - self.start_step) * self.accumulate


class EpochSampler(Sampler):
    """Per-epoch deterministic shuffle, sharded over ranks, resumable mid-epoch.

    Epoch ``e`` uses the permutation from ``derive_seed(seed, e)``; rank ``r`` of ``world`` takes every
    ``world``-th index of it (padded so all ranks get the same count) and keeps ``batches_per_epoch *
    batch_size`` of them; :meth:`set_epoch` picks the epoch and the first batch to yield."""

    def __init__(self, n: int, batch_size: int, *, seed: int, rank: int = 0, world: int = 1, shuffle: bool = True):
        if n < 1:
            raise DataError("no training images to sample from (an empty training set)")
        self.n, self.bs, self.seed, self.rank, self.world, self.shuffle = n, batch_size, seed, rank, world, shuffle
        self.per_rank = math.ceil(n / world)
        self.batches_per_epoch = max(1, self.per_rank // batch_size)
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    def indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch))
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        order = (order * math.ceil(self.per_rank * self.world / self.n))[: self.per_rank * self.world]
        mine = order[self.rank :: self.world][: self.batches_per_epoch * self.bs]
        return mine[self.start_batch * self.bs :]

    def __iter__(self):
        return iter(self.indices())

    def __len__(self) -> int:
        return len(self.indices())


def make_loader(
    dataset,
    collate,
    *,
    device: torch.device,
    workers: int = 0,
    batch_size: int | None = 1,
    sampler=None,
    batch_sampler=None,
    prefetch: int | None = None,
    seed: int | None = None,
) -> DataLoader:
    """A ``DataLoader`` in item order (``sampler``/``batch_sampler`` None), or in a sampler's order.

    Workers start with :func:`~pri3d.engine.seed.worker_init_fn`. ``seed``: the loader's own generator
    (its workers' seeds); None draws them from torch's global generator, as a plain ``DataLoader`` does.
    Memory is pinned when ``device`` is a GPU."""
    return DataLoader(
        dataset,
        batch_size=1 if batch_sampler is not None else batch_size,  # 1: what DataLoader wants beside a batch_sampler
        sampler=sampler,
        batch_sampler=batch_sampler,
        shuffle=False,
        collate_fn=collate,
        num_workers=workers,
        worker_init_fn=worker_init_fn if workers else None,
        generator=None if seed is None else torch.Generator().manual_seed(seed),
        pin_memory=device.type == "cuda",
        prefetch_factor=prefetch if workers else None,
        persistent_workers=False,
    )
