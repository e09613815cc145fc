"""The one frozen-feature extractor of every probe, and sampling of feature maps at image pixels.

**What a pixel's feature is.** The colour image is resized to the probe resolution ``(H, W)``
(``cv2.INTER_AREA`` when shrinking, bilinear when enlarging), scaled to [0, 1] and ImageNet-normalised,
as in pre-training and fine-tuning. The backbone (a :class:`~pri3d.models.resnet_unet.ResNetUNet`) runs
in eval mode (BatchNorm running statistics, no dropout) under ``torch.no_grad()``; its weights are never
changed. Five blocks are taken:

============  ========  =====================================================
block         stride    channels (ResNet-18/34 | ResNet-50/101)
============  ========  =====================================================
``decoder``   2         the UNet's output, ``feature_dim`` (32 | 128 officially)
``layer1``    4         64 | 256
``layer2``    8         128 | 512
``layer3``    16        256 | 1024
``layer4``    32        512 | 2048
============  ========  =====================================================

Each block is **L2-normalised per pixel over its channels** at its own resolution (so every block has
the same weight whatever its width and activation scale), then bilinearly upsampled
(``align_corners=False``) to the decoder's output grid, ``H/2 x W/2``, and the five are concatenated:
992 channels for ResNet-18/34 (feature_dim 32), 3968 for ResNet-50/101 (feature_dim 128). The head
(:mod:`pri3d.probe.head`) then standardises every channel with the mean and standard deviation of the
fit set (BatchNorm-style, as DINOv2's linear heads), so the L2 step only balances the blocks.

**From the feature grid to image pixels.** :func:`sample_at` reads a ``(C, h, w)`` map at continuous
pixel coordinates of an image grid that spans the same field of view (bilinear, pixel-centre
convention, the same as ``F.interpolate(align_corners=False)``). A linear head commutes with bilinear
interpolation (the weights of an interpolation sum to one), so "features upsampled to the label
resolution, then the head" and "head on the feature grid, then the predictions upsampled" give the same
numbers; the probes do the second, which is cheaper.

Everything is deterministic: no randomness here, fixed-order CPU kernels.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pri3d.models.imagenet import normalize as imagenet_normalize

__all__ = ["LAYERS", "FeatureExtractor", "sample_at", "upsample_to", "depth_grid_in_color"]

LAYERS: tuple[str, ...] = ("decoder", "layer1", "layer2", "layer3", "layer4")


class FeatureExtractor:
    """Frozen per-pixel features of a ResNetUNet (see the module docstring).

    Args:
        model: a :class:`~pri3d.models.resnet_unet.ResNetUNet` (it is put in eval mode; its weights are
            not touched).
        resolution: ``(H, W)`` the colour image is resized to, both multiples of 4.
        layers: a subset of :data:`LAYERS`, in any order (concatenated in that order).
        device: where the backbone runs; feature maps are returned on the CPU.

    ``extractor(color)`` with ``color`` ``(Hc, Wc, 3)`` uint8 RGB returns ``(C, H/2, W/2)`` float32.
    """

    def __init__(self, model: nn.Module, resolution: Sequence[int], layers: Sequence[str] = LAYERS, device="cpu"):
        bad = [name for name in layers if name not in LAYERS]
        if bad or not layers:
            raise ValueError(f"layers must be a non-empty subset of {LAYERS}, got {list(layers)}")
        H, W = (int(v) for v in resolution)
        if H % 4 or W % 4 or H < 32 or W < 32:
            raise ValueError(f"resolution {H}x{W}: both sides must be multiples of 4 and at least 32")
        self.model = model.to(device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.resolution = (H, W)
        self.layers = tuple(layers)
        self.device = torch.device(device)
        widths = {"decoder": int(model.feature_dim)}
        widths.update(zip(("layer1", "layer2", "layer3", "layer4"), model.encoder.out_channels))
        self.channels = sum(widths[name] for name in self.layers)
        self.block_channels = {name: widths[name] for name in self.layers}

    def describe(self) -> str:
        H, W = self.resolution
        return (
            f"{'+'.join(self.layers)} ({self.channels} channels), each L2-normalised per pixel, bilinearly "
            f"upsampled to {H // 2}x{W // 2} (input {H}x{W})"
        )

    def preprocess(self, color: np.ndarray) -> torch.Tensor:
        """``(Hc, Wc, 3)`` uint8 RGB -> ``(1, 3, H, W)`` ImageNet-normalised float32."""
        if color is None or color.ndim != 3 or color.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) RGB image, got {None if color is None else color.shape}")
        H, W = self.resolution
        if color.shape[:2] != (H, W):
            interp = cv2.INTER_AREA if color.shape[0] > H else cv2.INTER_LINEAR
            color = cv2.resize(color, (W, H), interpolation=interp)
        x = torch.from_numpy(np.ascontiguousarray(color)).permute(2, 0, 1).float().div_(255.0)
        return imagenet_normalize(x)[None]

    @torch.no_grad()
    def __call__(self, color: np.ndarray) -> torch.Tensor:
        x = self.preprocess(color).to(self.device)
        c2, c3, c4, c5 = self.model.encoder(x)
        blocks = {"layer1": c2, "layer2": c3, "layer3": c4, "layer4": c5}
        if "decoder" in self.layers:
            blocks["decoder"] = self.model.decoder([c2, c3, c4, c5])
        size = (c2.shape[-2] * 2, c2.shape[-1] * 2)  # the decoder's output grid, H/2 x W/2
        out = []
        for name in self.layers:
            f = F.normalize(blocks[name].float(), dim=1)
            if f.shape[-2:] != size:
                f = F.interpolate(f, size=size, mode="bilinear", align_corners=False)
            out.append(f)
        return torch.cat(out, dim=1)[0].cpu()


def sample_at(fmap: torch.Tensor, uv: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear values of a map at pixels of an image grid of the same field of view.

    Args:
        fmap: ``(C, h, w)`` map covering the whole image.
        uv: ``(N, 2)`` continuous pixel coordinates (column, row) in an image of ``size`` ``(H, W)``;
            pixel centres are integers (the pri3d convention). Points outside are clamped to the border.
        size: ``(H, W)`` of the image ``uv`` addresses.

    Returns:
        ``(N, C)`` in ``fmap``'s dtype.
    """
    H, W = (int(v) for v in size)
    uv = torch.as_tensor(uv, dtype=fmap.dtype)
    grid = torch.stack([(uv[:, 0] + 0.5) / W * 2 - 1, (uv[:, 1] + 0.5) / H * 2 - 1], dim=-1)
    out = F.grid_sample(fmap[None], grid[None, None], mode="bilinear", padding_mode="border", align_corners=False)
    return out[0, :, 0].t()


def upsample_to(fmap: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``(C, h, w)`` -> ``(C, H, W)`` bilinear (``align_corners=False``: the grid of :func:`sample_at`)."""
    size = tuple(int(v) for v in size)
    if tuple(fmap.shape[-2:]) == size:
        return fmap
    return F.interpolate(fmap[None], size=size, mode="bilinear", align_corners=False)[0]


def depth_grid_in_color(depth_shape, K_depth, K_color, color_shape) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each depth pixel falls in the colour image (registered cameras: same centre and axes).

    Args:
        depth_shape: ``(Hd, Wd)``; K_depth, K_color: ``(3, 3)``; color_shape: ``(Hc, Wc)``.

    Returns:
        ``uv``: ``(Hd, Wd, 2)`` float64 colour-pixel coordinates; ``inside``: ``(Hd, Wd)`` bool, the depth
        pixels whose colour coordinate lies in the colour image.
    """
    from pri3d.geometry.camera import depth_to_color_pixels, pixel_grid

    Hd, Wd = depth_shape
    Hc, Wc = color_shape
    uv_d = pixel_grid(Hd, Wd, dtype=torch.float64).reshape(1, -1, 2)
    Kd = torch.as_tensor(np.asarray(K_depth), dtype=torch.float64)[None]
    Kc = torch.as_tensor(np.asarray(K_color), dtype=torch.float64)[None]
    uv = depth_to_color_pixels(uv_d, Kd, Kc)[0].reshape(Hd, Wd, 2)
    inside = (uv[..., 0] >= -0.5) & (uv[..., 0] <= Wc - 0.5) & (uv[..., 1] >= -0.5) & (uv[..., 1] <= Hc - 0.5)
    return uv, inside
