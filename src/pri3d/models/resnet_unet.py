"""The 2D backbone: a ResNet encoder (torchvision 18/34/50/101) with the official Pri3D UNet decoder.

Decoder design (as in the authors' ``resunet.py``): four up-projection blocks. Each block upsamples
bilinearly, then sums a 5x5-conv -> 3x3-conv branch with a 5x5-conv shortcut. The first three blocks
upsample to layer3, layer2 and layer1 resolution and add those skip features; the fourth doubles the
resolution once more, so the output is at **half the input resolution**. A final 1x1 conv gives
``feature_dim`` channels.

The encoder's parameter names are exactly torchvision's ResNet names (``conv1``, ``bn1``,
``layer1`` ... ``layer4``; no ``fc``), so ``model.encoder.state_dict()`` loads into
``torchvision.models.resnetXX()`` with only ``fc.*`` missing, and the encoder can feed an FPN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

__all__ = ["ResNetEncoder", "UNetDecoder", "ResNetUNet", "ARCHS", "OFFICIAL_FEATURE_DIM", "build_resnet"]

ARCHS = {"resnet18": 512, "resnet34": 512, "resnet50": 2048, "resnet101": 2048}

# Official Pri3D 2D feature widths (Res18UNet: 32, Res50UNet: 128 = the decoder's last width).
OFFICIAL_FEATURE_DIM = {"resnet18": 32, "resnet34": 32, "resnet50": 128, "resnet101": 128}


def build_resnet(arch: str) -> torchvision.models.ResNet:
    """A randomly initialised torchvision ResNet (weights are loaded separately, see ``init``)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
    return getattr(torchvision.models, arch)(weights=None)


class ResNetEncoder(nn.Module):
    """torchvision ResNet without ``avgpool``/``fc``. Returns the four stage outputs
    ``[c2, c3, c4, c5]`` at strides 4, 8, 16, 32."""

    def __init__(self, arch: str = "resnet18"):
        super().__init__()
        r = build_resnet(arch)
        self.arch = arch
        self.conv1, self.bn1, self.relu, self.maxpool = r.conv1, r.bn1, r.relu, r.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = r.layer1, r.layer2, r.layer3, r.layer4
        c5 = ARCHS[arch]
        self.out_channels = [c5 // 8, c5 // 4, c5 // 2, c5]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return [c2, c3, c4, c5]


class UpProjection(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 5, padding=2, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv1_2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1_2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cin, cout, 5, padding=2, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, size) -> torch.Tensor:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        branch1 = self.bn1_2(self.conv1_2(F.relu(self.bn1(self.conv1(x)))))
        branch2 = self.bn2(self.conv2(x))
        return F.relu(branch1 + branch2)


class UNetDecoder(nn.Module):
    """Up-projections with skips from layer3, layer2, layer1; output at stride 2."""

    def __init__(self, in_channels: list[int], feature_dim: int):
        super().__init__()
        c = in_channels[-1]
        self.up1 = UpProjection(c, c // 2)
        self.up2 = UpProjection(c // 2, c // 4)
        self.up3 = UpProjection(c // 4, c // 8)
        self.up4 = UpProjection(c // 8, c // 16)
        self.out_channels_hidden = c // 16
        self.conv0 = nn.Conv2d(c // 16, feature_dim, 1)

    def forward(self, feats: list[torch.Tensor], return_hidden: bool = False):
        c2, c3, c4, c5 = feats
        x = self.up1(c5, c4.shape[-2:]) + c4
        x = self.up2(x, c3.shape[-2:]) + c3
        x = self.up3(x, c2.shape[-2:]) + c2
        hidden = self.up4(x, (c2.shape[-2] * 2, c2.shape[-1] * 2))
        out = self.conv0(hidden)
        return (out, hidden) if return_hidden else out


class ResNetUNet(nn.Module):
    """ResNet encoder + UNet decoder. ``forward(x: (B, 3, H, W)) -> (B, feature_dim, H/2, W/2)``.

    ``feature_dim`` is the width of the last 1x1 conv. The official pre-training widths are 32
    (ResNet-18/34) and 128 (ResNet-50/101), equal to the last up-projection's width
    (:data:`OFFICIAL_FEATURE_DIM`); 64 here is only a default for tests and tools
    (the official 64 is the projection heads' width). For semantic segmentation the last conv is the
    classifier (``pri3d.downstream.semseg.SemSegUNet``).
    """

    def __init__(self, arch: str = "resnet18", feature_dim: int = 64):
        super().__init__()
        self.arch = arch
        self.feature_dim = feature_dim
        self.encoder = ResNetEncoder(arch)
        self.decoder = UNetDecoder(self.encoder.out_channels, feature_dim)

    def forward(self, x: torch.Tensor, return_hidden: bool = False):
        return self.decoder(self.encoder(x), return_hidden=return_hidden)
