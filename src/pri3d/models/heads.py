"""Small heads of the pre-training method (as in the official code).

* :class:`ProjectionHead`: a linear map of gathered features to the contrastive space
  (official: ``w2d = Linear(C_2d, 64)``, ``w3d = Linear(96, 64)``), used by the geometric-prior loss.
* :class:`DepthHead`: a 1x1 conv predicting depth (metres) from the 2D feature map; optional.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ProjectionHead", "DepthHead"]


class ProjectionHead(nn.Module):
    """``(N, in_dim) -> (N, out_dim)`` linear projection."""

    def __init__(self, in_dim: int, out_dim: int = 64):
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class DepthHead(nn.Module):
    """``(B, C, h, w) -> (B, 1, h, w)`` depth in metres."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.conv = nn.Conv2d(in_dim, 1, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)
