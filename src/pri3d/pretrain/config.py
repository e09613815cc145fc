"""Pre-training configuration: dataclasses, filled from YAML presets in ``pri3d/presets/pretrain/``
plus ``key=value`` overrides (see :mod:`pri3d.config`).

Presets: ``paper`` (the paper's optimisation), ``official`` (the authors' scripts: poly schedule,
depth head, RGB voxel features), ``mocov2`` (the MoCo v2 baseline on scan frames), ``cpu-small``
(minutes-long CPU runs), ``cpu-tiny`` (tests). Build one with
``pri3d.config.resolve(PretrainConfig, "cpu-small", ["train.steps=100"])``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from pri3d.engine.config import TrainConfig as SharedTrainConfig
from pri3d.engine.optim import OptimConfig
from pri3d.errors import ConfigError
from pri3d.models.resnet_unet import ARCHS, OFFICIAL_FEATURE_DIM

__all__ = [
    "PretrainConfig",
    "DataConfig",
    "ModelConfig",
    "Model3DConfig",
    "LossConfig",
    "PretrainOptimConfig",
    "TrainConfig",
    "MocoConfig",
    "OFFICIAL_FEATURE_DIM",
]


@dataclass
class DataConfig:
    path: str = ""  # a directory written by `pri3d prepare`
    resolution: list[int] = field(default_factory=lambda: [240, 320])  # training image (H, W)
    train_split: str = "train"  # split file name under <dataset>/splits/, a path, or "all"
    val_split: str = "val"  # held-out scenes for matching recall ("" = none)
    workers: int = 4  # DataLoader workers per process
    prefetch: int = 2  # batches prefetched per worker
    # Geometric augmentation of each view (training only; off in the paper and the official code). The
    # crop only changes the view's intrinsics, so correspondences stay exact.
    crop_scale: list[float] | None = None  # [lo, hi] area fraction of a random resized crop; null = none
    crop_ratio: list[float] = field(default_factory=lambda: [0.75, 4 / 3])  # aspect-ratio jitter of the crop
    flip: bool = False  # random horizontal flip of each view

    def validate(self):
        if len(self.resolution) != 2 or any(int(v) <= 0 or int(v) % 4 for v in self.resolution):
            raise ConfigError(f"data.resolution must be [H, W], both positive multiples of 4, got {self.resolution}")
        if self.workers < 0:
            raise ConfigError("data.workers must be >= 0")
        if self.crop_scale is not None and (
            len(self.crop_scale) != 2 or not 0.0 < self.crop_scale[0] <= self.crop_scale[1] <= 1.0
        ):
            raise ConfigError(f"data.crop_scale must be null or [lo, hi] with 0 < lo <= hi <= 1, got {self.crop_scale}")
        if len(self.crop_ratio) != 2 or not 0.0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ConfigError(f"data.crop_ratio must be [lo, hi] with 0 < lo <= hi, got {self.crop_ratio}")


@dataclass
class ModelConfig:
    arch: str = "resnet50"
    feature_dim: int | None = None  # None: the official width for the arch (OFFICIAL_FEATURE_DIM)
    init: str = "imagenet"  # scratch | imagenet | /path/to/torchvision-or-moco-or-pri3d.pth
    head_dim: int = 64  # projection heads (2D -> 64, 3D -> 64) of the geometric-prior loss
    depth_head: bool = False  # official scripts: on; the paper: not mentioned (off)
    channels_last: bool = True

    def validate(self):
        if self.arch not in ARCHS:
            raise ConfigError(f"model.arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        if self.feature_dim is not None and self.feature_dim <= 0:
            raise ConfigError("model.feature_dim must be positive")

    @property
    def resolved_feature_dim(self) -> int:
        return int(self.feature_dim or OFFICIAL_FEATURE_DIM[self.arch])


@dataclass
class Model3DConfig:
    input: str = "occupancy"  # occupancy (1 channel) | rgb (3 channels, as the official code)
    crop: str = "aabb"  # aabb: the frustum's axis-aligned box (official) | frustum: voxels seen by the frame
    crop_margin: float = 0.0  # metres: grow each face of the box by a random amount up to this (aabb only)
    out_channels: int = 96
    planes: list[int] = field(default_factory=lambda: [32, 64, 128, 256, 256, 128, 96, 96])
    layers: list[int] = field(default_factory=lambda: [2, 3, 4, 6, 2, 2, 2, 2])
    init_dim: int = 32
    stem_kernel: int = 5

    def validate(self):
        if self.input not in ("occupancy", "rgb"):
            raise ConfigError(f"model3d.input must be occupancy or rgb, got {self.input!r}")
        if self.crop not in ("aabb", "frustum"):
            raise ConfigError(f"model3d.crop must be aabb or frustum, got {self.crop!r}")
        if len(self.planes) != 8 or len(self.layers) != 8:
            raise ConfigError("model3d.planes and model3d.layers need 8 entries each")

    @property
    def in_channels(self) -> int:
        return 1 if self.input == "occupancy" else 3


@dataclass
class LossConfig:
    tau: float = 0.4
    num_matches: int = 1024  # K: matches sampled per pair (and per chunk), without replacement
    min_matches: int = 8  # pairs / chunks with fewer matches are skipped (counted)
    cross_pair_negatives: bool = False  # negatives from all pairs of the batch
    symmetric: bool = True  # average a->b and b->a (official)
    depth_threshold: float = 0.05  # metres, view correspondences' depth test (official 0.05)
    voxel_radius: float | None = None  # metres, pixel-to-voxel match radius; None = the prepared voxel size
    view_weight: float = 1.0
    geo_weight: float = 1.0
    depth_weight: float = 1.0

    def validate(self):
        if self.tau <= 0:
            raise ConfigError("loss.tau must be > 0")
        if self.num_matches < 1 or self.min_matches < 1:
            raise ConfigError("loss.num_matches and loss.min_matches must be >= 1")


@dataclass
class PretrainOptimConfig(OptimConfig):
    """The shared optimizer settings (:class:`pri3d.engine.optim.OptimConfig`) with the paper's
    pre-training defaults: SGD lr 0.1, no weight decay, x0.99 every 1000 steps."""

    lr: float = 0.1
    weight_decay: float = 0.0
    schedule: str = "step"
    gamma: float = 0.99


@dataclass
class TrainConfig(SharedTrainConfig):
    """Pre-training's ``train`` section: the settings both phases share (:class:`pri3d.engine.config.TrainConfig`:
    ``batch_size``, ``log_every``, ``ckpt_every``, ``keep_checkpoints``, ``amp``, ``device``; every count in
    optimizer steps) with pre-training's defaults, and its own."""

    steps: int = 60000  # optimizer steps (0: no training; backbone.pth holds the network at initialisation)
    max_minutes: float = 0.0  # stop (evaluate, checkpoint, export) after this much wall time (0 = no limit)
    batch_size: int = 64  # pairs per optimizer step, over all processes and accumulation
    accumulate: int = 1  # gradient accumulation: micro-batch = batch_size / (world * accumulate)
    amp: str = "auto"  # auto (bf16 on GPU, off on CPU) | bf16 | off  (no fp16: it would need loss scaling)
    threads: int = 0  # torch intra-op threads of each training process (0 = torch's default). On a shared
    # CPU, 1 avoids OpenMP barrier stalls that make the many small ops of the sparse 3D net several times slower
    compile: bool = False  # torch.compile the 2D backbone
    seed: int = 0
    ckpt_every: int = 1000  # and at every evaluation and the end (0 = only there)
    eval_every: int = 1000  # optimizer steps between feature-matching recalls on held-out pairs (0 = never)
    eval_pairs: int = 32
    eval_points: int = 512  # sampled pixels of view A per pair
    eval_radius: float = 4.0  # px at feature resolution: the logged recall@r
    tensorboard: bool = True
    progress: bool = True

    AMP_CHOICES: ClassVar[tuple[str, ...]] = ("auto", "bf16", "off")

    def validate(self):
        super().validate()
        if self.steps < 0 or self.accumulate < 1:
            raise ConfigError("train.steps >= 0 and train.accumulate >= 1 are required")
        if self.eval_pairs < 1 or self.eval_points < 1:
            raise ConfigError("train.eval_pairs and train.eval_points must be >= 1")
        if self.eval_every < 0 or self.max_minutes < 0 or self.threads < 0 or not self.eval_radius > 0:
            raise ConfigError(
                "train.eval_every, train.max_minutes and train.threads must be >= 0, train.eval_radius > 0"
            )


@dataclass
class MocoConfig:
    """Mode ``mocov2`` only (MoCo v2's recipe; see :mod:`pri3d.pretrain.mocov2`)."""

    queue_size: int = 65536  # K: negative keys kept in the queue
    temperature: float = 0.2  # T of the InfoNCE logits
    momentum: float = 0.999  # key encoder: theta_k <- m * theta_k + (1 - m) * theta_q
    mlp_dim: int | None = None  # hidden width of the 2-layer MLP head; None = C5 (2048 ResNet-50, 512 ResNet-18)
    out_dim: int = 128  # embedding width
    crop_scale: list[float] = field(default_factory=lambda: [0.2, 1.0])  # RandomResizedCrop area fraction
    shuffle_bn: bool = True  # keys on a permuted batch (across processes under DDP)
    bn_group_size: int = 32  # BatchNorm groups of this many samples per process (MoCo: 32 per GPU); 0 = one

    def validate(self):
        if self.queue_size < 1 or self.out_dim < 1 or (self.mlp_dim is not None and self.mlp_dim < 1):
            raise ConfigError("moco.queue_size, moco.out_dim and moco.mlp_dim must be >= 1")
        if self.temperature <= 0:
            raise ConfigError("moco.temperature must be > 0")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"moco.momentum must be in [0, 1), got {self.momentum}")
        if len(self.crop_scale) != 2 or not 0.0 < self.crop_scale[0] <= self.crop_scale[1] <= 1.0:
            raise ConfigError(f"moco.crop_scale must be [lo, hi] with 0 < lo <= hi <= 1, got {self.crop_scale}")
        if self.bn_group_size < 0:
            raise ConfigError("moco.bn_group_size must be >= 0")


@dataclass
class PretrainConfig:
    mode: str = "view+geo"  # view | geo | view+geo | trivial | mocov2
    out: str = "runs/pretrain"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    model3d: Model3DConfig = field(default_factory=Model3DConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: PretrainOptimConfig = field(default_factory=PretrainOptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    moco: MocoConfig = field(default_factory=MocoConfig)

    PRESET_GROUP: ClassVar[str] = "pretrain"  # presets: pri3d/presets/pretrain/ (pri3d.config.resolve)

    def validate(self):
        from pri3d.pretrain.modes import MODES  # the registry: one entry per mode

        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
