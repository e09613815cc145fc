"""Export backbone weights to other libraries' formats.

Any file :func:`pri3d.models.init.read_weights` understands (a ``pri3d pretrain`` checkpoint, a
``pri3d-unet`` export, a torchvision or MoCo ResNet file) can be written as:

* ``torchvision``: the encoder's state dict with torchvision ResNet names. It loads into
  ``torchvision.models.resnetXX()`` with only ``fc.*`` missing.
* ``timm``: the same state dict; timm's plain ``resnet18/34/50/101`` use torchvision's parameter names
  (head ``fc`` included), so it loads into ``timm.create_model("resnetXX")`` with only ``fc.*``
  missing, or fully with ``num_classes=0``.
* ``detectron2``: a pickle ``{"model": {name: numpy array}, "__author__": "pri3d",
  "matching_heuristics": True}`` with detectron2's ResNet names (``stem.conv1.norm.*``,
  ``res2.0.conv1.weight``, ``res2.0.shortcut.norm.*`` ...), the layout of detectron2's
  ``tools/convert-torchvision-to-d2.py``. ``num_batches_tracked`` counters are dropped: detectron2's
  ``FrozenBatchNorm2d`` has none.
* ``unet``: the whole ResNet-UNet (encoder + decoder) as ``{"format": UNET_FORMAT, "arch",
  "feature_dim", "backbone": ResNetUNet.state_dict()}``, for semantic-segmentation fine-tuning.

The mapping functions are pure (state dict in, state dict out); :func:`export_weights` reads,
checks the encoder against the architecture it infers from the keys, converts and writes atomically.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pri3d.engine.io import atomic_open, atomic_save
from pri3d.errors import ExportError
from pri3d.models.formats import unet_file, write_unet
from pri3d.models.init import read_weights

__all__ = [
    "TARGETS",
    "ExportError",
    "ExportResult",
    "infer_arch",
    "check_encoder",
    "detectron2_key",
    "detectron2_resnet_keys",
    "to_torchvision",
    "to_detectron2",
    "to_unet",
    "write_pickle",
    "export_weights",
    "usage_hint",
]

TARGETS = ("torchvision", "timm", "detectron2", "unet")

# arch -> (bottleneck blocks?, blocks per stage). The same table as torchvision's and detectron2's.
_RESNETS = {
    "resnet18": (False, (2, 2, 2, 2)),
    "resnet34": (False, (3, 4, 6, 3)),
    "resnet50": (True, (3, 4, 6, 3)),
    "resnet101": (True, (3, 4, 23, 3)),
}
_BN = ("weight", "bias", "running_mean", "running_var")


@dataclass
class ExportResult:
    """What :func:`export_weights` wrote. ``missing``/``extra`` compare the written names with the
    target model's names (e.g. torchvision's ``fc.*`` head is ``missing``)."""

    target: str
    path: Path
    arch: str
    source_kind: str
    n_tensors: int
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    feature_dim: int | None = None
    checked_against: str = ""

    def summary(self) -> str:
        def show(keys):
            if not keys:
                return "none"
            return ", ".join(keys[:6]) + (f" ... (+{len(keys) - 6} more)" if len(keys) > 6 else "")

        what = "encoder+decoder" if self.target == "unet" else "encoder"
        fd = f" (feature_dim {self.feature_dim})" if self.feature_dim is not None else ""
        line = (
            f"wrote {self.path}: {self.target} weights, {self.arch} {what}{fd} from a {self.source_kind} file, "
            f"{self.n_tensors} tensors"
        )
        counters = [k for k in self.dropped if k.endswith("num_batches_tracked")]
        others = [k for k in self.dropped if k not in counters]
        if counters:
            line += f" (dropped {len(counters)} BatchNorm num_batches_tracked counters)"
        if others:
            line += f" (dropped {len(others)} not used by {self.target}: {show(others)})"
        return line + f"; vs {self.checked_against}: missing {show(self.missing)}; extra {show(self.extra)}"


# ----------------------------------------------------------------------------- checks


def infer_arch(encoder_sd: dict) -> str:
    """The torchvision ResNet (``resnet18/34/50/101``) whose parameter names ``encoder_sd`` has,
    from its number of blocks per stage and its block type (bottleneck blocks have ``conv3``)."""
    blocks = []
    for layer in range(1, 5):
        idx = {int(m.group(1)) for k in encoder_sd if (m := re.match(rf"layer{layer}\.(\d+)\.", k))}
        blocks.append(max(idx) + 1 if idx else 0)
    bottleneck = "layer1.0.conv3.weight" in encoder_sd
    for arch, spec in _RESNETS.items():
        if spec == (bottleneck, tuple(blocks)):
            return arch
    raise ExportError(
        f"encoder is not a torchvision ResNet-18/34/50/101 (blocks per stage {blocks}, "
        f"{'bottleneck' if bottleneck else 'basic'} blocks)"
    )


def _model_shapes(arch: str, target: str = "torchvision") -> dict[str, tuple]:
    """Parameter names and shapes of the target library's model, built on the meta device (no memory,
    no init cost)."""
    with torch.device("meta"):
        if target == "timm":
            import timm

            model = timm.create_model(arch, pretrained=False)
        else:
            import torchvision

            model = getattr(torchvision.models, arch)(weights=None)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _compare(sd: dict, expected: dict[str, tuple]) -> tuple[list[str], list[str], list[str]]:
    """(missing, extra, shape-mismatched) names of ``sd`` against ``expected`` name -> shape."""
    missing = [k for k in expected if k not in sd]
    extra = [k for k in sd if k not in expected]
    mismatched = [
        f"{k} {tuple(sd[k].shape)} vs {expected[k]}" for k in sd if k in expected and tuple(sd[k].shape) != expected[k]
    ]
    return missing, extra, mismatched


def check_encoder(encoder_sd: dict, arch: str) -> None:
    """Raise :class:`ExportError` unless ``encoder_sd`` is exactly torchvision ``arch`` without ``fc``
    (names and shapes; ``num_batches_tracked`` counters may be absent)."""
    missing, extra, mismatched = _compare(encoder_sd, _model_shapes(arch))
    missing = [k for k in missing if not k.startswith("fc.") and not k.endswith("num_batches_tracked")]
    if missing or extra or mismatched:
        groups = (("shape-mismatched", mismatched), ("missing", missing), ("unexpected", extra))
        parts = [f"{len(v)} {what}: {', '.join(v[:5])}" for what, v in groups if v]
        raise ExportError(f"encoder does not match torchvision {arch}: " + "; ".join(parts))


# ----------------------------------------------------------------------------- mappings


def to_torchvision(encoder_sd: dict) -> dict[str, torch.Tensor]:
    """Encoder state dict (torchvision names) -> a detached CPU copy with the same names; also the timm
    format, whose ResNet names are torchvision's."""
    return {k: v.detach().cpu() for k, v in encoder_sd.items() if not k.startswith("fc.")}


_BN_NAMES = "|".join(_BN)


def detectron2_key(name: str) -> str | None:
    """torchvision ResNet parameter name -> detectron2 ResNet name; ``None`` for names detectron2 does
    not use (``*.num_batches_tracked``, the ``fc`` head). Unknown names raise :class:`ExportError`.

    ``layerN.B`` becomes ``res{N+1}.B``; ``bnK`` the ``.norm`` of ``convK``; ``downsample.0``/``.1``
    the block's ``shortcut`` conv and its ``.norm``; the stem's ``conv1``/``bn1`` go under ``stem.conv1``.
    """
    if name.endswith(".num_batches_tracked") or name.startswith("fc."):
        return None
    if name == "conv1.weight":
        return "stem.conv1.weight"
    if m := re.fullmatch(rf"bn1\.({_BN_NAMES})", name):
        return f"stem.conv1.norm.{m[1]}"
    if m := re.fullmatch(r"layer([1-4])\.(\d+)\.(.+)", name):
        block, rest = f"res{int(m[1]) + 1}.{m[2]}", m[3]
        if c := re.fullmatch(r"conv([1-3])\.weight", rest):
            return f"{block}.conv{c[1]}.weight"
        if c := re.fullmatch(rf"bn([1-3])\.({_BN_NAMES})", rest):
            return f"{block}.conv{c[1]}.norm.{c[2]}"
        if rest == "downsample.0.weight":
            return f"{block}.shortcut.weight"
        if c := re.fullmatch(rf"downsample\.1\.({_BN_NAMES})", rest):
            return f"{block}.shortcut.norm.{c[1]}"
    raise ExportError(f"no detectron2 name for parameter {name!r} (not a torchvision ResNet name)")


def detectron2_resnet_keys(arch: str) -> list[str]:
    """The state-dict names of detectron2's ``ResNet`` backbone for ``arch`` (FrozenBN norms), built
    from its structure: stem, then stages ``res2..res5`` of BasicBlocks (R18/34: conv1, conv2) or
    BottleneckBlocks (R50/101: conv1..conv3), with a ``shortcut`` where the block changes channels."""
    if arch not in _RESNETS:
        raise ExportError(f"unknown arch {arch!r}; choose one of {', '.join(_RESNETS)}")
    bottleneck, blocks = _RESNETS[arch]

    def conv(prefix):
        return [f"{prefix}.weight"] + [f"{prefix}.norm.{n}" for n in _BN]

    keys = conv("stem.conv1")
    channels = 64
    for i, n in enumerate(blocks):
        out = 64 * 2**i * (4 if bottleneck else 1)
        for b in range(n):
            if b == 0 and channels != out:
                keys += conv(f"res{i + 2}.{b}.shortcut")
            for c in range(1, 4 if bottleneck else 3):
                keys += conv(f"res{i + 2}.{b}.conv{c}")
            channels = out
    return keys


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    if t.is_floating_point() and t.dtype not in (torch.float32, torch.float64):
        t = t.float()  # bf16/fp16 -> float32 (numpy has no bf16)
    return t.numpy()


def to_detectron2(encoder_sd: dict) -> tuple[dict, list[str]]:
    """Encoder state dict (torchvision names) -> (detectron2 pickle object, dropped names)."""
    model, dropped = {}, []
    for name, value in encoder_sd.items():
        new = detectron2_key(name)
        if new is None:
            dropped.append(name)
            continue
        model[new] = _to_numpy(value)
    return {"model": model, "__author__": "pri3d", "matching_heuristics": True}, dropped


def to_unet(encoder_sd: dict, decoder_sd: dict, arch: str) -> dict:
    """Encoder + decoder state dicts -> the ``pri3d-unet`` file object. ``feature_dim`` comes from
    the decoder's last 1x1 conv (``conv0.weight``: ``(feature_dim, C, 1, 1)``)."""
    if "conv0.weight" not in decoder_sd:
        raise ExportError("no UNet decoder weights (decoder.conv0.weight): this file holds an encoder only")
    feature_dim = int(decoder_sd["conv0.weight"].shape[0])
    backbone = {f"encoder.{k}": v.detach().cpu() for k, v in encoder_sd.items() if not k.startswith("fc.")}
    backbone.update({f"decoder.{k}": v.detach().cpu() for k, v in decoder_sd.items()})
    return unet_file(arch, feature_dim, backbone)


# ----------------------------------------------------------------------------- writers


def write_pickle(obj, path) -> None:
    """Pickle ``obj`` atomically (temp file, fsync, rename; shared-file permissions)."""
    with atomic_open(path, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)


def export_weights(ckpt, target: str, out) -> ExportResult:
    """Read ``ckpt`` (any format ``read_weights`` accepts), convert to ``target`` (one of
    :data:`TARGETS`) and write ``out`` atomically. Raises :class:`ExportError` for an unknown target,
    an unreadable or non-ResNet checkpoint, a ``unet`` export of an encoder-only file, a detectron2
    output not named ``*.pkl``, or ``out`` being the input file."""
    ckpt, out = Path(ckpt), Path(out)
    _check_request(ckpt, target, out)
    enc, dec, kind = read_weights(ckpt)  # InitError (a Pri3dError) names the unreadable file
    if not enc:
        raise ExportError(f"{ckpt} ({kind}): no encoder weights")
    try:
        arch = infer_arch(enc)
        check_encoder(enc, arch)
    except ExportError as e:
        raise ExportError(f"{ckpt} ({kind}): {e}") from e
    if target in ("torchvision", "timm"):
        return _export_torchvision(enc, arch, kind, target, out)
    if target == "detectron2":
        return _export_detectron2(enc, arch, kind, out)
    return _export_unet(enc, dec, arch, kind, ckpt, out)


def _check_request(ckpt: Path, target: str, out: Path) -> None:
    """Refuse an unknown target, a detectron2 output not named ``*.pkl`` and an output that is the input."""
    if target not in TARGETS:
        raise ExportError(f"unknown export target {target!r}; choose one of {', '.join(TARGETS)}")
    if target == "detectron2" and out.suffix != ".pkl":
        raise ExportError(f"{out}: detectron2 reads pickled weights only from a '.pkl' file; name the output *.pkl")
    if out.exists() and ckpt.exists() and out.resolve() == ckpt.resolve():
        raise ExportError(f"{out}: output is the input checkpoint; choose another output path")


def _export_torchvision(enc: dict, arch: str, kind: str, target: str, out: Path) -> ExportResult:
    """torchvision (or timm: the same names) ResNet weights, checked against the library's model."""
    sd = to_torchvision(enc)
    checked = f"torchvision {arch}"
    if target == "timm":
        try:
            expected = _model_shapes(arch, "timm")
            checked = f"timm {arch}"
        except ImportError:
            expected = _model_shapes(arch)  # timm's plain ResNets share torchvision's names
            checked = f"torchvision {arch} (timm not installed; its ResNet names are the same)"
    else:
        expected = _model_shapes(arch)
    missing, extra, _ = _compare(sd, expected)
    atomic_save(sd, out)
    return ExportResult(target, out, arch, kind, len(sd), missing, extra, checked_against=checked)


def _export_detectron2(enc: dict, arch: str, kind: str, out: Path) -> ExportResult:
    """A detectron2 ``.pkl`` (numpy arrays under detectron2's ResNet names), checked against its key list."""
    obj, dropped = to_detectron2(enc)
    expected = detectron2_resnet_keys(arch)
    missing = [k for k in expected if k not in obj["model"]]
    extra = [k for k in obj["model"] if k not in set(expected)]
    write_pickle(obj, out)
    return ExportResult(
        "detectron2",
        out,
        arch,
        kind,
        len(obj["model"]),
        missing,
        extra,
        dropped,
        checked_against=f"detectron2 ResNet-{arch[6:]} backbone",
    )


def _export_unet(enc: dict, dec: dict, arch: str, kind: str, ckpt: Path, out: Path) -> ExportResult:
    """The whole pri3d UNet (encoder and decoder); refused unless it loads into a ``ResNetUNet`` exactly."""
    try:
        obj = to_unet(enc, dec, arch)
    except ExportError as e:
        raise ExportError(f"{ckpt} ({kind}): {e}; --to unet needs a pri3d checkpoint") from e
    from pri3d.models.resnet_unet import ResNetUNet

    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in ResNetUNet(arch, obj["feature_dim"]).state_dict().items()}
    missing, extra, mismatched = _compare(obj["backbone"], expected)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or extra or mismatched:
        raise ExportError(
            f"{ckpt} ({kind}): weights do not form a ResNetUNet({arch}, feature_dim={obj['feature_dim']}): "
            f"missing {missing[:5]}, unexpected {extra[:5]}, shape-mismatched {mismatched[:5]}"
        )
    write_unet(out, obj)
    return ExportResult(
        "unet",
        out,
        arch,
        kind,
        len(obj["backbone"]),
        missing,
        extra,
        feature_dim=obj["feature_dim"],
        checked_against=f"ResNetUNet({arch}, {obj['feature_dim']})",
    )


def usage_hint(result: ExportResult) -> str:
    """How to load the written file in the target library (printed by ``pri3d export``)."""
    p, arch = result.path, result.arch
    if result.target == "torchvision":
        return (
            f"load: m = torchvision.models.{arch}(); "
            f"m.load_state_dict(torch.load('{p}'), strict=False)  # only fc.* missing"
        )
    if result.target == "timm":
        return (
            f"load: timm.create_model('{arch}', pretrained=True, num_classes=0, "
            f"pretrained_cfg_overlay=dict(file='{p}'))"
        )
    if result.target == "detectron2":
        extra = " MODEL.RESNETS.RES2_OUT_CHANNELS 64" if arch in ("resnet18", "resnet34") else ""
        return (
            f"detectron2 config: MODEL.WEIGHTS {p} MODEL.RESNETS.DEPTH {arch[6:]}{extra} "
            "MODEL.RESNETS.STRIDE_IN_1X1 False INPUT.FORMAT RGB "
            "MODEL.PIXEL_MEAN [123.675,116.28,103.53] MODEL.PIXEL_STD [58.395,57.12,57.375]"
            "  (torchvision-style RGB normalisation)"
        )
    return f"load: pri3d.models.init.load_backbone(ResNetUNet('{arch}', {result.feature_dim}), '{p}')"
