"""engine.sampling: the two resumable samplers and the loader; bad sizes are pri3d errors, not ValueErrors."""

import pytest
import torch

from pri3d.engine.sampling import EpochSampler, StepBatchSampler, make_loader
from pri3d.errors import ConfigError, DataError


def test_the_samplers_refuse_bad_sizes_with_pri3d_errors():
    """Issue 23: a batch that does not split into ranks x accumulation is a one-line ConfigError, and an
    empty training set a DataError, in both samplers (EpochSampler raised a plain ValueError)."""
    with pytest.raises(ConfigError, match=r"^train.batch_size 6 does not split into 4 process\(es\) .* of 4$"):
        StepBatchSampler(10, batch_size=6, world_size=4, rank=1)
    with pytest.raises(DataError, match="no training pairs"):
        StepBatchSampler(0, batch_size=4)
    with pytest.raises(DataError, match="no training images"):
        EpochSampler(0, 2, seed=0)


def test_the_pretrain_module_re_exports_the_engines_step_sampler():
    from pri3d.pretrain import data

    assert data.StepBatchSampler is StepBatchSampler


class _ByPair:
    """A dataset indexed as the step sampler indexes: ``(item, sample seed)``."""

    def __getitem__(self, key):
        return key[0]


def test_make_loader_follows_a_batch_sampler_or_a_sampler():
    ds = list(range(10))
    sampler = StepBatchSampler(10, batch_size=4, steps=3)
    steps = list(make_loader(_ByPair(), list, device=torch.device("cpu"), batch_sampler=sampler))
    assert steps == [[i for i, _ in sampler.batch(s, 0)] for s in range(3)]
    sampler = EpochSampler(10, 3, seed=1)
    sampler.set_epoch(2, start_batch=1)
    batches = list(make_loader(ds, list, device=torch.device("cpu"), batch_size=3, sampler=sampler, seed=5))
    assert [x for b in batches for x in b] == sampler.indices() and len(batches) == 2
    assert list(make_loader(ds, list, device=torch.device("cpu"), batch_size=4)) == [ds[:4], ds[4:8], ds[8:]]


def test_epoch_sampler_is_deterministic_sharded_and_resumable():
    a = EpochSampler(10, 2, seed=1)
    a.set_epoch(3)
    full = a.indices()
    assert len(full) == 10 and sorted(full) == list(range(10))
    a.set_epoch(3, start_batch=2)
    assert a.indices() == full[4:]
    a.set_epoch(4)
    assert a.indices() != full
    r0, r1 = EpochSampler(9, 2, seed=1, rank=0, world=2), EpochSampler(9, 2, seed=1, rank=1, world=2)
    assert r0.batches_per_epoch == 2 and not set(r0.indices()) & set(r1.indices())
