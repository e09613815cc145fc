"""torchrun helpers that degrade to a single process.

Launch multi-process training with ``torchrun --nproc_per_node=N -m pri3d.cli pretrain ...`` (or the
``pri3d`` script path). torchrun sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; without them
everything runs in one process. NCCL is used on GPU, gloo on CPU. No addresses are hard-coded:
torchrun's rendezvous provides them.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from pri3d.errors import ConfigError

__all__ = [
    "DEVICES",
    "check_device",
    "DistInfo",
    "init_distributed",
    "is_main",
    "barrier",
    "all_reduce_mean",
    "mean_over_ranks",
    "all_ranks_finite",
    "rank0_flag",
    "cleanup",
    "session",
    "wrap_ddp",
]


DEVICES = "auto, cpu, cuda or cuda:N"


def check_device(device, where: str = "device") -> str:
    """``device`` if it is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; :class:`ConfigError` otherwise
    (whether CUDA is there is checked when the device is opened, by :func:`init_distributed`)."""
    d = str(device)
    if d in ("auto", "cpu", "cuda") or (d.startswith("cuda:") and d[5:].isdigit()):
        return d
    raise ConfigError(f"{where} must be {DEVICES}, got {device!r}")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistInfo:
    """Initialise the process group when launched by torchrun; pick the device.

    ``device``: "auto" (cuda:LOCAL_RANK when CUDA is available, else cpu), "cpu", "cuda" (cuda:LOCAL_RANK)
    or "cuda:N" (that GPU, in a single process).
    """
    check_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        raise ConfigError(f"device={device} requested but CUDA is not available on this machine")
    index = int(device[5:]) if device.startswith("cuda:") and world == 1 else local
    if use_cuda and index >= torch.cuda.device_count():
        raise ConfigError(f"device={device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    dev = torch.device(f"cuda:{index}") if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(rank=rank, local_rank=local, world_size=world, device=dev)


def is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over ranks (identity in a single process)."""
    if not dist.is_initialized():
        return t
    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t / dist.get_world_size()


def mean_over_ranks(values: dict[str, float], device) -> dict[str, float]:
    """Per-key mean of a dict of floats over ranks (the same dict in a single process)."""
    if not dist.is_initialized() or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return dict(zip(keys, t.tolist()))


def all_ranks_finite(t: torch.Tensor) -> bool:
    """True when ``t`` is finite on every rank. Every rank gets the same answer, so all of them stop
    together: a rank that raised on its own would leave the others waiting in their next collective."""
    bad = torch.tensor(0.0 if bool(torch.isfinite(t.detach()).all()) else 1.0, device=t.device)
    if dist.is_initialized():
        dist.all_reduce(bad, op=dist.ReduceOp.MAX)
    return bad.item() == 0


def rank0_flag(flag: bool, device) -> bool:
    """Rank 0's ``flag`` on every rank (e.g. "the time budget is spent"), so all ranks stop at the same step."""
    t = torch.tensor(float(flag), device=device)
    if dist.is_initialized():
        dist.broadcast(t, 0)
    return t.item() > 0


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def session(device: str = "auto", threads: int = 0):
    """One training run's process: :func:`init_distributed` on the way in (``threads`` > 0: torch's
    intra-op threads for the run), and on the way out, errors included, :func:`cleanup` (the process
    group is destroyed) and the thread count restored (callers such as the experiment runner go on in
    this process). Yields the :class:`DistInfo`."""
    before = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        yield init_distributed(device)
    finally:
        cleanup()
        torch.set_num_threads(before)


def wrap_ddp(module: torch.nn.Module, info: DistInfo, *, find_unused_parameters: bool = False) -> torch.nn.Module:
    """``module`` under ``DistributedDataParallel`` when ``info`` is distributed (on its GPU), else itself."""
    if not info.distributed:
        return module
    ids = [info.device.index] if info.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(
        module, device_ids=ids, find_unused_parameters=find_unused_parameters
    )
