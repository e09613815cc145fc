"""The pri3d weight-file formats, in one place: the ``"format"`` value of each file pri3d writes, and the
one writer of the UNet file.

* ``PRETRAIN_FORMAT``: a pre-training checkpoint (``checkpoints/ckpt_<step>.pt`` of ``pri3d pretrain``);
* ``UNET_FORMAT``: the whole ResNet-UNet, ``{"format", "arch", "feature_dim", ..., "backbone":
  ResNetUNet.state_dict()}``: ``backbone.pth`` at the end of pre-training (which adds ``resolution``,
  ``mode`` and ``step``) and ``pri3d export --to unet``;
* ``FINETUNE_FORMAT``: a fine-tuning checkpoint (``checkpoints/ckpt_<step>.pt``, ``best.pt``).

Each of the three holds a whole UNet under ``"backbone"`` (``BACKBONE_FORMATS``), so the readers
(:func:`pri3d.models.init.read_weights`, :func:`pri3d.models.load.load_unet`) accept all of them.
"""

from __future__ import annotations

from pri3d.engine.io import atomic_save

__all__ = ["PRETRAIN_FORMAT", "UNET_FORMAT", "FINETUNE_FORMAT", "BACKBONE_FORMATS", "unet_file", "write_unet"]

PRETRAIN_FORMAT = "pri3d-pretrain"
UNET_FORMAT = "pri3d-unet"
FINETUNE_FORMAT = "pri3d-finetune"
BACKBONE_FORMATS = (PRETRAIN_FORMAT, UNET_FORMAT, FINETUNE_FORMAT)


def unet_file(arch: str, feature_dim: int, backbone: dict, **info) -> dict:
    """The UNet file's object: ``{"format", "arch", "feature_dim", **info, "backbone"}`` in this order
    (``info``: what the writer records besides, e.g. the training ``resolution``, ``mode`` and ``step``)."""
    return {"format": UNET_FORMAT, "arch": arch, "feature_dim": feature_dim, **info, "backbone": backbone}


def write_unet(path, obj: dict) -> None:
    """Write a UNet file object (from :func:`unet_file`) atomically: the one writer of the UNet file."""
    atomic_save(obj, path)
