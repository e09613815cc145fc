"""engine.seed: derived seeds are deterministic and distinct; worker init is the same for both phases."""

from __future__ import annotations

import random

import numpy as np
import torch

from pri3d.engine.seed import derive_seed, seed_everything, worker_init_fn


def test_derived_seeds_repeat_and_differ_by_key():
    assert derive_seed(0, 1, 2) == derive_seed(0, 1, 2)
    seeds = {derive_seed(0, r, e) for r in range(4) for e in range(4)}
    assert len(seeds) == 16 and all(0 <= s < 2**31 for s in seeds)
    assert derive_seed(1, 0) != derive_seed(0, 1)


def test_seed_everything_seeds_all_three_generators():
    seed_everything(5)
    a = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    seed_everything(5)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == a


def test_worker_init_uses_one_thread_and_torchs_worker_seed():
    threads = torch.get_num_threads()
    try:
        torch.manual_seed(1234)  # in a DataLoader worker, torch.initial_seed() is the worker's seed
        worker_init_fn(0)
        assert torch.get_num_threads() == 1
        a = (random.random(), float(np.random.rand()))
        torch.manual_seed(1234)
        worker_init_fn(0)
        assert (random.random(), float(np.random.rand())) == a
    finally:
        torch.set_num_threads(threads)
