"""The pre-training loop: one plain loop, readable top to bottom.

``train(cfg, resume=...)`` runs ``cfg.train.steps`` optimizer steps of the configured mode and writes
into ``cfg.out``:

* ``config.yaml``: the resolved configuration;
* ``metrics.jsonl`` (+ ``tb/`` when TensorBoard is installed): losses, lr, throughput, skips and the
  held-out feature-matching recall;
* ``checkpoints/ckpt_<step>.pt``: ``{"format": "pri3d-pretrain", "arch", "feature_dim", "mode",
  "backbone", "model", "optimizer", "scheduler", "step", "rng", "config"}``, written atomically,
  the newest ``train.keep_checkpoints`` kept;
* ``backbone.pth``: ``{"format": "pri3d-unet", "arch", "feature_dim", "backbone"}`` at the end.

Exact resume: batches are a pure function of the step (:class:`~pri3d.pretrain.data.StepBatchSampler`)
and per-sample randomness is seeded from (seed, sample index), so ``resume=True`` continues from the
newest loadable checkpoint and reproduces the losses of an uninterrupted run. Schedules are pure
functions of the step. A non-finite loss stops the run with :class:`TrainingError` naming the step,
before any optimizer update or checkpoint of that step. Distributed training: launch with torchrun
(NCCL on GPU, gloo on CPU); only rank 0 logs and writes.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path

import torch
import torch.distributed as dist
import yaml
from torch.utils.data import DataLoader
from tqdm import tqdm

from pri3d.config import resolve, to_dict
from pri3d.data.io import atomic_write_text
from pri3d.data.prepared import PreparedData
from pri3d.distributed import barrier, cleanup, init_distributed
from pri3d.engine.checkpoint import CheckpointManager, atomic_save, capture_rng, restore_rng
from pri3d.engine.logging import MetricLogger
from pri3d.engine.seed import seed_everything
from pri3d.errors import ConfigError, InitError, TrainingError
from pri3d.models.init import init_encoder
from pri3d.pretrain.config import PretrainConfig
from pri3d.pretrain.data import PairDataset, StepBatchSampler, fixed_sample, split_pairs, worker_init
from pri3d.pretrain.matching_eval import matching_recall
from pri3d.pretrain.modes import MODES
from pri3d.pretrain.report import write_curves, write_report

__all__ = ["TrainingError", "load_config", "lr_at", "train", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "pri3d-pretrain"


def load_config(preset: str, overrides: list[str] | None = None) -> PretrainConfig:
    """Preset (name in ``pri3d/presets/pretrain/`` or a YAML path) + ``key=value`` overrides."""
    return resolve(PretrainConfig, preset, overrides, "pretrain")


def lr_at(optim, step: int, total_steps: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based): a pure function of the step.

    ``step``: ``lr * gamma ** (step // step_size)`` (the paper: x0.99 every 1000 steps);
    ``poly``: ``lr * (1 - step / total_steps) ** poly_power`` (the official scripts);
    ``cosine``: ``lr * 0.5 * (1 + cos(pi * step / total_steps))`` (MoCo v2, per step);
    ``constant``; all multiplied by a linear warm-up over ``warmup_steps``.
    """
    if optim.schedule == "step":
        lr = optim.lr * optim.gamma ** (step // optim.step_size)
    elif optim.schedule == "poly":
        lr = optim.lr * max(0.0, 1.0 - step / max(1, total_steps)) ** optim.poly_power
    elif optim.schedule == "cosine":
        lr = optim.lr * 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / max(1, total_steps)))
    else:
        lr = optim.lr
    if optim.warmup_steps > 0 and step < optim.warmup_steps:
        lr *= (step + 1) / optim.warmup_steps
    return lr


def _build_optimizer(cfg: PretrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    o = cfg.optim
    params = [p for p in model.parameters() if p.requires_grad]
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)


def _amp_dtype(cfg: PretrainConfig, device: torch.device):
    a = cfg.train.amp
    if a == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return {"bf16": torch.bfloat16, "off": None}[a]


def _to_device(batch: dict, device, channels_last: bool) -> dict:
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            v = v.to(device, non_blocking=True)
            if k == "images" and channels_last:
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out


def _all_finite(module: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in module.state_dict().values() if t.is_floating_point())


def _reduce(values: dict[str, float], device) -> dict[str, float]:
    if not dist.is_initialized() or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return dict(zip(keys, t.tolist()))


def _eval_dataset(cfg: PretrainConfig, prepared, pairs):
    return PairDataset(
        prepared,
        pairs,
        resolution=cfg.data.resolution,
        view=True,
        num_matches=cfg.train.eval_points,
        depth_threshold=cfg.loss.depth_threshold,
        augment=False,
    )


def train(cfg: PretrainConfig, *, resume: bool = False) -> dict:
    """Run pre-training; returns a summary dict (see the module docstring for the outputs)."""
    T = cfg.train
    if not cfg.data.path:
        raise ConfigError(
            "no data: pass --data PREPARED_DIR (or data.path=...), a directory written by 'pri3d prepare'"
        )
    threads_before = torch.get_num_threads()
    if T.threads > 0:
        torch.set_num_threads(T.threads)
    info = init_distributed(T.device)
    try:
        return _train(cfg, info, resume)
    finally:
        cleanup()
        torch.set_num_threads(threads_before)  # callers (the experiment runner) go on in this process


def _train(cfg: PretrainConfig, info, resume: bool) -> dict:
    T = cfg.train
    dev = info.device
    main = info.is_main
    out = Path(cfg.out)
    manager = CheckpointManager(out / "checkpoints", keep=T.keep_checkpoints)
    spec = MODES[cfg.mode]

    # ---- resume or fresh start ----------------------------------------------------------------
    state, ckpt_path = None, None
    if resume:
        found = manager.latest()
        if found is not None:
            state, ckpt_path = found
            if state.get("format") != CHECKPOINT_FORMAT or state.get("mode") != cfg.mode:
                raise ConfigError(
                    f"{ckpt_path}: a {state.get('format')} checkpoint of mode {state.get('mode')!r} "
                    f"cannot resume a {cfg.mode!r} run"
                )
        elif main:
            print(f"pretrain: --resume given but {manager.dir} holds no checkpoint; starting from step 0")
    elif manager.paths():
        raise ConfigError(
            f"{out} already holds checkpoints ({manager.paths()[-1].name}); pass --resume to continue "
            "that run, or choose another --out"
        )

    # ---- data -----------------------------------------------------------------------------------
    prepared = PreparedData(cfg.data.path)
    train_pairs, val_pairs, note = split_pairs(prepared, cfg.data.train_split, cfg.data.val_split)
    if note and main:
        print(f"pretrain: {note}")
    dataset = spec.build_dataset(cfg, prepared, train_pairs, True)

    # ---- model and optimizer --------------------------------------------------------------------
    seed_everything(T.seed)  # same initial weights on every rank
    method = spec.build_method(cfg)
    init_desc = "resumed"
    if state is None:
        try:
            init_desc = init_encoder(method.backbone.encoder, cfg.model.init, cfg.model.arch)
        except InitError as e:
            raise ConfigError(str(e)) from e
    method.to(dev)
    if cfg.model.channels_last:
        method.backbone.to(memory_format=torch.channels_last)
    optimizer = _build_optimizer(cfg, method)
    start = 0
    if state is not None:
        method.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
        restore_rng(state["rng"])
        if main:
            print(f"pretrain: resumed from {ckpt_path} at step {start}")
            changed = _config_changes(state.get("config") or {}, to_dict(cfg))
            if changed:
                print(
                    f"pretrain: warning: the config differs from the checkpoint's in {', '.join(changed)}; "
                    "the resumed run will not reproduce an uninterrupted one exactly"
                )
    if T.compile:
        method.compile_backbone()
    model = method
    if info.distributed:
        ids = [dev.index] if dev.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(method, device_ids=ids)
    amp_dtype = _amp_dtype(cfg, dev)

    if main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
    logger = MetricLogger(out, enabled=main, tensorboard=T.tensorboard, resume_step=start + 1 if start else 0)

    sampler = StepBatchSampler(
        len(dataset),
        batch_size=T.batch_size,
        world_size=info.world_size,
        rank=info.rank,
        accumulate=T.accumulate,
        seed=T.seed,
        start_step=start,
        steps=T.steps,
    )
    W = cfg.data.workers
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=W,
        collate_fn=spec.collate,
        pin_memory=dev.type == "cuda",
        worker_init_fn=worker_init if W else None,
        prefetch_factor=cfg.data.prefetch if W else None,
        persistent_workers=False,
    )
    evaluating = T.eval_every > 0 and main
    # Fixed random samples (the pairs are sorted by frame: the first ones would all share one frame).
    val_ds = (
        _eval_dataset(cfg, prepared, fixed_sample(val_pairs, T.eval_pairs, T.seed))
        if (val_pairs and evaluating)
        else None
    )
    # A fixed sample of training pairs, evaluated like the held-out ones: the two learning curves part
    # when the network memorises its training views instead of learning to match.
    train_ds = _eval_dataset(cfg, prepared, fixed_sample(train_pairs, T.eval_pairs, T.seed)) if evaluating else None

    def evaluate(step: int) -> dict | None:
        radii = sorted({1.0, 2.0, 4.0, 8.0, float(T.eval_radius)})
        res = None
        for name, ds in (("val", val_ds), ("train", train_ds)):
            if ds is None:
                continue
            r = matching_recall(
                method.backbone,
                ds,
                device=dev,
                seed=T.seed,
                channels_last=cfg.model.channels_last,
                autocast_dtype=amp_dtype,
                radii=radii,
            )
            logger.log(step, **{f"{name}/{k}": v for k, v in r.items()})
            if name == "val":
                res = r
        if main:
            write_curves(out, T.eval_radius)
        return res

    if main:
        print(
            f"pretrain: mode {cfg.mode}, {cfg.model.arch} ({init_desc}), {len(train_pairs)} training pairs, "
            f"{len(val_pairs)} held-out, batch {T.batch_size} x {T.steps} steps on {dev}"
            f"{f' x {info.world_size} processes' if info.distributed else ''}"
        )
    last_eval = init_eval = None
    if start == 0 and main:
        last_eval = init_eval = evaluate(0)  # the same network at initialisation: the baseline to beat
    barrier()

    # ---- the loop -----------------------------------------------------------------------------
    it = iter(loader)
    pbar = tqdm(
        total=T.steps, initial=start, desc=f"pretrain {cfg.mode}", disable=not (main and T.progress), dynamic_ncols=True
    )
    skips: dict[str, int] = {}
    stopped_early = False
    done = start
    last_loss = float("nan")
    rate = None
    t_start = time.perf_counter()
    method.train()
    for step in range(start, T.steps):
        t0 = time.perf_counter()
        lr = lr_at(cfg.optim, step, T.steps)
        for g in optimizer.param_groups:
            g["lr"] = lr
        parts: dict[str, float] = {}
        for micro in range(T.accumulate):
            batch = _to_device(next(it), dev, cfg.model.channels_last)
            sync = model.no_sync() if info.distributed and micro < T.accumulate - 1 else contextlib.nullcontext()
            with sync:
                with torch.autocast(
                    device_type=dev.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None
                ):
                    losses = model(batch)
                loss = sum(losses.values())
                bad = torch.tensor(0.0 if bool(torch.isfinite(loss)) else 1.0, device=dev)
                if info.distributed:
                    dist.all_reduce(bad, op=dist.ReduceOp.MAX)
                if bad.item() > 0:
                    detail = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in losses.items())
                    last = manager.paths()[-1].name if manager.paths() else "none"
                    raise TrainingError(
                        f"non-finite loss at step {step + 1} (micro-batch {micro}; {detail}; pairs "
                        f"{batch['keys'][:4]}). Stopped before updating the weights; last checkpoint: {last}"
                    )
                (loss / T.accumulate).backward()
            for k, v in losses.items():
                parts[k] = parts.get(k, 0.0) + float(v.detach()) / T.accumulate
            for k, v in method.stats.items():
                if k.endswith("skipped"):
                    skips[k] = skips.get(k, 0) + int(v)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        done = step + 1
        dt = time.perf_counter() - t0
        rate = T.batch_size / dt if rate is None else 0.9 * rate + 0.1 * T.batch_size / dt
        last = done == T.steps
        if T.max_minutes > 0 and not last:  # time budget: rank 0 decides, everyone stops at the same step
            flag = torch.tensor(float((time.perf_counter() - t_start) / 60 >= T.max_minutes), device=dev)
            if info.distributed:
                dist.broadcast(flag, 0)
            if flag.item() > 0:
                last = stopped_early = True
        if done % T.log_every == 0 or last:
            parts = _reduce(parts, dev)
            last_loss = sum(parts.values())
            logger.log(
                done,
                loss=last_loss,
                **{f"loss/{k}": v for k, v in parts.items()},
                lr=lr,
                pairs_per_s=rate,
                **{f"skips/{k}": v for k, v in skips.items()},
            )
        pbar.update(1)
        pbar.set_postfix(loss=f"{sum(parts.values()):.4f}", pairs_s=f"{rate:.1f}")
        if main and T.eval_every > 0 and (done % T.eval_every == 0 or last):
            last_eval = evaluate(done)
        if done % T.ckpt_every == 0 or last:
            if main:
                if not _all_finite(method):
                    raise TrainingError(f"non-finite weights after step {done}: refusing to write a checkpoint")
                manager.save(_checkpoint(cfg, method, optimizer, done, lr), done)
            barrier()
        if last:
            break
    pbar.close()

    # ---- final weights and summary ----------------------------------------------------------
    elapsed = time.perf_counter() - t_start
    summary = {
        "mode": cfg.mode,
        "steps": done,
        "start_step": start,
        "final_loss": last_loss,
        "seconds": elapsed,
        "skips": skips,
        "out": str(out),
        "stopped_early": stopped_early,
    }
    if main:
        if not _all_finite(method):
            raise TrainingError("non-finite weights at the end of training: backbone.pth not written")
        atomic_save(
            {
                "format": "pri3d-unet",
                "arch": cfg.model.arch,
                "feature_dim": cfg.model.resolved_feature_dim,
                "resolution": [int(v) for v in cfg.data.resolution],
                "mode": cfg.mode,
                "step": done,
                "backbone": method.backbone.state_dict(),
            },
            out / "backbone.pth",
        )
        if last_eval:
            summary["recall"] = last_eval
        if init_eval:
            summary["recall_init"] = init_eval
        r = f", recall@{T.eval_radius:g}px {last_eval[f'recall@{T.eval_radius:g}px']:.3f}" if last_eval else ""
        skipped = sum(skips.values())
        why = f" (train.max_minutes={T.max_minutes:g} reached)" if stopped_early else ""
        print(
            f"pretrain: done: mode {cfg.mode}, steps {start}->{done}{why} in {elapsed:.0f}s, final loss "
            f"{last_loss:.4f}{r}, {skipped} pair/chunk skips; weights in {out / 'backbone.pth'}"
        )
        write_report(out, summary, T.eval_radius)
    logger.close()
    return summary


# Keys that may change on resume without affecting the computation.
_RESUME_FREE = {
    "out",
    "data.path",
    "data.workers",
    "data.prefetch",
    "train.steps",
    "train.max_minutes",
    "train.log_every",
    "train.ckpt_every",
    "train.keep_checkpoints",
    "train.eval_every",
    "train.eval_pairs",
    "train.eval_points",
    "train.eval_radius",
    "train.tensorboard",
    "train.progress",
    "train.compile",
}


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _config_changes(old: dict, new: dict) -> list[str]:
    a, b = _flatten(old), _flatten(new)
    return sorted(k for k in set(a) | set(b) if k not in _RESUME_FREE and a.get(k) != b.get(k))


def _checkpoint(cfg: PretrainConfig, method, optimizer, step: int, lr: float) -> dict:
    return {
        "format": CHECKPOINT_FORMAT,
        "arch": cfg.model.arch,
        "feature_dim": cfg.model.resolved_feature_dim,
        "mode": cfg.mode,
        "backbone": method.backbone.state_dict(),
        "model": method.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": {"schedule": cfg.optim.schedule, "step": step, "lr": lr},
        "step": step,
        "rng": {**capture_rng(), "sampler": {"seed": cfg.train.seed, "next_step": step}},
        "config": to_dict(cfg),
    }
