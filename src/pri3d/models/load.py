"""Build a whole :class:`~pri3d.models.resnet_unet.ResNetUNet` for evaluation: from a pri3d checkpoint or
backbone file, or an untrained baseline (``scratch`` / ``imagenet``).

The one loader of the read-outs that look at a backbone without training it (``pri3d eval-matching``,
``pri3d probe``). A checkpoint may be a pre-training checkpoint, an exported ``backbone.pth``
(``pri3d-unet``) or a fine-tuning checkpoint; all hold the encoder and the decoder.
"""

from __future__ import annotations

__all__ = ["load_unet"]


def load_unet(
    checkpoint: str, arch: str | None = None, feature_dim: int | None = None, seed: int = 0, *, what: str = "this"
):
    """``(model, training resolution (H, W) or None, one-line description)``.

    Args:
        checkpoint: a file path, or ``"scratch"`` / ``"imagenet"`` for an untrained network of ``arch``
            (default resnet50) with ``feature_dim`` outputs (default: the official width for the arch),
            initialised from ``seed``.
        arch, feature_dim: needed for a file only when it does not record them.
        what: the read-out's name, for error messages (e.g. ``"eval-matching"``).

    Raises (each naming the file, none re-wrapped as another class) :class:`~pri3d.errors.CheckpointError`
    when it is missing, unreadable or from a run that has not finished; :class:`~pri3d.errors.DataError`
    when it is not a whole UNet; :class:`~pri3d.errors.InitError` when its weights do not fit the network
    or a baseline's weights cannot be had (``imagenet`` offline).
    """
    from pri3d.engine.checkpoint import load_checkpoint
    from pri3d.engine.run_dir import require_finished
    from pri3d.engine.seed import seed_everything
    from pri3d.errors import DataError
    from pri3d.models.formats import BACKBONE_FORMATS
    from pri3d.models.init import init_encoder, load_backbone
    from pri3d.models.resnet_unet import ARCHS, OFFICIAL_FEATURE_DIM, ResNetUNet

    if arch is not None and arch not in ARCHS:
        raise DataError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
    if checkpoint in ("scratch", "imagenet"):
        arch = arch or "resnet50"
        seed_everything(seed)
        model = ResNetUNet(arch, feature_dim or OFFICIAL_FEATURE_DIM[arch])
        desc = init_encoder(model.encoder, checkpoint, arch)  # InitError: e.g. imagenet weights offline
        return model, None, f"{arch} at initialisation ({desc}, random decoder)"
    require_finished(checkpoint)  # never an earlier run's backbone.pth beside a newer run that died
    obj = load_checkpoint(checkpoint)  # CheckpointError: missing, unreadable
    if obj.get("format") not in BACKBONE_FORMATS or "backbone" not in obj:
        raise DataError(
            f"{checkpoint}: not a pri3d checkpoint or backbone file (format {obj.get('format')!r}); "
            f"{what} needs the whole UNet"
        )
    arch = obj.get("arch") or arch
    fd = obj.get("feature_dim") or feature_dim
    if not arch or not fd:
        raise DataError(f"{checkpoint}: the file does not say its arch/feature_dim; pass --arch and --feature-dim")
    model = ResNetUNet(arch, int(fd))
    load_backbone(model, checkpoint)  # InitError names the file and the keys that do not fit
    res = None
    cfg = obj.get("config") or {}
    if obj.get("resolution"):  # backbone.pth records the training resolution
        res = tuple(int(v) for v in obj["resolution"])
    elif isinstance(cfg.get("data"), dict) and cfg["data"].get("resolution"):
        res = tuple(int(v) for v in cfg["data"]["resolution"])
    step = f" step {obj['step']}" if "step" in obj else ""
    return model, res, f"{arch}{step} ({obj.get('mode', obj.get('format'))})"
