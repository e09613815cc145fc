"""Running experiment cells in parallel: spawned worker processes, one thread each, results in call order."""

from __future__ import annotations


def _job_init() -> None:
    import torch

    torch.set_num_threads(1)  # the processes are the parallelism (shared CPUs: see train.threads)


def _job(fn, args: tuple, kwargs: dict):
    return fn(*args, log=lambda msg: print(msg, flush=True), progress=False, **kwargs)


def run_cells(jobs: int, fn, calls: list[tuple[tuple, dict]], log) -> list:
    """``[fn(*args, **kwargs) for args, kwargs in calls]``, in ``jobs`` spawned processes when ``jobs > 1``
    (results in call order). Every cell is cached on disk, so a failure loses only the cells in flight."""
    if jobs <= 1 or len(calls) <= 1:
        return [fn(*a, log=log, **kw) for a, kw in calls]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(
        max_workers=min(jobs, len(calls)), mp_context=mp.get_context("spawn"), initializer=_job_init
    ) as ex:
        futures = [ex.submit(_job, fn, a, kw) for a, kw in calls]
        return [f.result() for f in futures]
