"""Mixed precision: one reading of ``train.amp`` for both phases."""

from __future__ import annotations

import torch

__all__ = ["AMP_MODES", "amp_dtype"]

AMP_MODES = ("auto", "bf16", "fp16", "off")


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``train.amp`` on ``device``, or None for full precision.

    ``auto``: bf16 on CUDA, off elsewhere; ``bf16``: bf16 on any device; ``fp16``: fp16 on CUDA (needs
    loss scaling: a ``GradScaler``), off elsewhere; ``off``: None.
    """
    if amp == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    if amp == "fp16":
        return torch.float16 if device.type == "cuda" else None
    return {"bf16": torch.bfloat16, "off": None}[amp]
