"""Semantic segmentation: models (ResNet-UNet + classifier, DeepLabV3) and the task plugged into the
fine-tune loop.

* ``unet``: the pre-training ResNet-UNet, encoder **and** decoder transferred from a pri3d checkpoint,
  except the decoder's last 1x1 conv (the pre-training's feature projection ``conv0``): the
  classifier takes its place and reads the last up-projection's output (32 channels for
  ResNet-18/34, 128 for ResNet-50/101). This is the official ``Semantic2D`` model
  (``Res18UNet(nclasses)`` loaded with ``load_state_with_same_shape``, which drops the pre-trained
  ``conv0`` for its shape). Logits (half resolution) are upsampled bilinearly to the input size.
* ``deeplabv3``: torchvision's DeepLabV3 head on the transferred ResNet encoder. ResNet-50/101 use
  dilation (output stride 8, as torchvision); ResNet-18/34 cannot dilate their basic blocks and run at
  output stride 32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from tqdm import tqdm

from pri3d.downstream.classes import IGNORE_INDEX, get_label_set
from pri3d.downstream.datasets import SemSegDataset, open_split
from pri3d.downstream.metrics import confusion_matrix, format_semseg_table, semseg_scores
from pri3d.errors import InitError
from pri3d.models.init import init_encoder, load_state_strict, read_weights
from pri3d.models.resnet_unet import ARCHS, ResNetUNet

__all__ = ["SemSegUNet", "SemSegDeepLab", "build_semseg_model", "load_unet_decoder", "SemSegTask"]


class SemSegUNet(nn.Module):
    """ResNet-UNet whose last 1x1 conv is the classifier. ``forward(x: (B, 3, H, W)) -> logits
    (B, num_classes, H, W)``.

    As the official fine-tuning model, the classifier *replaces* the decoder's last 1x1 conv
    (``backbone.decoder.conv0``, the pre-training's feature projection) instead of being stacked on
    top of it: scratch and pre-trained models have the same layers, and the contrastive projection
    (whose output scale the L2-normalised loss never constrains) is not transferred.
    ``feature_dim`` is the width the classifier reads (the last up-projection's output).
    """

    def __init__(self, arch: str, num_classes: int):
        super().__init__()
        self.arch = arch
        self.num_classes = num_classes
        self.backbone = ResNetUNet(arch, num_classes)
        self.feature_dim = self.backbone.decoder.out_channels_hidden

    @property
    def classifier(self) -> nn.Conv2d:
        return self.backbone.decoder.conv0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.backbone(x)  # (B, K, H/2, W/2)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def backbone_state(self) -> dict:
        """ResNetUNet state dict (``encoder.*``, ``decoder.*``; ``decoder.conv0`` is the classifier),
        reusable as an init (the classifier is then left out)."""
        return self.backbone.state_dict()

    @staticmethod
    def upgrade_state_dict(sd: dict) -> dict:
        """A state dict of the earlier layout (a separate ``classifier`` 1x1 conv stacked on the
        transferred ``backbone.decoder.conv0``) in this layout. Both are 1x1 convs with nothing in
        between, so folding them into one conv gives the same logits. Other dicts are returned as is."""
        if "classifier.weight" not in sd:
            return sd
        sd = dict(sd)
        wc, bc = sd.pop("classifier.weight"), sd.pop("classifier.bias")  # (K, F, 1, 1), (K,)
        w0, b0 = sd["backbone.decoder.conv0.weight"], sd["backbone.decoder.conv0.bias"]  # (F, C, 1, 1), (F,)
        w = wc[:, :, 0, 0].double() @ w0[:, :, 0, 0].double()
        sd["backbone.decoder.conv0.weight"] = w.to(w0.dtype)[:, :, None, None]
        sd["backbone.decoder.conv0.bias"] = (wc[:, :, 0, 0].double() @ b0.double() + bc.double()).to(b0.dtype)
        return sd


def load_unet_decoder(decoder: nn.Module, dec: dict, what: str) -> None:
    """Load a pre-trained UNet decoder state dict into ``decoder``, all but its last 1x1 conv
    (``conv0``, which is the classifier here). Raises :class:`InitError` listing mismatched keys."""
    own = decoder.state_dict()
    sd = {k: v for k, v in dec.items() if not k.startswith("conv0.")}
    sd.update({k: v for k, v in own.items() if k.startswith("conv0.")})
    load_state_strict(decoder, sd, what)


class SemSegDeepLab(nn.Module):
    """torchvision DeepLabV3 on our ResNet encoder. ``forward(x) -> logits (B, K, H, W)``."""

    def __init__(self, arch: str, num_classes: int):
        super().__init__()
        from torchvision.models._utils import IntermediateLayerGetter
        from torchvision.models.segmentation.deeplabv3 import DeepLabHead

        if arch not in ARCHS:
            raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
        dilate = [False, True, True] if arch in ("resnet50", "resnet101") else None
        resnet = getattr(torchvision.models, arch)(weights=None, replace_stride_with_dilation=dilate)
        self.arch = arch
        self.encoder = IntermediateLayerGetter(resnet, {"layer4": "out"})  # keys = torchvision ResNet names
        self.head = DeepLabHead(ARCHS[arch], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.encoder(x)["out"])
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def backbone_state(self) -> dict:
        return {f"encoder.{k}": v for k, v in self.encoder.state_dict().items()}


def build_semseg_model(
    head: str,
    arch: str,
    num_classes: int,
    init: str = "scratch",
    *,
    feature_dim: int | None = None,
    transfer: str = "auto",
) -> tuple[nn.Module, str]:
    """Build a segmentation model and initialise it. Returns ``(model, description)``.

    ``init``: ``scratch``, ``imagenet`` (encoder) or a weights file. For ``unet`` with a file,
    ``transfer="auto"`` loads encoder and decoder when the file has decoder weights (pri3d checkpoints)
    and the encoder alone otherwise; the decoder's last 1x1 conv is never loaded (the classifier takes
    its place, see :class:`SemSegUNet`). ``feature_dim`` is ignored (kept for callers of the earlier
    signature). Mismatched keys raise :class:`~pri3d.models.init.InitError` listing them."""
    del feature_dim
    if head == "deeplabv3":
        model = SemSegDeepLab(arch, num_classes)
        return model, "DeepLabV3, encoder: " + init_encoder(model.encoder, init, arch)
    if head != "unet":
        raise ValueError(f"unknown semseg head {head!r}")
    if init in ("scratch", "imagenet", "", None):
        if transfer == "encoder+decoder":
            raise InitError(f"model.transfer=encoder+decoder needs a pri3d checkpoint as init, not {init!r}")
        model = SemSegUNet(arch, num_classes)
        return model, "UNet, encoder: " + init_encoder(model.backbone.encoder, init or "scratch", arch)
    enc, dec, kind = read_weights(init)
    with_decoder = transfer == "encoder+decoder" or (transfer == "auto" and bool(dec))
    if with_decoder and not dec:
        raise InitError(f"{init} ({kind}) holds no UNet decoder weights; use model.transfer=encoder")
    model = SemSegUNet(arch, num_classes)
    load_state_strict(model.backbone.encoder, enc, f"{init} ({kind}) encoder")
    if with_decoder:
        load_unet_decoder(model.backbone.decoder, dec, f"{init} ({kind}) decoder")
    what = (
        "encoder+decoder (its last 1x1 conv replaced by the classifier)" if with_decoder else "encoder (decoder random)"
    )
    return model, f"UNet, {what} from {init} ({kind})"


class SemSegTask:
    """Semantic segmentation plugged into :func:`pri3d.downstream.loop.run_finetune`."""

    name = "semseg"
    default_best_metric = "miou"
    find_unused_parameters = False  # DDP: every parameter gets a gradient every step

    @staticmethod
    def scalars(scores: dict) -> dict:
        """The scores logged and kept in the history (flat numbers)."""
        return {k: scores[k] for k in ("miou", "pixel_acc", "mean_acc")}

    def __init__(self, cfg):
        self.cfg = cfg
        self.label_set = get_label_set(cfg.data.label_set)
        self.class_names = list(self.label_set.class_names)

    # -- data
    def dataset(self, which: str, *, split=None, train: bool = False, progress: bool = True) -> SemSegDataset:
        d = self.cfg.data
        scenes = open_split(d.path, which, format=d.format, split=split)
        return SemSegDataset(
            scenes,
            self.label_set,
            tuple(d.resolution),
            **d.dataset_options(train, seed=self.cfg.seed, progress=progress),
        )

    collate = staticmethod(SemSegDataset.collate)

    # -- model
    def build_model(self, init: str) -> tuple[nn.Module, str]:
        m = self.cfg.model
        return build_semseg_model(m.head, m.arch, self.label_set.num_classes, init, transfer=m.transfer)

    def build_trained_model(self) -> nn.Module:
        """The architecture this config trained, randomly initialised: what a fine-tuned checkpoint loads into."""
        return self.build_model("scratch")[0]

    def checkpoint_extras(self, model: nn.Module) -> dict:
        extras = {"arch": model.arch, "class_names": self.class_names, "backbone": model.backbone_state()}
        if isinstance(model, SemSegUNet):  # the width of the "backbone" entry's last conv: the classes
            extras["feature_dim"] = model.backbone.feature_dim
        return extras

    # -- training
    def loss(self, model: nn.Module, batch: dict, device: torch.device) -> dict[str, torch.Tensor]:
        logits = model(batch["image"].to(device, non_blocking=True))
        label = batch["label"].to(device, non_blocking=True)
        if not (label != IGNORE_INDEX).any():  # an all-ignored batch: zero loss that keeps the graph
            return {"loss_ce": logits.sum() * 0.0}
        return {"loss_ce": F.cross_entropy(logits.float(), label, ignore_index=IGNORE_INDEX)}

    # -- evaluation
    @torch.no_grad()
    def evaluate_partial(
        self, model: nn.Module, loader, device: torch.device, *, amp: torch.dtype | None = None, progress: bool = True
    ) -> torch.Tensor:
        k = self.label_set.num_classes
        conf = torch.zeros(k, k, dtype=torch.int64, device=device)
        for batch in tqdm(loader, desc="eval", disable=not progress, leave=False):
            with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
                logits = model(batch["image"].to(device, non_blocking=True))
            conf += confusion_matrix(logits.argmax(1), batch["label"].to(device), k, IGNORE_INDEX)
        return conf.cpu()

    def merge(self, partials: list) -> dict:
        conf = sum(partials[1:], partials[0].clone())
        scores = semseg_scores(conf, self.class_names)
        scores["confusion"] = conf.tolist()
        return scores

    @staticmethod
    def metric(scores: dict, key: str) -> float | None:
        return scores.get(key)

    @staticmethod
    def format_scores(scores: dict) -> str:
        return format_semseg_table(scores)

    @staticmethod
    def headline(scores: dict) -> str:
        def pct(v):
            return "n/a" if v is None else f"{100 * v:.2f} %"

        return f"mIoU {pct(scores['miou'])}, pixel acc {pct(scores['pixel_acc'])}"
