"""Detection and instance segmentation: torchvision Mask R-CNN on a ResNet-FPN backbone whose ResNet
(only the encoder, as in the paper) comes from a pri3d checkpoint, and the task plugged into the
fine-tune loop.

With pre-trained weights the ResNet uses frozen BatchNorm and trains its last 3 stages (detectron2's
and torchvision's practice); from scratch it uses ordinary BatchNorm and trains everything
(``model.norm`` / ``model.trainable_layers`` override both).
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d
from tqdm import tqdm

from pri3d.downstream.classes import get_instance_set
from pri3d.downstream.datasets import InstanceDataset, open_split
from pri3d.downstream.metrics import coco_evaluate, format_coco_table, mask_to_rle
from pri3d.models.init import imagenet_state_dict, load_state_strict, read_weights
from pri3d.models.resnet_unet import ARCHS

__all__ = ["build_maskrcnn", "DetectTask"]

_STAGES = ("layer4", "layer3", "layer2", "layer1", "conv1")


def _adapt_bn_keys(sd: dict, module: nn.Module) -> dict:
    """Reconcile ``num_batches_tracked`` between BatchNorm and FrozenBatchNorm state dicts."""
    own = module.state_dict()
    out = {k: v for k, v in sd.items() if not (k.endswith("num_batches_tracked") and k not in own)}
    for k in own:
        if (
            k.endswith("num_batches_tracked")
            and k not in out
            and k.replace("num_batches_tracked", "running_mean") in out
        ):
            out[k] = torch.tensor(0, dtype=torch.long)
    return out


def build_maskrcnn(
    arch: str,
    num_classes: int,
    init: str = "scratch",
    *,
    image_size=(480, 640),
    norm: str = "auto",
    trainable_layers: int = -1,
    fpn_channels: int = 256,
    anchor_sizes=(32, 64, 128, 256, 512),
    min_size=(),
    max_size: int = 0,
    **kwargs,
) -> tuple[nn.Module, str]:
    """torchvision Mask R-CNN with ``num_classes`` foreground classes (+ background).

    ``init``: ``scratch``, ``imagenet`` or a weights file (pri3d checkpoint, torchvision, MoCo): only
    its encoder is loaded, strictly (mismatched keys raise :class:`~pri3d.models.init.InitError`).
    ``min_size``/``max_size``: Mask R-CNN's own resize; empty/0 keeps ``image_size`` (H, W) as is.
    Extra ``kwargs`` go to :class:`torchvision.models.detection.MaskRCNN` (rpn/box settings)."""
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
    pretrained = init not in ("scratch", "", None)
    frozen = norm == "frozen_bn" or (norm == "auto" and pretrained)
    if trainable_layers < 0:
        trainable_layers = 3 if pretrained else 5
    resnet = getattr(torchvision.models, arch)(weights=None, norm_layer=FrozenBatchNorm2d if frozen else nn.BatchNorm2d)
    c5 = ARCHS[arch]
    backbone = BackboneWithFPN(
        resnet,
        return_layers={"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"},
        in_channels_list=[c5 // 8, c5 // 4, c5 // 2, c5],
        out_channels=fpn_channels,
        extra_blocks=LastLevelMaxPool(),
    )
    desc = "scratch (random init)"
    if pretrained:
        if init == "imagenet":
            sd, what = imagenet_state_dict(arch), f"ImageNet {arch} weights"
        else:
            sd, _, kind = read_weights(init)
            what = f"{init} ({kind}) encoder"
        load_state_strict(backbone.body, _adapt_bn_keys(sd, backbone.body), what)
        desc = what
    train_prefixes = _STAGES[:trainable_layers] + (("bn1",) if trainable_layers == 5 else ())
    for name, p in backbone.body.named_parameters():
        if not name.startswith(train_prefixes):
            p.requires_grad_(False)
    h, w = int(image_size[0]), int(image_size[1])
    min_size = tuple(int(s) for s in min_size) or (min(h, w),)
    max_size = int(max_size) or max(h, w)
    anchors = AnchorGenerator(tuple((int(s),) for s in anchor_sizes), ((0.5, 1.0, 2.0),) * len(anchor_sizes))
    model = MaskRCNN(
        backbone,
        num_classes=num_classes + 1,
        min_size=min_size,
        max_size=max_size,
        rpn_anchor_generator=anchors,
        **kwargs,
    )
    model.arch = arch
    norm_name = "frozen BN" if frozen else "BN"
    return model, f"Mask R-CNN {arch}-FPN ({norm_name}, {trainable_layers} trainable stages), encoder: {desc}"


class DetectTask:
    """Mask R-CNN detection / instance segmentation plugged into the fine-tune loop."""

    name = "detect"
    default_best_metric = "bbox.AP"
    # DDP: every trainable parameter gets a gradient every step, even on images without instances
    # (torchvision's mask loss is then ``mask_logits.sum() * 0``), so no unused-parameter search.
    find_unused_parameters = False

    @staticmethod
    def scalars(scores: dict) -> dict:
        """The scores logged and kept in the history (flat numbers)."""
        return {f"{t}_{k}": scores[t][k] for t in ("bbox", "segm") for k in ("AP", "AP50", "AP75")}

    def __init__(self, cfg):
        self.cfg = cfg
        self.instance_set = get_instance_set(cfg.data.instance_set)
        self.class_names = list(self.instance_set.class_names)

    def dataset(self, which: str, *, split=None, train: bool = False, progress: bool = True) -> InstanceDataset:
        d = self.cfg.data
        scenes = open_split(d.path, which, format=d.format, split=split)
        return InstanceDataset(
            scenes,
            self.instance_set,
            tuple(d.resolution),
            convention=d.instance_format,
            min_area=d.min_mask_area,
            **d.dataset_options(train, seed=self.cfg.seed, progress=progress),
        )

    collate = staticmethod(InstanceDataset.collate)

    def build_model(self, init: str) -> tuple[nn.Module, str]:
        m = self.cfg.model
        return build_maskrcnn(
            m.arch,
            self.instance_set.num_classes,
            init,
            image_size=self.cfg.data.resolution,
            norm=m.norm,
            trainable_layers=m.trainable_layers,
            fpn_channels=m.fpn_channels,
            anchor_sizes=m.anchor_sizes,
            min_size=m.min_size,
            max_size=m.max_size,
            rpn_batch_size_per_image=m.rpn_batch_size_per_image,
            box_batch_size_per_image=m.box_batch_size_per_image,
            rpn_pre_nms_top_n_train=m.rpn_pre_nms_top_n_train,
            rpn_post_nms_top_n_train=m.rpn_post_nms_top_n_train,
            rpn_pre_nms_top_n_test=m.rpn_pre_nms_top_n_test,
            rpn_post_nms_top_n_test=m.rpn_post_nms_top_n_test,
            box_score_thresh=m.box_score_thresh,
            box_detections_per_img=m.box_detections_per_img,
        )

    def build_trained_model(self) -> nn.Module:
        """The architecture this config trained, randomly initialised: what a fine-tuned checkpoint loads into.
        ``model.norm: auto`` is resolved as it was when training started from ``init``."""
        if self.cfg.model.norm == "auto":
            self.cfg.model.norm = "bn" if self.cfg.init in ("scratch", "", None) else "frozen_bn"
        return self.build_model("scratch")[0]

    def checkpoint_extras(self, model: nn.Module) -> dict:
        body = model.backbone.body
        sd = body.state_dict()
        for k in list(sd):  # FrozenBN has no num_batches_tracked; add it so the encoder loads into BN models
            if k.endswith("running_mean"):
                sd.setdefault(k.replace("running_mean", "num_batches_tracked"), torch.tensor(0, dtype=torch.long))
        return {
            "arch": model.arch,
            "class_names": self.class_names,
            "backbone": {f"encoder.{k}": v for k, v in sd.items()},
        }

    @staticmethod
    def _to_device(images, targets, device):
        images = [im.to(device, non_blocking=True) for im in images]
        targets = [
            {k: v.to(device, non_blocking=True) for k, v in t.items() if k in ("boxes", "labels", "masks")}
            for t in targets
        ]
        return images, targets

    def loss(self, model: nn.Module, batch, device: torch.device) -> dict[str, torch.Tensor]:
        images, targets = self._to_device(*batch, device)
        return model(images, targets)

    @torch.no_grad()
    def evaluate_partial(
        self, model: nn.Module, loader, device: torch.device, *, amp: torch.dtype | None = None, progress: bool = True
    ) -> list:
        records = []
        for images, targets in tqdm(loader, desc="eval", disable=not progress, leave=False):
            with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
                outputs = model([im.to(device, non_blocking=True) for im in images])
            for im, t, o in zip(images, targets, outputs):
                h, w = im.shape[-2:]
                masks = (o["masks"][:, 0] > 0.5).cpu().numpy()
                records.append(
                    {
                        "gt": {
                            "image_id": int(t["image_id"]),
                            "height": int(h),
                            "width": int(w),
                            "boxes": t["boxes"].numpy(),
                            "labels": t["labels"].numpy(),
                            "rles": [mask_to_rle(m) for m in t["masks"].numpy()],
                        },
                        "pred": {
                            "image_id": int(t["image_id"]),
                            "boxes": o["boxes"].float().cpu().numpy(),
                            "labels": o["labels"].cpu().numpy(),
                            "scores": o["scores"].float().cpu().numpy(),
                            "rles": [mask_to_rle(m) for m in masks],
                        },
                    }
                )
        return records

    def merge(self, partials: list) -> dict:
        records = sorted((r for p in partials for r in p), key=lambda r: r["gt"]["image_id"])
        return coco_evaluate([r["gt"] for r in records], [r["pred"] for r in records], self.class_names)

    @staticmethod
    def metric(scores: dict, key: str) -> float | None:
        node = scores
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    @staticmethod
    def format_scores(scores: dict) -> str:
        return format_coco_table(scores)

    @staticmethod
    def headline(scores: dict) -> str:
        b, s = scores["bbox"], scores["segm"]
        return (
            f"box AP {b['AP']:.2f} / AP50 {b['AP50']:.2f} / AP75 {b['AP75']:.2f}, "
            f"mask AP {s['AP']:.2f} / AP50 {s['AP50']:.2f} / AP75 {s['AP75']:.2f}"
        )
