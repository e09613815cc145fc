"""The 3D backbone: a sparse-convolution residual UNet on spconv (MinkUNet34C / Res16UNet style).

Layout (as MinkowskiEngine's MinkUNet used by the official code, rebuilt on spconv):

* stem: submanifold conv (``stem_kernel``, 5 officially) to ``init_dim`` channels;
* 4 encoder stages: a stride-2, kernel-2 sparse conv then ``layers[i]`` residual basic blocks of
  ``planes[i]`` channels (submanifold 3x3x3 convs);
* 4 decoder stages: a transposed conv back onto the exact voxel set of the encoder level above
  (``SparseInverseConv3d`` with the down-sampling's ``indice_key``), concatenation of that level's
  features, then ``layers[4 + i]`` residual blocks of ``planes[4 + i]`` channels;
* a final linear layer to ``out_channels`` (96 officially).

The output has one row per input voxel, **in input order**. Defaults are MinkUNet34C: layers
``(2, 3, 4, 6, 2, 2, 2, 2)``, planes ``(32, 64, 128, 256, 256, 128, 96, 96)``.

spconv is imported lazily through :func:`pri3d.models.sparse_backend.import_spconv` when the network
is built, so importing this module costs nothing and 2D-only work never loads spconv.
"""

from __future__ import annotations

import torch
from torch import nn

from pri3d.models import sparse_backend

__all__ = ["SparseResUNet", "MINKUNET34C", "TINY3D"]

MINKUNET34C = {"planes": (32, 64, 128, 256, 256, 128, 96, 96), "layers": (2, 3, 4, 6, 2, 2, 2, 2), "init_dim": 32}
TINY3D = {"planes": (16, 32, 48, 64, 48, 32, 32, 32), "layers": (1, 1, 1, 1, 1, 1, 1, 1), "init_dim": 16}


class _Block(nn.Module):
    """Residual basic block: two 3x3x3 submanifold convs (shared rulebook per level)."""

    def __init__(self, sp, cin: int, cout: int, key: str):
        super().__init__()
        self.conv1 = sp.SubMConv3d(cin, cout, 3, padding=1, bias=False, indice_key=key)
        self.bn1 = nn.BatchNorm1d(cout)
        self.conv2 = sp.SubMConv3d(cout, cout, 3, padding=1, bias=False, indice_key=key)
        self.bn2 = nn.BatchNorm1d(cout)
        self.down = None
        if cin != cout:
            self.down = nn.Sequential(nn.Linear(cin, cout, bias=False), nn.BatchNorm1d(cout))

    def forward(self, x):
        identity = x.features if self.down is None else self.down(x.features)
        out = self.conv1(x)
        out = out.replace_feature(torch.relu(self.bn1(out.features)))
        out = self.conv2(out)
        return out.replace_feature(torch.relu(self.bn2(out.features) + identity))


class _Stage(nn.Module):
    def __init__(self, sp, cin: int, cout: int, n: int, key: str):
        super().__init__()
        self.blocks = nn.ModuleList([_Block(sp, cin if i == 0 else cout, cout, key) for i in range(n)])

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return x


class SparseResUNet(nn.Module):
    """Sparse residual UNet. ``forward(feats (M, Cin), coords (M, 4) int [batch, x, y, z], batch_size)
    -> (M, out_channels)`` features of the input voxels, in input order.

    Coordinates must be >= 0 (shift each chunk to its own minimum corner); the spatial extent is
    rounded up to a multiple of 16 so that every voxel survives the four down-samplings.
    """

    LEVELS = 4

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 96,
        *,
        planes=MINKUNET34C["planes"],
        layers=MINKUNET34C["layers"],
        init_dim: int = MINKUNET34C["init_dim"],
        stem_kernel: int = 5,
    ):
        super().__init__()
        planes, layers = tuple(planes), tuple(layers)
        if len(planes) != 8 or len(layers) != 8:
            raise ValueError(f"planes and layers need 8 entries (4 encoder + 4 decoder stages), got {planes}, {layers}")
        if stem_kernel % 2 != 1:
            raise ValueError(f"stem_kernel must be odd, got {stem_kernel}")
        sp = sparse_backend.import_spconv()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stem = sp.SubMConv3d(
            in_channels, init_dim, stem_kernel, padding=stem_kernel // 2, bias=False, indice_key="stem"
        )
        self.stem_bn = nn.BatchNorm1d(init_dim)
        self.downs, self.down_bns, self.enc = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        c = init_dim
        enc_channels = [init_dim]
        for i in range(self.LEVELS):
            self.downs.append(sp.SparseConv3d(c, c, 2, stride=2, bias=False, indice_key=f"down{i}"))
            self.down_bns.append(nn.BatchNorm1d(c))
            self.enc.append(_Stage(sp, c, planes[i], layers[i], key=f"sub{i + 1}"))
            c = planes[i]
            enc_channels.append(c)
        self.ups, self.up_bns, self.dec = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for j in range(self.LEVELS):
            level = self.LEVELS - 1 - j  # target resolution level: 3, 2, 1, 0
            cout = planes[4 + j]
            self.ups.append(sp.SparseInverseConv3d(c, cout, 2, bias=False, indice_key=f"down{level}"))
            self.up_bns.append(nn.BatchNorm1d(cout))
            skip = enc_channels[level]
            self.dec.append(_Stage(sp, cout + skip, cout, layers[4 + j], key=f"sub{level}"))
            c = cout
        self.final = nn.Linear(c, out_channels)

    def forward(self, feats: torch.Tensor, coords: torch.Tensor, batch_size: int) -> torch.Tensor:
        sp = sparse_backend.import_spconv()  # cached after the first call
        if coords.dim() != 2 or coords.shape[1] != 4 or feats.shape[0] != coords.shape[0]:
            raise ValueError(
                f"expected feats (M, C) and coords (M, 4), got {tuple(feats.shape)}, {tuple(coords.shape)}"
            )
        if coords.shape[0] == 0:
            return feats.new_zeros(0, self.out_channels) + self.final.bias.sum() * 0
        coords = coords.to(torch.int32)
        if bool((coords[:, 1:] < 0).any()):
            raise ValueError("voxel coordinates must be >= 0 (shift each chunk to its minimum corner)")
        m = 2**self.LEVELS
        extent = (coords[:, 1:].max(dim=0).values.to(torch.int64) + 1).tolist()
        shape = [((e + m - 1) // m) * m for e in extent]
        x = sp.SparseConvTensor(feats, coords.contiguous(), shape, int(batch_size))
        x = self.stem(x)
        x = x.replace_feature(torch.relu(self.stem_bn(x.features)))
        skips = [x]
        for down, bn, stage in zip(self.downs, self.down_bns, self.enc):
            x = down(x)
            x = x.replace_feature(torch.relu(bn(x.features)))
            x = stage(x)
            skips.append(x)
        for j, (up, bn, stage) in enumerate(zip(self.ups, self.up_bns, self.dec)):
            skip = skips[self.LEVELS - 1 - j]
            x = up(x)
            x = x.replace_feature(torch.cat([torch.relu(bn(x.features)), skip.features], dim=1))
            x = stage(x)
        return self.final(x.features)
