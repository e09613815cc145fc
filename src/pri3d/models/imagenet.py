"""The input convention of every 2D backbone: RGB in [0, 1], normalised with ImageNet's statistics
(as torchvision's weights and the official Pri3D code expect). One place for both phases."""

from __future__ import annotations

import torch

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "normalize", "denormalize"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _stats(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(IMAGENET_MEAN, dtype=img.dtype, device=img.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=img.dtype, device=img.device).view(3, 1, 1)
    return mean, std


def normalize(img: torch.Tensor) -> torch.Tensor:
    """ImageNet normalisation of ``(..., 3, H, W)`` floats in [0, 1]."""
    mean, std = _stats(img)
    return (img - mean) / std


def denormalize(img: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`normalize`."""
    mean, std = _stats(img)
    return img * std + mean
