"""The Pri3D pre-training method and the registry of modes.

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

Adding a mode (e.g. ``mocov2``) is one module with a method class and a dataset builder plus one
:func:`register_mode` call; the loop only relies on :class:`ModeSpec`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from pri3d.losses.point_info_nce import PointInfoNCE
from pri3d.models.heads import DepthHead, ProjectionHead
from pri3d.models.resnet_unet import ResNetUNet

__all__ = ["ModeSpec", "MODES", "register_mode", "Pri3D", "gather_pixels"]


@dataclass(frozen=True)
class ModeSpec:
    """How to train one mode.

    build_method: ``cfg -> nn.Module`` with a ``backbone`` (ResNetUNet) attribute, ``forward(batch)
        -> dict of losses`` and a ``stats`` dict of counters from the last forward.
    build_dataset: ``(cfg, prepared, pairs, train: bool) -> Dataset`` whose items take a
        ``(pair_index, seed)`` key.
    collate: batch collation function.
    uses_3d: whether spconv is needed.
    """

    build_method: Callable
    build_dataset: Callable
    collate: Callable
    uses_3d: bool = False
    description: str = ""


MODES: dict[str, ModeSpec] = {}


def register_mode(name: str, spec: ModeSpec) -> None:
    if name in MODES:
        raise ValueError(f"mode {name!r} is already registered")
    MODES[name] = spec


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


# -- the registry ------------------------------------------------------------------------------------


def _pair_dataset(view: bool, geo: bool, trivial: bool = False):
    def build(cfg, prepared, pairs, train: bool = True):
        from pri3d.pretrain.data import PairDataset

        L = cfg.loss
        return PairDataset(
            prepared,
            pairs,
            resolution=cfg.data.resolution,
            view=view,
            geo=geo,
            trivial=trivial,
            num_matches=L.num_matches,
            depth_threshold=L.depth_threshold,
            voxel_radius=L.voxel_radius,
            voxel_input=cfg.model3d.input,
            voxel_crop=cfg.model3d.crop,
            crop_margin=cfg.model3d.crop_margin if train else 0.0,
            augment=train,
            crop_scale=cfg.data.crop_scale,
            crop_ratio=cfg.data.crop_ratio,
            flip=cfg.data.flip,
        )

    return build


def _collate(samples):
    from pri3d.pretrain.data import collate_pairs

    return collate_pairs(samples)


def _method(view: bool, geo: bool):
    def build(cfg):
        return Pri3D(cfg, view=view, geo=geo)

    return build


register_mode(
    "view",
    ModeSpec(
        _method(True, False),
        _pair_dataset(True, False),
        _collate,
        False,
        "pixel-to-pixel correspondences between two views",
    ),
)
register_mode(
    "geo",
    ModeSpec(
        _method(False, True),
        _pair_dataset(False, True),
        _collate,
        True,
        "pixel-to-voxel correspondences against a 3D sparse UNet",
    ),
)
register_mode(
    "view+geo",
    ModeSpec(
        _method(True, True), _pair_dataset(True, True), _collate, True, "both losses: two views and both voxel chunks"
    ),
)
register_mode(
    "trivial",
    ModeSpec(
        _method(True, False),
        _pair_dataset(True, False, trivial=True),
        _collate,
        False,
        "baseline: two colour augmentations of one image, positives at the same pixel",
    ),
)

from pri3d.pretrain import mocov2  # noqa: E402,F401  (registers the "mocov2" baseline mode)
