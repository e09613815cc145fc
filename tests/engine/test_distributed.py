"""engine.distributed: one process without torchrun; the ranks agree on a non-finite loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.multiprocessing as mp

from pri3d.engine import distributed as D
from pri3d.errors import ConfigError


def test_single_process_without_torchrun(monkeypatch):
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    info = D.init_distributed("cpu")
    assert (info.rank, info.world_size, info.distributed, info.is_main) == (0, 1, False, True)
    assert info.device == torch.device("cpu")
    assert D.all_ranks_finite(torch.tensor(1.0)) and not D.all_ranks_finite(torch.tensor(math.nan))
    assert D.rank0_flag(True, info.device) and not D.rank0_flag(False, info.device)
    assert D.mean_over_ranks({"a": 1.5}, info.device) == {"a": 1.5}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_cuda_request_without_cuda_is_a_config_error():
    with pytest.raises(ConfigError, match="CUDA"):
        D.init_distributed("cuda")


def _worker(rank: int, world: int, init_file: str, out: dict) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        loss = torch.tensor(math.inf if rank == 1 else 0.5)  # only rank 1 sees a bad loss
        out[rank] = (
            D.all_ranks_finite(loss),
            D.rank0_flag(rank == 0, torch.device("cpu")),  # rank 0's answer on every rank
            D.mean_over_ranks({"x": float(rank)}, torch.device("cpu"))["x"],
        )
    finally:
        torch.distributed.destroy_process_group()


def test_two_ranks_agree_on_a_non_finite_loss_seen_by_one(tmp_path):
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_worker, args=(2, str(tmp_path / "init"), out), nprocs=2, join=True)
        results = dict(out)
    assert results == {0: (False, True, 0.5), 1: (False, True, 0.5)}
