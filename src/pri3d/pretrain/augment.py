"""Colour augmentations of the official pre-training (MoCo v2 style), driven by an explicit generator.

Per image: ColorJitter(brightness 0.4, contrast 0.4, saturation 0.4, hue 0.1) with p = 0.8 (the four
adjustments in random order, as torchvision does), grayscale with p = 0.2, Gaussian blur with p = 0.5
(sigma uniform in [0.1, 2.0] px for a 224 px image, scaled with the image's shorter side), then
ImageNet normalisation.

Geometric augmentation (off in the paper's presets): :func:`sample_crop` draws a random resized crop
(RandomResizedCrop's recipe: area fraction and log-uniform aspect ratio), applied to each view
independently before resizing, optionally followed by a horizontal flip. Neither moves a pixel off
its ray: they only change the view's intrinsics (:func:`crop_intrinsics`, :func:`flip_intrinsics`),
so correspondences computed from the augmented intrinsics stay exact.

All randomness comes from the ``torch.Generator`` passed in, so a sample seeded from (seed, step,
index) is identical in every run, worker count and process count (needed for exact resume).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from pri3d.models.imagenet import normalize

__all__ = [
    "ColorAugment",
    "to_float_image",
    "sample_crop",
    "crop_intrinsics",
    "flip_intrinsics",
]


def to_float_image(img) -> torch.Tensor:
    """``(H, W, 3)`` uint8 numpy or ``(3, H, W)`` uint8 tensor -> ``(3, H, W)`` float32 in [0, 1]."""
    if isinstance(img, np.ndarray):
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) image, got {img.shape}")
        img = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
    if img.dtype == torch.uint8:
        return img.float().div_(255.0)
    return img.float()


def _u(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


class ColorAugment:
    """Callable: ``(image, generator) -> (3, H, W)`` float32, normalised.

    ``enabled=False`` only converts and normalises (evaluation).
    """

    def __init__(
        self,
        *,
        brightness: float = 0.4,
        contrast: float = 0.4,
        saturation: float = 0.4,
        hue: float = 0.1,
        p_jitter: float = 0.8,
        p_gray: float = 0.2,
        p_blur: float = 0.5,
        blur_sigma=(0.1, 2.0),
        blur_reference_size: int = 224,
        enabled: bool = True,
    ):
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue
        self.p_jitter, self.p_gray, self.p_blur = p_jitter, p_gray, p_blur
        self.blur_sigma = tuple(blur_sigma)
        self.blur_reference_size = blur_reference_size
        self.enabled = enabled

    def __call__(self, img, generator: torch.Generator | None = None) -> torch.Tensor:
        x = to_float_image(img)
        if self.enabled:
            g = generator if generator is not None else torch.default_generator
            x = self._augment(x, g)
        return normalize(x)

    def _augment(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if float(torch.rand((), generator=g)) < self.p_jitter:
            b = _u(g, max(0.0, 1 - self.brightness), 1 + self.brightness)
            c = _u(g, max(0.0, 1 - self.contrast), 1 + self.contrast)
            s = _u(g, max(0.0, 1 - self.saturation), 1 + self.saturation)
            h = _u(g, -self.hue, self.hue)
            for op in torch.randperm(4, generator=g).tolist():
                if op == 0:
                    x = TF.adjust_brightness(x, b)
                elif op == 1:
                    x = TF.adjust_contrast(x, c)
                elif op == 2:
                    x = TF.adjust_saturation(x, s)
                elif abs(h) > 1e-6:
                    x = TF.adjust_hue(x, h)
        if float(torch.rand((), generator=g)) < self.p_gray:
            x = TF.rgb_to_grayscale(x, num_output_channels=3)
        if float(torch.rand((), generator=g)) < self.p_blur:
            scale = min(x.shape[-2:]) / self.blur_reference_size
            sigma = _u(g, *self.blur_sigma) * scale
            k = 2 * max(1, math.ceil(3 * sigma)) + 1
            if sigma > 0.05:
                x = TF.gaussian_blur(x, [k, k], [sigma, sigma])
        return x.clamp(0.0, 1.0)


def sample_crop(
    height: int, width: int, out_size, scale=(0.35, 1.0), ratio=(3 / 4, 4 / 3), g: torch.Generator | None = None
) -> tuple[int, int, int, int]:
    """A random crop ``(x0, y0, w, h)`` (integer pixels) of a ``height x width`` image.

    Its area is a fraction in ``scale`` of the image's, its aspect ratio ``w / h`` the output's
    (``out_size = (H, W)``) times a log-uniform factor in ``ratio``. Ten tries as torchvision's
    RandomResizedCrop, then the largest centred crop with the output's aspect ratio.
    """
    g = g if g is not None else torch.default_generator
    area = height * width
    base = float(out_size[1]) / float(out_size[0])
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        a = area * _u(g, scale[0], scale[1])
        ar = base * math.exp(_u(g, lo, hi))
        w = int(round(math.sqrt(a * ar)))
        h = int(round(math.sqrt(a / ar)))
        if 0 < w <= width and 0 < h <= height:
            x0 = int(torch.randint(0, width - w + 1, (), generator=g))
            y0 = int(torch.randint(0, height - h + 1, (), generator=g))
            return x0, y0, w, h
    if width / height > base:
        h, w = height, max(1, int(round(height * base)))
    else:
        w, h = width, max(1, int(round(width / base)))
    return (width - w) // 2, (height - h) // 2, w, h


def crop_intrinsics(K: torch.Tensor, x0: int, y0: int) -> torch.Tensor:
    """Intrinsics ``(3, 3)`` of the crop of an image starting at pixel ``(x0, y0)``."""
    K = K.clone()
    K[0, 2] = K[0, 2] - x0
    K[1, 2] = K[1, 2] - y0
    return K


def flip_intrinsics(K: torch.Tensor, width: int) -> torch.Tensor:
    """Intrinsics ``(3, 3)`` of an image of ``width`` pixels flipped left-right: pixel ``u`` moves to
    ``width - 1 - u``, i.e. ``fx -> -fx`` and ``cx -> width - 1 - cx`` (a negative focal length;
    back-projection and projection stay exact)."""
    K = K.clone()
    K[0, 0] = -K[0, 0]
    K[0, 2] = width - 1 - K[0, 2]
    return K
