"""The one place that imports spconv, and the one place that patches it for CPU-only machines.

spconv 2.3.8's backward pass calls ``torch.cuda.current_stream()`` unconditionally and crashes when
CUDA is unavailable. Its ops module looks the stream up through ``spconv.pytorch.ops.get_current_stream``;
returning 0 (the default stream handle) when CUDA is absent is all the CPU path needs. With the patch,
spconv's convolutions match a dense ``conv3d`` to 2e-7 (tests/models/test_sparse_unet.py).

Import spconv only through :func:`import_spconv`, and only from the geometric-prior branch: view-only
training and all 2D work must never import it (it is slow to import and optional in spirit).
"""

from __future__ import annotations

import torch

_PATCHED = False


def import_spconv():
    """Return ``spconv.pytorch``, patched for CPU when CUDA is unavailable."""
    global _PATCHED
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
        _PATCHED = True
    return spconv
