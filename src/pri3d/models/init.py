"""Weight initialisation and transfer for the 2D backbone.

Checkpoint formats understood by :func:`read_weights` (auto-detected, never silently empty):

* **pri3d pre-training checkpoint**: ``{"format": PRETRAIN_FORMAT, "backbone": ResNetUNet
  state dict, "arch", "feature_dim", ...}`` written by ``pri3d pretrain``; a fine-tuning checkpoint
  (``FINETUNE_FORMAT``) holds its UNet the same way.
* **pri3d UNet file**: ``{"format": UNET_FORMAT, "arch", "feature_dim", ..., "backbone"}`` written by
  :func:`pri3d.models.formats.write_unet` (``backbone.pth``, ``pri3d export --to unet``).

(The format names are in :mod:`pri3d.models.formats`.)
* **torchvision ResNet** state dict (``conv1.weight``, ``layer1.0...``, optional ``fc.*``), bare or
  under ``"state_dict"``/``"model"``.
* **MoCo** (v1/v2) checkpoint: ``{"state_dict": {"module.encoder_q.conv1.weight": ...}}``. The
  prefix ``module.encoder_q.`` is mapped explicitly and the MLP/fc head dropped; the official Pri3D
  converter matched the wrong prefix and loaded nothing, so here an empty match is an error.

Stage-I init of the encoder: ``scratch``, ``imagenet`` (torchvision weights API: its cache or a
download; a clear message when neither works offline) or a path to any of the files above.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from pri3d.engine.run_dir import require_finished
from pri3d.errors import InitError
from pri3d.models.formats import BACKBONE_FORMATS

__all__ = ["InitError", "read_weights", "init_encoder", "load_backbone", "load_state_strict"]

_TV_WEIGHTS = {
    "resnet18": "ResNet18_Weights",
    "resnet34": "ResNet34_Weights",
    "resnet50": "ResNet50_Weights",
    "resnet101": "ResNet101_Weights",
}
_MOCO_PREFIXES = ("module.encoder_q.", "encoder_q.", "module.base_encoder.", "base_encoder.")


def _strip(sd: dict, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def read_weights(path) -> tuple[dict, dict, str]:
    """Read a weights file. Returns ``(encoder_sd, decoder_sd, kind)`` where ``encoder_sd`` uses
    torchvision ResNet key names (no ``fc``) and ``decoder_sd`` the UNet decoder's names (empty when
    the file holds an encoder only). ``kind`` names the detected format."""
    path = Path(path)
    if not path.is_file():
        raise InitError(f"{path}: weights file not found")
    require_finished(path)  # a run folder's backbone.pth / best.pt only once that run finished
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise InitError(f"{path}: unreadable weights file ({type(e).__name__}: {e})") from e
    if not isinstance(obj, dict):
        raise InitError(f"{path}: expected a state dict or checkpoint dict, got {type(obj).__name__}")
    if obj.get("format") in BACKBONE_FORMATS and "backbone" in obj:
        bb = obj["backbone"]
        return _strip(bb, "encoder."), _strip(bb, "decoder."), obj["format"]
    sd = obj
    for key in ("state_dict", "model"):
        if isinstance(sd.get(key), dict):
            sd = sd[key]
            break
    for prefix in _MOCO_PREFIXES:
        if any(k.startswith(prefix) for k in sd):
            enc = {k: v for k, v in _strip(sd, prefix).items() if not k.startswith("fc.")}
            if not enc:
                raise InitError(f"{path}: MoCo checkpoint has no encoder weights under {prefix!r}")
            return enc, {}, "moco"
    if any(k.startswith("encoder.") for k in sd):  # a bare ResNetUNet state dict
        return _strip(sd, "encoder."), _strip(sd, "decoder."), "pri3d-unet-state"
    if "conv1.weight" in sd and any(k.startswith("layer1.") for k in sd):
        return {k: v for k, v in sd.items() if not k.startswith("fc.")}, {}, "torchvision"
    sample = ", ".join(list(sd)[:5])
    raise InitError(f"{path}: unrecognised weights format (first keys: {sample})")


def load_state_strict(module: nn.Module, sd: dict, what: str) -> None:
    """Load ``sd`` into ``module``, raising :class:`InitError` that lists missing, unexpected and
    shape-mismatched keys (e.g. a ResNet-50 checkpoint given to a ResNet-18 model)."""
    own = module.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    mismatched = sorted(k for k in set(own) & set(sd) if tuple(own[k].shape) != tuple(sd[k].shape))
    if missing or unexpected or mismatched:

        def show(keys):
            return ", ".join(keys[:8]) + (f" ... (+{len(keys) - 8} more)" if len(keys) > 8 else "")

        parts = []
        if mismatched:
            parts.append(
                f"{len(mismatched)} shape-mismatched: "
                + show([f"{k} {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}" for k in mismatched])
            )
        if missing:
            parts.append(f"{len(missing)} missing: {show(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected: {show(unexpected)}")
        raise InitError(f"{what} does not match the model (different backbone?): " + "; ".join(parts))
    module.load_state_dict(sd, strict=True)


def imagenet_state_dict(arch: str) -> dict:
    """torchvision's ImageNet weights for ``arch`` (from its cache, or downloaded when online)."""
    weights = getattr(torchvision.models, _TV_WEIGHTS[arch]).IMAGENET1K_V1
    try:
        sd = weights.get_state_dict(progress=False)
    except Exception as e:
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        raise InitError(
            f"init=imagenet: could not load torchvision's ImageNet weights for {arch} "
            f"({type(e).__name__}: {e}). Offline? Put the file {weights.url.rsplit('/', 1)[-1]} in {cache}, "
            "or pass init=/path/to/weights.pth, or use init=scratch."
        ) from e
    return {k: v for k, v in sd.items() if not k.startswith("fc.")}


def init_encoder(encoder: nn.Module, init: str, arch: str) -> str:
    """Stage-I init of a ResNet encoder (torchvision key names). Returns a one-line description."""
    if init in ("scratch", "", None):
        return "scratch (random init)"
    if init == "imagenet":
        load_state_strict(encoder, imagenet_state_dict(arch), f"ImageNet {arch} weights")
        return f"ImageNet ({arch}, torchvision)"
    enc, _, kind = read_weights(init)
    load_state_strict(encoder, enc, f"{init} ({kind})")
    return f"{kind} encoder from {init}"


def load_backbone(model: nn.Module, path, *, decoder: bool = True) -> str:
    """Load a ResNetUNet (``model.encoder``/``model.decoder``) from a weights file.

    With ``decoder=True`` the file must hold decoder weights too (pri3d checkpoints); the decoder's
    last 1x1 conv (``conv0``) is included. Raises :class:`InitError` listing mismatched keys."""
    enc, dec, kind = read_weights(path)
    load_state_strict(model.encoder, enc, f"{path} ({kind}) encoder")
    if decoder:
        if not dec:
            raise InitError(f"{path} ({kind}) holds no UNet decoder weights; transfer the encoder only")
        load_state_strict(model.decoder, dec, f"{path} ({kind}) decoder")
    return f"{kind} {'encoder+decoder' if decoder else 'encoder'} from {path}"
