"""Depth-prediction loss of the optional depth head (on in the official scripts, off in the paper).

Same three terms as the official code, averaged: a robust depth term ``log(|d - t| + 0.5)``, the same
on Sobel x/y gradients, and ``1 - cos`` between the surface normals ``(-dx, -dy, 1)`` of prediction
and target. Unlike the official code, gradient and normal terms only use pixels whose whole 3x3
neighbourhood has valid depth and lies inside the image (the target's Sobel response at a hole's
border, or at the zero-padded image border, is meaningless).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DepthLoss"]


class DepthLoss(nn.Module):
    def __init__(self):
        super().__init__()
        kx = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
        self.register_buffer("sobel", torch.stack([kx, kx.t()])[:, None], persistent=False)  # (2, 1, 3, 3)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Args: ``pred`` ``(B, 1, h, w)`` or ``(B, h, w)`` metres; ``target`` ``(B, h, w)`` metres,
        0 = invalid. Returns a float32 scalar (a graph-connected 0 when no pixel is valid)."""
        if pred.dim() == 4:
            pred = pred[:, 0]
        if pred.shape != target.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
        pred = pred.float()[:, None]
        target = target.float()[:, None]
        valid = (target > 0) & torch.isfinite(target)
        if not bool(valid.any()):
            return pred.sum() * 0.0
        target = torch.where(valid, target, torch.zeros_like(target))
        loss_depth = torch.log((pred - target).abs()[valid] + 0.5).mean()
        # valid interior: the 3x3 neighbourhood is all valid and inside the image (min-pool of the mask,
        # zero-padded: the Sobel filters zero-pad too, so their response at the border is meaningless)
        inner = (-F.max_pool2d(-F.pad(valid.float(), (1, 1, 1, 1)), 3, stride=1)) > 0.5
        gp = F.conv2d(pred, self.sobel.to(pred.dtype), padding=1)
        gt = F.conv2d(target, self.sobel.to(pred.dtype), padding=1)
        if not bool(inner.any()):
            return loss_depth
        m = inner[:, 0]
        loss_grad = (
            torch.log((gp[:, 0] - gt[:, 0]).abs()[m] + 0.5).mean()
            + torch.log((gp[:, 1] - gt[:, 1]).abs()[m] + 0.5).mean()
        )
        ones = torch.ones_like(pred)
        n_pred = torch.cat([-gp, ones], 1)
        n_tgt = torch.cat([-gt, ones], 1)
        loss_normal = (1 - F.cosine_similarity(n_pred, n_tgt, dim=1, eps=1e-8))[m].mean()
        return (loss_depth + loss_grad + loss_normal) / 3
