"""One seed for everything; per-rank and per-worker seeds derive from it."""

from __future__ import annotations

import random

import numpy as np
import torch

__all__ = ["seed_everything", "derive_seed", "worker_init_fn"]


def derive_seed(seed: int, *keys: int) -> int:
    """A deterministic 31-bit seed from a base seed and integer keys (rank, worker id, epoch, ...)."""
    ss = np.random.SeedSequence([int(seed), *map(int, keys)])
    return int(ss.generate_state(1)[0] & 0x7FFFFFFF)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def worker_init_fn(worker_id: int) -> None:
    """DataLoader worker init, for both phases: one intra-op thread (the workers are the parallelism),
    and numpy/random seeded from torch's per-worker seed (itself derived from the loader's generator),
    so augmentations differ across workers but repeat across runs."""
    torch.set_num_threads(1)
    s = torch.initial_seed() % (2**31)
    random.seed(s)
    np.random.seed(s)
