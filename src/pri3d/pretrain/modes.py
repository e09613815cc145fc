"""The registry of pre-training modes: ``MODES[name]`` says how to build the method, its dataset and its
batches (:class:`ModeSpec`); the loop, the config check and the experiment (its list of pre-training
methods) only read this registry.

The built-in modes, in the order of the paper's tables (baselines first):

* ``trivial``: the ``view`` loss between two augmentations of one image, positives at the same pixel;
* ``mocov2``: MoCo v2 on single scan frames (:mod:`pri3d.pretrain.mocov2`);
* ``view``, ``geo``, ``view+geo``: Pri3D's losses (:mod:`pri3d.pretrain.method`).

Each builder imports its implementation when it is called, so this module imports nothing of pri3d:
the method modules never import it back (no import circle), and listing the modes costs no torch
import. Adding a mode is one module with a method class and a dataset builder plus one
:func:`register_mode` call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ModeSpec", "MODES", "register_mode"]


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


# -- Pri3D's modes (pri3d.pretrain.method) and trivial -------------------------------------------------


def _pri3d_method(view: bool, geo: bool):
    def build(cfg):
        from pri3d.pretrain.method import Pri3D

        return Pri3D(cfg, view=view, geo=geo)

    return build


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


def _collate_pairs(samples):
    from pri3d.pretrain.data import collate_pairs

    return collate_pairs(samples)


# -- MoCo v2 (pri3d.pretrain.mocov2) ---------------------------------------------------------------------


def _moco_method(cfg):
    from pri3d.pretrain.mocov2 import MoCoV2

    return MoCoV2(cfg)


def _frame_dataset(cfg, prepared, pairs, train: bool = True):
    from pri3d.pretrain.mocov2 import FrameDataset

    return FrameDataset(prepared, pairs, resolution=cfg.data.resolution, crop_scale=cfg.moco.crop_scale, augment=train)


def _collate_frames(samples):
    from pri3d.pretrain.mocov2 import collate_frames

    return collate_frames(samples)


register_mode(
    "trivial",
    ModeSpec(
        _pri3d_method(True, False),
        _pair_dataset(True, False, trivial=True),
        _collate_pairs,
        False,
        "baseline: two colour augmentations of one image, positives at the same pixel",
    ),
)
register_mode(
    "mocov2",
    ModeSpec(
        _moco_method,
        _frame_dataset,
        _collate_frames,
        False,
        "baseline: MoCo v2 (queue, momentum key encoder, MLP head) on single scan frames",
    ),
)
register_mode(
    "view",
    ModeSpec(
        _pri3d_method(True, False),
        _pair_dataset(True, False),
        _collate_pairs,
        False,
        "pixel-to-pixel correspondences between two views",
    ),
)
register_mode(
    "geo",
    ModeSpec(
        _pri3d_method(False, True),
        _pair_dataset(False, True),
        _collate_pairs,
        True,
        "pixel-to-voxel correspondences against a 3D sparse UNet",
    ),
)
register_mode(
    "view+geo",
    ModeSpec(
        _pri3d_method(True, True),
        _pair_dataset(True, True),
        _collate_pairs,
        True,
        "both losses: two views and both voxel chunks",
    ),
)
