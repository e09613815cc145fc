"""The one place that imports spconv, and the one place that patches it for CPU-only machines.

spconv 2.3.8's backward pass calls ``torch.cuda.current_stream()`` unconditionally and crashes when
CUDA is unavailable. Its ops module looks the stream up through ``spconv.pytorch.ops.get_current_stream``;
returning 0 (the default stream handle) when CUDA is absent is all the CPU path needs.

spconv's CPU scatter-add (``SpconvOps.scatter_add_cpu``, the last step of every CPU convolution and of
its backward pass) races when torch runs more than one thread: measured 2026-12-07 on this project's
2-core machine, a 3x3x3 submanifold convolution of 277 voxels at 2 threads gave 1-2 wrong output rows
(errors of 0.1-0.36) in 3-4 % of calls, so results depended on thread timing; at 1 thread, or with
the scatter done by torch, 0 of 150 (``benchmarks/bench_spconv_cpu.py`` measures both). spconv's CPU
convolutions always take its Python path (gather, ``torch.mm``, scatter-add per kernel offset: the C++
GEMM module is absent from the CPU wheel), so on CPU-only machines the patch replaces the scatter-add:
with more than one torch thread it is ``Tensor.index_add_`` (exact; its per-call overhead costs about
1.2x the time of the racing kernel for the sparse UNet's forward+backward, e.g. 0.93 s against 0.76 s
on 8000 voxels at 2 threads, idle machine, same run, where spconv's own kernel was wrong in 1 of 60
convolutions, and in 25 of 60 in another run); with one thread spconv's own kernel, which is exact
there and faster. With the patch, spconv's convolutions match a dense ``conv3d`` to 2e-7 on every call
(tests/models/test_sparse_unet.py).

Import spconv only through :func:`import_spconv`, and only from the geometric-prior branch: view-only
training and all 2D work must never import it (it is slow to import and optional in spirit).
"""

from __future__ import annotations

import torch

_PATCHED = False
_SPCONV_SCATTER_ADD = None  # spconv's own CPU scatter-add, exact at one thread


def import_spconv():
    """Return ``spconv.pytorch``, patched for CPU when CUDA is unavailable."""
    global _PATCHED, _SPCONV_SCATTER_ADD
    try:
        import spconv.pytorch as spconv
        from spconv.pytorch import ops
    except ImportError as e:  # pragma: no cover - spconv is a hard dependency of the package
        raise ImportError(
            "the geometric-prior branch needs spconv (pip install spconv==2.3.8 for CPU, or the "
            "spconv-cuXXX wheel matching your CUDA)"
        ) from e
    if not _PATCHED and not torch.cuda.is_available():
        ops.get_current_stream = lambda: 0
        _SPCONV_SCATTER_ADD = ops.SpconvOps.scatter_add_cpu
        ops.SpconvOps.scatter_add_cpu = staticmethod(_scatter_add_cpu)
        _PATCHED = True
    return spconv


def _scatter_add_cpu(out, inp, indices) -> None:
    """``out[indices[i]] += inp[i]`` for ``i < len(indices)`` on spconv's CPU tensors (tensorview views,
    shared memory): the race-free replacement of ``SpconvOps.scatter_add_cpu`` (spconv's own at one thread)."""
    if torch.get_num_threads() == 1:
        return _SPCONV_SCATTER_ADD(out, inp, indices)
    idx = torch.from_numpy(indices.numpy_view()).long()
    dst = torch.from_numpy(out.numpy_view())
    dst.index_add_(0, idx, torch.from_numpy(inp.numpy_view())[: len(idx)])
