"""Fine-tuning configuration (dataclasses). Presets: ``pri3d/presets/finetune/*.yaml``.

Build one with ``pri3d.config.resolve(FinetuneConfig, "paper-semseg", ["optim.lr=0.02"], values={"data.path": D})``;
``pri3d finetune`` builds through :func:`resolve_finetune_config`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import ClassVar

from pri3d.config import resolve
from pri3d.downstream.fractions import FRACTION_BY, check_fraction
from pri3d.engine.config import TrainConfig as SharedTrainConfig
from pri3d.engine.optim import OptimConfig
from pri3d.errors import ConfigError
from pri3d.models.resnet_unet import ARCHS

__all__ = [
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainConfig",
    "FinetuneConfig",
    "TASKS",
    "resolve_finetune_config",
]

TASKS = ("semseg", "detect")


@dataclass
class DataConfig:
    path: str = ""  # dataset path (--data)
    format: str | None = None  # reader name (scannet, nyuv2, ...); autodetected when null
    train_split: str | None = None  # split file; null = DIR/splits/train.txt, DIR/scannetv2_train.txt, NYUv2 train
    val_split: str | None = None  # split file; null = DIR/splits/val.txt, DIR/scannetv2_val.txt, NYUv2 test
    label_set: str = "scannet20"  # semseg: scannet20 | nyu40 | nyu13
    instance_set: str = "scannet18"  # detect: scannet18 | nyu9
    instance_format: str = "separate"  # separate (instance PNG + label PNG) | combined (label*1000+instance)
    min_mask_area: int = 1000  # px at the label maps' own resolution (official: 1000 at 640x480)
    resolution: list[int] = field(default_factory=lambda: [240, 320])  # H, W the network sees (and is scored at)
    hflip: bool = False  # random horizontal flip when training
    fraction: float = 1.0  # data-efficient subset of the training set, in (0, 1]
    fraction_by: str = "scene"  # scene (official) | image
    max_val_images: int = 0  # evaluate on at most this many val images (evenly spaced); 0 = all
    workers: int = 2  # DataLoader workers
    scan_workers: int = 4  # threads for the one-off label scan

    ALIASES: ClassVar[dict[str, str]] = {"root": "path", "image_size": "resolution", "num_workers": "workers"}

    def dataset_options(self, train: bool, *, seed: int, progress: bool) -> dict:
        """The keyword arguments every task's dataset takes from these settings (augmentation and the
        label fraction when training, the validation cap otherwise)."""
        return {
            "train": train,
            "hflip": self.hflip,
            "fraction": self.fraction if train else 1.0,
            "fraction_by": self.fraction_by,
            "seed": seed,
            "scan_workers": self.scan_workers,
            "progress": progress,
            "max_images": 0 if train else self.max_val_images,
        }

    def validate(self) -> None:
        check_fraction(self.fraction)
        if self.fraction_by not in FRACTION_BY:
            raise ConfigError(f"data.fraction_by must be one of {', '.join(FRACTION_BY)}, got {self.fraction_by!r}")
        if len(self.resolution) != 2 or min(self.resolution) < 16 or any(v % 4 for v in self.resolution):
            raise ConfigError(f"data.resolution must be [H, W], multiples of 4 and >= 16, got {self.resolution}")
        if self.instance_format not in ("separate", "combined"):
            raise ConfigError(f"data.instance_format must be separate or combined, got {self.instance_format!r}")


@dataclass
class ModelConfig:
    arch: str = "resnet18"  # resnet18 | resnet34 | resnet50 | resnet101
    head: str = ""  # semseg: unet (default) | deeplabv3; detect: maskrcnn (default)
    feature_dim: int = 64  # unused: the semseg UNet's classifier replaces the decoder's last 1x1 conv (official)
    transfer: str = "auto"  # semseg unet: auto | encoder | encoder+decoder
    # detection (torchvision Mask R-CNN, ResNet-FPN)
    norm: str = "auto"  # frozen_bn | bn | auto (frozen with pre-trained weights, bn from scratch)
    trainable_layers: int = -1  # 0..5 ResNet stages trained; -1 = 3 with pre-trained weights, 5 from scratch
    fpn_channels: int = 256
    anchor_sizes: list[int] = field(default_factory=lambda: [32, 64, 128, 256, 512])
    min_size: list[int] = field(
        default_factory=list
    )  # Mask R-CNN resize (train: random pick, test: last); [] = keep data.resolution
    max_size: int = 0  # 0 = max(data.resolution)
    rpn_batch_size_per_image: int = 256
    box_batch_size_per_image: int = 512
    rpn_pre_nms_top_n_train: int = 2000
    rpn_post_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_test: int = 1000
    box_score_thresh: float = 0.05
    box_detections_per_img: int = 100

    def validate(self) -> None:
        if self.transfer not in ("auto", "encoder", "encoder+decoder"):
            raise ConfigError(f"model.transfer must be auto, encoder or encoder+decoder, got {self.transfer!r}")
        if self.norm not in ("auto", "bn", "frozen_bn"):
            raise ConfigError(f"model.norm must be auto, bn or frozen_bn, got {self.norm!r}")
        if len(self.anchor_sizes) != 5:
            raise ConfigError(f"model.anchor_sizes needs 5 sizes (FPN levels P2-P6), got {self.anchor_sizes}")
        if not -1 <= self.trainable_layers <= 5:
            raise ConfigError(f"model.trainable_layers must be -1..5, got {self.trainable_layers}")


@dataclass
class TrainConfig(SharedTrainConfig):
    """Fine-tuning's ``train`` section: the settings both phases share (:class:`pri3d.engine.config.TrainConfig`:
    ``batch_size``, ``log_every``, ``ckpt_every``, ``keep_checkpoints``, ``amp``, ``device``; every count in
    optimizer steps, here one iteration each) with fine-tuning's defaults, and its own."""

    epochs: int = 80
    steps: int = 0  # > 0: train exactly this many iterations (overrides epochs)
    batch_size: int = 64  # global batch (split over DDP ranks)
    eval_every_epochs: int = 1  # evaluate every N epochs (and always at the end); 0 = only at the end
    ckpt_every: int = 0  # and at every evaluation and the end (0 = only there)
    keep_checkpoints: int = 2
    log_every: int = 10
    best_metric: str = ""  # "" = the task's (semseg: miou, detect: bbox.AP)

    # train.eval_every was fine-tuning's name of eval_every_epochs: in pre-training, eval_every counts steps
    ALIASES: ClassVar[dict[str, str]] = {
        "iters": "steps",
        "keep": "keep_checkpoints",
        "eval_every": "eval_every_epochs",
    }
    ALIAS_NOTES: ClassVar[dict[str, str]] = {"eval_every": "the same count of epochs"}

    @staticmethod
    def upgrade_legacy(d: dict, where: str) -> dict:
        if isinstance(d.get("amp"), bool):  # before 0.2: a bool, true = CUDA fp16 autocast
            warnings.warn(
                f"config {where}amp: {str(d['amp']).lower()} is deprecated; use {where}amp: "
                f"{'fp16' if d['amp'] else 'off'}",
                FutureWarning,
                stacklevel=5,
            )
            d["amp"] = "fp16" if d["amp"] else "off"
        return d

    def validate(self) -> None:
        super().validate()
        if self.steps < 0 or self.epochs < 0 or (self.epochs < 1 and self.steps < 1):
            raise ConfigError(
                f"train.steps must be >= 1, or 0 to train train.epochs (>= 1) epochs; got steps={self.steps}, "
                f"epochs={self.epochs}"
            )
        if self.eval_every_epochs < 0:
            raise ConfigError(
                f"train.eval_every_epochs must be >= 0 (0 = only at the end), got {self.eval_every_epochs}"
            )


@dataclass
class FinetuneConfig:
    task: str = "semseg"  # semseg | detect
    init: str = "scratch"  # scratch | imagenet | path to a pri3d/torchvision/MoCo checkpoint
    seed: int = 0
    out: str = "runs/finetune"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    PRESET_GROUP: ClassVar[str] = "finetune"  # presets: pri3d/presets/finetune/ (pri3d.config.resolve)

    def validate(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.model.arch not in ARCHS:
            raise ConfigError(f"model.arch must be one of {', '.join(ARCHS)}, got {self.model.arch!r}")
        heads = {"semseg": ("unet", "deeplabv3"), "detect": ("maskrcnn",)}[self.task]
        if self.model.head == "":
            self.model.head = heads[0]
        if self.model.head not in heads:
            raise ConfigError(f"model.head={self.model.head!r} is not a {self.task} head; choose {', '.join(heads)}")


def resolve_finetune_config(
    task: str,
    preset: str | None,
    overrides: list[str],
    *,
    data: str,
    format: str | None = None,
    fraction: float | None = None,
    fraction_by: str | None = None,
    init: str | None = None,
    seed: int | None = None,
    out: str | None = None,
) -> FinetuneConfig:
    """The config of ``pri3d finetune TASK`` (built by :func:`pri3d.config.resolve`): ``preset`` (default
    ``paper-<task>``) and the ``key=value`` ``overrides``, then the options that are given (None: the
    preset's value). What it adds to the builder: the preset must be of ``task`` (a ``ConfigError``
    otherwise), and ``out`` defaults to the preset's, and ``runs/finetune`` (or none) to
    ``runs/finetune-<task>``."""
    options = {
        "data.path": data,
        "data.format": format,
        "data.fraction": fraction,
        "data.fraction_by": fraction_by,
        "init": init,
        "seed": seed,
        "out": out or None,
    }
    values = {k: v for k, v in options.items() if v is not None}
    cfg = resolve(FinetuneConfig, preset or f"paper-{task}", overrides, values=values, fixed={"task": task})
    if cfg.out in ("", "runs/finetune"):
        cfg.out = f"runs/finetune-{task}"
    return cfg
