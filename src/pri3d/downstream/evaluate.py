"""Evaluation of fine-tuned models, apart from training: the task registry (:func:`make_task`), the one
evaluation pass (:func:`evaluate_model`, which the training loop also calls at every evaluation), reading
a fine-tuned checkpoint back (:func:`load_finetuned`, :func:`load_finetuned_model`) and scoring it on a
split (:func:`evaluate_finetuned`, ``pri3d evaluate``)."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch.utils.data import Subset

from pri3d.config import build_saved
from pri3d.downstream.config import FinetuneConfig
from pri3d.engine import distributed as D
from pri3d.engine.checkpoint import CheckpointManager, load_checkpoint
from pri3d.engine.run_dir import require_finished
from pri3d.engine.sampling import make_loader
from pri3d.errors import ConfigError
from pri3d.models.formats import FINETUNE_FORMAT

__all__ = [
    "TASK_CLASSES",
    "make_task",
    "unwrap",
    "evaluate_model",
    "load_finetuned",
    "load_finetuned_model",
    "evaluate_finetuned",
]

# task name -> (module, class); imported on use, so semantic segmentation never imports detection
TASK_CLASSES = {
    "semseg": ("pri3d.downstream.semseg", "SemSegTask"),
    "detect": ("pri3d.downstream.detection", "DetectTask"),
}


def make_task(cfg: FinetuneConfig):
    """The task object of ``cfg.task`` (a ``ConfigError`` for an unknown one)."""
    import importlib

    if cfg.task not in TASK_CLASSES:
        raise ConfigError(f"unknown task {cfg.task!r}; choose {', '.join(TASK_CLASSES)}")
    module, name = TASK_CLASSES[cfg.task]
    return getattr(importlib.import_module(module), name)(cfg)


def unwrap(model):
    """The model inside a DDP wrapper (or the model itself)."""
    return model.module if hasattr(model, "module") else model


def evaluate_model(
    task, model, dataset, device, *, batch_size: int, workers: int = 0, amp=None, progress: bool = True
) -> dict:
    """Evaluate on ``dataset`` (sharded over DDP ranks, merged on every rank). Returns the task's scores.
    ``amp``: the autocast dtype, or None for full precision."""
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    shard = Subset(dataset, list(range(rank, len(dataset), world)))
    loader = make_loader(shard, task.collate, device=device, workers=workers, batch_size=batch_size, seed=0)
    m = unwrap(model)
    was_training = m.training
    m.eval()
    partial = task.evaluate_partial(m, loader, device, amp=amp, progress=progress)
    m.train(was_training)
    if world > 1:
        gathered = [None] * world
        torch.distributed.all_gather_object(gathered, partial)
        partials = gathered
    else:
        partials = [partial]
    return task.merge(partials)


def load_finetuned(path) -> tuple[dict, FinetuneConfig]:
    """Read a fine-tuned checkpoint (a file, or a run folder: its ``best.pt`` if present, else the
    newest ``checkpoints/ckpt_*.pt``). Returns ``(checkpoint dict, config)``."""
    from pri3d.errors import DataError

    p = Path(path)
    require_finished(p)
    if p.is_dir():
        found = ckpt_path = None
        if (p / "best.pt").is_file():
            ckpt_path = p / "best.pt"
        else:
            found = CheckpointManager(p / "checkpoints").latest()
            if found is None:
                raise DataError(f"{p}: no best.pt and no checkpoints/ckpt_*.pt")
        state = found[0] if found else load_checkpoint(ckpt_path)
    else:
        state = load_checkpoint(p)
    if state.get("format") != FINETUNE_FORMAT:
        raise DataError(
            f"{path}: not a fine-tuned checkpoint (format {state.get('format')!r}, expected {FINETUNE_FORMAT!r})"
        )
    return state, build_saved(FinetuneConfig, state["config"])


def load_finetuned_model(path):
    """Rebuild a fine-tuned model from its checkpoint (without reading the original init file).
    Returns ``(model in eval mode, task, config, checkpoint dict)``; the task's datasets follow
    ``config.data``, which callers may change before building one."""
    from pri3d.models.init import load_state_strict

    state, cfg = load_finetuned(path)
    if "feature_dim" in state:
        cfg.model.feature_dim = int(state["feature_dim"])
    cfg.model.transfer = "auto"
    task = make_task(cfg)
    model = task.build_trained_model()
    weights = state["model"]
    if hasattr(model, "upgrade_state_dict"):  # semseg UNet checkpoints of the earlier layout
        weights = model.upgrade_state_dict(weights)
    load_state_strict(model, weights, f"{path} model weights")
    return model.eval(), task, cfg, state


def evaluate_finetuned(
    path,
    *,
    data: str | None = None,
    format: str | None = None,
    split: str = "val",
    max_images: int | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    progress: bool = True,
) -> dict:
    """Evaluate a fine-tuned checkpoint on ``split`` ("val", "train" or a split file) of its dataset or
    of ``data``. Returns ``{"task", "split", "checkpoint", "step", "scores", "images", "data"}``."""
    if (max_images is not None and max_images < 1) or (batch_size is not None and batch_size < 1):
        raise ConfigError(f"--max-images and --batch-size must be >= 1, got {max_images} and {batch_size}")
    D.check_device(device, "--device")
    model, task, cfg, state = load_finetuned_model(path)
    if data is not None:
        cfg.data.path = str(data)
        cfg.data.format = format
        cfg.data.train_split = cfg.data.val_split = None
    elif format is not None:
        cfg.data.format = format
    if max_images is not None:
        cfg.data.max_val_images = max_images
    if split in ("train", "val"):
        which, split_file = split, (cfg.data.train_split if split == "train" else cfg.data.val_split)
    else:  # a split file
        which, split_file = "val", split
    ds = task.dataset(which, split=split_file, train=False, progress=progress)
    dev = D.init_distributed(device).device
    model.to(dev)
    t0 = time.time()
    scores = evaluate_model(
        task,
        model,
        ds,
        dev,
        batch_size=batch_size or max(1, min(cfg.train.batch_size, 8)),
        workers=cfg.data.workers,
        progress=progress,
    )
    return {
        "task": task.name,
        "split": split,
        "checkpoint": str(path),
        "step": state.get("step"),
        "images": len(ds),
        "seconds": round(time.time() - t0, 3),
        "data": ds.stats.to_dict(),
        "scores": scores,
    }
