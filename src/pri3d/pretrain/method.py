"""The Pri3D pre-training method (modes ``view``, ``geo``, ``view+geo`` and ``trivial``).

:class:`Pri3D` holds the 2D ResNet-UNet (shared by both views), and for the geometric prior the 3D
sparse UNet and the two projection heads; optionally a depth head. ``forward(batch)`` takes a batch
from :func:`pri3d.pretrain.data.collate_pairs` and returns a dict of named, already weighted losses
(the loop sums them):

* ``view``: PointInfoNCE between the 2D features of matched pixels of the two views (on the
  backbone's output features, as the official code);
* ``geo``: PointInfoNCE between projected 2D pixel features and projected 3D voxel features, for
  each view and its own chunk (both views, both chunks in ``view+geo``);
* ``depth``: the depth-prediction loss (when ``model.depth_head``).

``trivial`` is the paper's baseline: the ``view`` loss between two augmentations of one image with
positives at the same pixel.

The modes are registered in :mod:`pri3d.pretrain.modes` (the loop only reads that registry).
"""

from __future__ import annotations

import torch
from torch import nn

from pri3d.losses.point_info_nce import PointInfoNCE
from pri3d.models.heads import DepthHead, ProjectionHead
from pri3d.models.resnet_unet import ResNetUNet

__all__ = ["Pri3D", "gather_pixels"]


def gather_pixels(feats: torch.Tensor, image: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
    """Features of pixels. ``feats`` ``(N_img, C, h, w)``, ``image``/``flat`` ``(P,)`` int64 ->
    ``(P, C)``."""
    n, c, h, w = feats.shape
    return feats.permute(0, 2, 3, 1).reshape(n * h * w, c)[image * (h * w) + flat]


class Pri3D(nn.Module):
    def __init__(self, cfg, *, view: bool, geo: bool):
        super().__init__()
        self.use_view, self.use_geo = view, geo
        fd = cfg.model.resolved_feature_dim
        self.backbone = ResNetUNet(cfg.model.arch, fd)
        L = cfg.loss
        self.nce = PointInfoNCE(
            L.tau, cross_pair_negatives=L.cross_pair_negatives, min_matches=L.min_matches, symmetric=L.symmetric
        )
        self.weights = {"view": L.view_weight, "geo": L.geo_weight, "depth": L.depth_weight}
        if geo:
            from pri3d.models.sparse_unet import SparseResUNet  # spconv only for the geometric prior

            m3 = cfg.model3d
            self.net3d = SparseResUNet(
                m3.in_channels,
                m3.out_channels,
                planes=m3.planes,
                layers=m3.layers,
                init_dim=m3.init_dim,
                stem_kernel=m3.stem_kernel,
            )
            self.head2d = ProjectionHead(fd, cfg.model.head_dim)
            self.head3d = ProjectionHead(m3.out_channels, cfg.model.head_dim)
        self.depth_head = None
        if cfg.model.depth_head:
            from pri3d.losses.depth import DepthLoss

            self.depth_head = DepthHead(fd)
            self.depth_loss = DepthLoss()
        self.stats: dict[str, int] = {}
        self._compiled = None  # kept out of the module tree so state_dict keys never change

    def compile_backbone(self, **kwargs) -> None:
        object.__setattr__(self, "_compiled", torch.compile(self.backbone, **kwargs))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W) -> (N, C, H/2, W/2)`` 2D features."""
        net = self._compiled if self._compiled is not None else self.backbone
        return net(images)

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        images = batch["images"]
        B = int(batch["num_pairs"])
        feats = self.features(images)  # (2B, C, h, w): A images then B images
        losses: dict[str, torch.Tensor] = {}
        stats = {}
        if self.use_view:
            m = batch["view"]
            fa = gather_pixels(feats, m[:, 0], m[:, 1])
            fb = gather_pixels(feats, m[:, 0] + B, m[:, 2])
            r = self.nce(fa, fb, m[:, 0], B)
            losses["view"] = r.loss * self.weights["view"]
            stats.update(view_pairs=r.pairs_used, view_skipped=r.pairs_skipped, view_matches=r.matches_used)
        if self.use_geo:
            g = batch["geo"]
            with torch.autocast(device_type=images.device.type, enabled=False):  # spconv in float32
                f3 = self.net3d(batch["vox_feats"].float(), batch["vox_coords"], 2 * B)
            f2 = self.head2d(gather_pixels(feats, g[:, 0], g[:, 1]))
            f3 = self.head3d(f3[g[:, 2]])
            r = self.nce(f2, f3, g[:, 0], 2 * B)
            losses["geo"] = r.loss * self.weights["geo"]
            stats.update(
                geo_chunks=r.pairs_used,
                geo_skipped=r.pairs_skipped,
                geo_matches=r.matches_used,
                voxels=int(batch["vox_coords"].shape[0]),
            )
        if self.depth_head is not None:
            pred = self.depth_head(feats)
            losses["depth"] = self.depth_loss(pred, batch["depth"]) * self.weights["depth"]
        self.stats = stats
        return losses
