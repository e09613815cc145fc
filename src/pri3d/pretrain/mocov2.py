"""MoCo v2 on scan frames: the paper's instance-discrimination baseline, as pre-training mode ``mocov2``.

The algorithm is MoCo's (He et al. 2020; v2: Chen et al. 2020), on the same 2D backbone as Pri3D:

* query encoder: ``backbone.encoder`` (the ResNet of the ResNet-UNet), global average pooling of
  layer4 (C5 channels), then an MLP head ``Linear(C5, mlp_dim) - ReLU - Linear(mlp_dim, out_dim)``;
  the UNet decoder is not used and stays frozen (``requires_grad=False``: no gradient, no weight
  decay, no DDP bucket), so only the encoder is trained: fine-tune with ``model.transfer=encoder``;
* key encoder: a copy of encoder + head, updated only by momentum,
  ``theta_k <- m * theta_k + (1 - m) * theta_q``, at the start of every training forward, before the
  keys are computed (parameters only; its BatchNorm statistics are its own, as in MoCo). It is
  copied from the query encoder at the first training forward, i.e. after the loop's Stage-I init
  (with gradient accumulation over A micro-batches it is updated per micro-batch with ``m ** (1/A)``,
  which is exactly ``m`` per optimizer step);
* queue: ``(K, out_dim)`` L2-normalised keys of past batches with a write pointer, both registered
  buffers (in the checkpoint: resume is exact); initialised with normalised Gaussian noise, as MoCo;
* loss: ``logits = [q.k+, q.queue^T] / T``, cross-entropy with label 0 (in float32, also under
  autocast); then the batch's keys are enqueued (the oldest dequeued, wrapping around the end). The
  queue and the loss are :mod:`pri3d.losses.moco`; the mode is registered in :mod:`pri3d.pretrain.modes`.
* shuffle-BN: keys are computed on a permutation of the batch, split into BatchNorm groups, and
  un-permuted, so that a query and its positive key never get BatchNorm statistics from the same set
  of samples (otherwise the network can recognise its positive by the batch statistics). Under DDP
  the key images are gathered from all processes and permuted globally (MoCo's multi-GPU shuffle-BN)
  and the keys gathered from all processes are enqueued. Within one process the micro-batch is also
  split into groups of ``moco.bn_group_size`` samples (queries and keys alike, BatchNorm statistics
  per group) to emulate MoCo's 32 images per GPU on fewer devices; with one group per process and
  one process, the shuffle is a no-op (as MoCo on a single GPU). The permutation comes from a
  generator seeded by (seed, number of training forwards), so it needs no broadcast and repeats
  exactly on resume.

Data: every frame of the training pairs' scenes that appears in a mined pair (deduplicated), each
sample two independent MoCo v2 augmentations of it (:class:`FrameDataset`): RandomResizedCrop (scale
``moco.crop_scale``, aspect ratio 3/4..4/3 relative to the training aspect) to the training
resolution, horizontal flip p = 0.5, then :class:`~pri3d.pretrain.augment.ColorAugment` (jitter
0.4/0.4/0.4/0.1 p = 0.8, grayscale p = 0.2, blur sigma 0.1..2 p = 0.5, ImageNet normalisation).
Randomness comes from the ``(index, seed)`` key, as :class:`~pri3d.pretrain.data.PairDataset`.

``forward(batch)`` returns ``{"moco": loss}`` and sets ``stats`` (``moco_acc1``: top-1 accuracy of the
positive among the 1 + K logits of this process' queries; ``moco_keys``: keys enqueued).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from pri3d.data.io import resize_color
from pri3d.engine.seed import derive_seed
from pri3d.errors import ConfigError, DataError
from pri3d.losses.moco import enqueue, moco_logits, moco_loss, new_queue
from pri3d.models.resnet_unet import ResNetEncoder, ResNetUNet
from pri3d.pairs.store import Pair, PreparedData
from pri3d.pretrain.augment import ColorAugment

__all__ = [
    "MoCoV2",
    "MLPHead",
    "FrameDataset",
    "collate_frames",
    "random_resized_crop_box",
    "momentum_update",
]


# -- pure pieces (tested on tiny tensors) ---------------------------------------------------------


@torch.no_grad()
def momentum_update(key_params: list[torch.Tensor], query_params: list[torch.Tensor], m: float) -> None:
    """In place: ``k <- m * k + (1 - m) * q`` for each pair of tensors (MoCo's key-encoder update)."""
    if len(key_params) != len(query_params):
        raise ValueError(f"{len(key_params)} key tensors but {len(query_params)} query tensors")
    if key_params:
        torch._foreach_mul_(key_params, m)
        torch._foreach_add_(key_params, query_params, alpha=1.0 - m)


def random_resized_crop_box(
    height: int, width: int, scale, ratio, g: torch.Generator, aspect: float = 1.0
) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop box, from an explicit generator: ``(top, left, h, w)``.

    Area fraction uniform in ``scale``, aspect ratio ``w/h = aspect * r`` with ``log r`` uniform in
    ``log ratio`` (``aspect`` = the output's W/H, so the crop is resized to a non-square output with
    the same distortions as MoCo's square crops), 10 tries, then a centre crop with the closest
    allowed aspect ratio."""
    area = height * width
    lo, hi = math.log(ratio[0]), math.log(ratio[1])

    def u(a, b):
        return a + (b - a) * float(torch.rand((), generator=g))

    for _ in range(10):
        target = area * u(scale[0], scale[1])
        r = aspect * math.exp(u(lo, hi))
        w = int(round(math.sqrt(target * r)))
        h = int(round(math.sqrt(target / r)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (), generator=g))
            left = int(torch.randint(0, width - w + 1, (), generator=g))
            return top, left, h, w
    in_ratio = width / height
    rmin, rmax = aspect * ratio[0], aspect * ratio[1]
    if in_ratio < rmin:
        w, h = width, max(1, int(round(width / rmin)))
    elif in_ratio > rmax:
        h, w = height, max(1, int(round(height * rmax)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


# -- data -----------------------------------------------------------------------------------------


class FrameDataset(Dataset):
    """Single frames of the given pairs (deduplicated, sorted); ``dataset[(index, seed)]`` ->
    ``{"key": (scene, frame), "image_q", "image_k"}``, two ``(3, H, W)`` float32 normalised views.

    Args:
        prepared: the prepared directory.
        pairs: the pairs whose frames are used.
        resolution: ``(H, W)`` of the views.
        crop_scale: RandomResizedCrop area fraction range.
        crop_ratio: aspect-ratio range relative to W/H.
        augment: MoCo v2 augmentations (False: the full frame, resized and normalised, twice).
    """

    def __init__(
        self,
        prepared: PreparedData,
        pairs: list[Pair],
        *,
        resolution=(240, 320),
        crop_scale=(0.2, 1.0),
        crop_ratio=(3 / 4, 4 / 3),
        hflip: bool = True,
        augment: bool = True,
    ):
        frames = sorted({(p.scene, int(f)) for p in pairs for f in (p.frame_a, p.frame_b)})
        if not frames:
            raise DataError(f"{prepared.root}: no frames to train on (no pairs: check the splits and pairs.csv)")
        self.prepared = prepared
        self.frames = frames
        self.size = (int(resolution[0]), int(resolution[1]))
        self.crop_scale = tuple(float(s) for s in crop_scale)
        self.crop_ratio = tuple(float(r) for r in crop_ratio)
        self.hflip = hflip
        self.augment = augment
        self.color = ColorAugment(enabled=augment)
        self.scenes = prepared.scenes()
        missing = sorted({s for s, _ in frames} - set(self.scenes))
        if missing:
            raise DataError(
                f"{prepared.root}: pairs refer to scenes missing from {prepared.input_path}: {', '.join(missing[:5])}"
            )

    def __len__(self) -> int:
        return len(self.frames)

    def view(self, color: np.ndarray, g: torch.Generator) -> torch.Tensor:
        """One augmented view of ``(Hc, Wc, 3)`` uint8 -> ``(3, H, W)`` float32, normalised."""
        H, W = self.size
        if self.augment:
            top, left, h, w = random_resized_crop_box(
                color.shape[0], color.shape[1], self.crop_scale, self.crop_ratio, g, aspect=W / H
            )
            color = color[top : top + h, left : left + w]
        img = resize_color(np.ascontiguousarray(color), self.size)
        if self.augment and self.hflip and float(torch.rand((), generator=g)) < 0.5:
            img = img[:, ::-1]  # flips commute with the colour operations that follow
        return self.color(np.ascontiguousarray(img), g)

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, key)
        scene, frame = self.frames[int(index)]
        fr = self.scenes[scene].load_frame(frame, color=True, depth=False, labels=False)
        if fr.color is None:
            raise DataError(f"{scene} frame {frame}: colour missing")
        g = torch.Generator().manual_seed(int(seed))
        return {"key": (scene, frame), "image_q": self.view(fr.color, g), "image_k": self.view(fr.color, g)}


def collate_frames(samples: list[dict]) -> dict:
    """``images`` ``(2B, 3, H, W)``: the B query views, then the B key views; ``num_pairs`` B;
    ``keys`` list of (scene, frame)."""
    return {
        "num_pairs": len(samples),
        "keys": [s["key"] for s in samples],
        "images": torch.stack([s["image_q"] for s in samples] + [s["image_k"] for s in samples]),
    }


# -- the method -----------------------------------------------------------------------------------


class MLPHead(nn.Module):
    """MoCo v2's head on pooled features: ``(N, in_dim) -> (N, out_dim)``, Linear-ReLU-Linear."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))


def _gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` of every process along dim 0 (no gradient); ``x`` itself without DDP."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


class MoCoV2(nn.Module):
    """MoCo v2 on the ResNet-UNet's encoder (see the module docstring)."""

    def __init__(self, cfg):
        super().__init__()
        M = cfg.moco
        if cfg.train.batch_size > M.queue_size:
            raise ConfigError(
                f"moco.queue_size ({M.queue_size}) must be >= train.batch_size ({cfg.train.batch_size}): "
                "every step enqueues the whole batch"
            )
        self.temperature = float(M.temperature)
        # one update per micro-batch: with A micro-batches per optimizer step (the query encoder is the
        # same in all of them), m ** (1 / A) per micro-batch gives exactly m per step
        self.m = float(M.momentum) ** (1.0 / max(1, int(cfg.train.accumulate)))
        self.shuffle_bn, self.bn_group_size = bool(M.shuffle_bn), int(M.bn_group_size)
        self.seed = int(cfg.train.seed)
        self.backbone = ResNetUNet(cfg.model.arch, cfg.model.resolved_feature_dim)
        self.backbone.decoder.requires_grad_(False)  # MoCo trains the encoder only
        c5 = self.backbone.encoder.out_channels[-1]
        hidden = int(M.mlp_dim or c5)
        self.head = MLPHead(c5, hidden, M.out_dim)
        self.key_encoder = ResNetEncoder(cfg.model.arch)
        self.key_head = MLPHead(c5, hidden, M.out_dim)
        self.key_encoder.requires_grad_(False)
        self.key_head.requires_grad_(False)
        self.register_buffer("queue", new_queue(M.queue_size, M.out_dim))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))
        self.register_buffer("num_updates", torch.zeros(1, dtype=torch.long))  # training forwards so far
        self.stats: dict = {}
        self._compiled_q = None  # kept out of the module tree so state_dict keys never change
        self._compiled_k = None

    def compile_backbone(self, **kwargs) -> None:
        object.__setattr__(self, "_compiled_q", torch.compile(self.backbone.encoder, **kwargs))
        object.__setattr__(self, "_compiled_k", torch.compile(self.key_encoder, **kwargs))

    # -- encoders -------------------------------------------------------------------------------
    def _query_params(self) -> list[torch.Tensor]:
        return [*self.backbone.encoder.parameters(), *self.head.parameters()]

    def _key_params(self) -> list[torch.Tensor]:
        return [*self.key_encoder.parameters(), *self.key_head.parameters()]

    def _groups(self, n: int) -> int:
        return 1 if self.bn_group_size <= 0 else max(1, n // self.bn_group_size)

    def _embed(self, encoder, head, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W) -> (N, out_dim)`` unnormalised, BatchNorm statistics per group."""
        outs = []
        for part in torch.tensor_split(x, self._groups(x.shape[0])):
            c5 = encoder(part)[-1]
            outs.append(head(c5.mean(dim=(2, 3))))
        return torch.cat(outs)

    @torch.no_grad()
    def _update_key_encoder(self) -> None:
        if int(self.num_updates[0]) == 0:  # first step: start from the (initialised) query encoder
            self.key_encoder.load_state_dict(self.backbone.encoder.state_dict())  # BN statistics too
            self.key_head.load_state_dict(self.head.state_dict())
        else:
            momentum_update(self._key_params(), self._query_params(), self.m)
        if self.backbone.encoder.conv1.weight.is_contiguous(
            memory_format=torch.channels_last
        ) and not self.key_encoder.conv1.weight.is_contiguous(memory_format=torch.channels_last):
            self.key_encoder.to(memory_format=torch.channels_last)  # follow the loop's layout choice

    @torch.no_grad()
    def _keys(self, im_k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys of this process' images and of all processes (for the queue), both ``(., out_dim)``
        normalised, in the original sample order; computed with shuffle-BN."""
        B = im_k.shape[0]
        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        rank = dist.get_rank() if world > 1 else 0
        x_all = _gather(im_k)  # (world * B, 3, H, W)
        n = x_all.shape[0]
        if self.shuffle_bn:
            g = torch.Generator().manual_seed(derive_seed(self.seed, 3, int(self.num_updates[0])))
            perm = torch.randperm(n, generator=g).to(im_k.device)
        else:
            perm = torch.arange(n, device=im_k.device)
        mine = x_all[perm[rank * B : (rank + 1) * B]]
        if im_k.is_contiguous(memory_format=torch.channels_last):
            mine = mine.contiguous(memory_format=torch.channels_last)
        enc = self._compiled_k if self._compiled_k is not None else self.key_encoder
        k = F.normalize(self._embed(enc, self.key_head, mine).float(), dim=1)
        k_shuffled = _gather(k)  # row i is the key of sample perm[i]
        k_all = torch.empty_like(k_shuffled)
        k_all[perm] = k_shuffled
        return k_all[rank * B : (rank + 1) * B], k_all

    # -- forward --------------------------------------------------------------------------------
    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        images = batch["images"]
        B = int(batch["num_pairs"])
        im_q, im_k = images[:B], images[B:]
        enc = self._compiled_q if self._compiled_q is not None else self.backbone.encoder
        q = self._embed(enc, self.head, im_q)
        with torch.no_grad():
            if self.training:
                self._update_key_encoder()  # before computing the keys, as MoCo
            k, k_all = self._keys(im_k)
        with torch.autocast(device_type=images.device.type, enabled=False):  # the loss in float32
            q = F.normalize(q.float(), dim=1)
            logits = moco_logits(q, k, self.queue.clone().detach(), self.temperature)
            loss = moco_loss(logits)
        if self.training:
            enqueue(self.queue, self.queue_ptr, k_all)
            self.num_updates += 1
        with torch.no_grad():
            acc = float((logits.argmax(dim=1) == 0).float().mean()) if B else float("nan")
        self.stats = {"moco_acc1": acc, "moco_keys": int(k_all.shape[0])}
        return {"moco": loss}
