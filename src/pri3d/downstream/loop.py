"""The one fine-tune loop, shared by semantic segmentation and detection.

A *task* object (:class:`~pri3d.downstream.semseg.SemSegTask`, :class:`~pri3d.downstream.detection.DetectTask`)
plugs in what differs: ``dataset(which, train=)``, ``collate``, ``build_model(init)``, ``loss(model, batch,
device) -> {name: tensor}``, ``evaluate_partial(model, loader, device) -> partial`` (per rank) and
``merge(partials) -> scores``. Everything else lives here once: data order, LR schedule, DDP,
checkpoints with exact resume, JSONL logs, progress bars, evaluation schedule and the results file.

Outputs in ``cfg.out``:

* ``config.yaml``: the resolved config;
* ``metrics.jsonl``: training losses / lr every ``train.log_every`` iterations and every evaluation;
* ``checkpoints/ckpt_<step>.pt``: ``{"format": "pri3d-finetune", "task", "model", "optimizer", "step",
  "rng", "config", "backbone", ...}`` (the newest ``train.keep``); ``best.pt``: the best-on-val weights;
* ``results.json``: the **final** (last iteration) and **best-on-val** scores, labelled as such.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader, Sampler, Subset
from tqdm import tqdm

from pri3d import distributed as D
from pri3d.config import build, to_dict
from pri3d.data.io import atomic_write_text
from pri3d.downstream.config import FinetuneConfig
from pri3d.engine.checkpoint import CheckpointManager, atomic_save, capture_rng, load_checkpoint, restore_rng
from pri3d.engine.logging import MetricLogger
from pri3d.engine.seed import derive_seed, seed_everything, worker_init_fn
from pri3d.errors import ConfigError

__all__ = [
    "make_task",
    "lr_at",
    "EpochSampler",
    "run_finetune",
    "evaluate_model",
    "load_finetuned",
    "evaluate_checkpoint",
]

CKPT_FORMAT = "pri3d-finetune"
FINAL_LABEL = "final: the model after the last training iteration"
BEST_LABEL = (
    "best-on-val: the best of all evaluations, selected on the same split it is scored on "
    "(optimistic; the official Pri3D numbers were reported this way)"
)


def make_task(cfg: FinetuneConfig):
    if cfg.task == "semseg":
        from pri3d.downstream.semseg import SemSegTask

        return SemSegTask(cfg)
    if cfg.task == "detect":
        from pri3d.downstream.detection import DetectTask

        return DetectTask(cfg)
    raise ConfigError(f"unknown task {cfg.task!r}")


def lr_at(step: int, total: int, optim) -> float:
    """Learning rate at iteration ``step`` (0-based) of ``total``: linear warm-up, then poly
    (``lr * (1 - step / total) ** power``), step decay at ``milestones`` or constant."""
    lr = optim.lr
    if optim.schedule == "poly":
        lr *= max(0.0, 1.0 - step / max(1, total)) ** optim.power
    elif optim.schedule == "step":
        marks = [int(round(m * total)) if m < 1 else int(m) for m in optim.milestones]
        lr *= optim.gamma ** sum(step >= m for m in marks)
    if optim.warmup_iters > 0 and step < optim.warmup_iters:
        a = step / optim.warmup_iters
        lr *= optim.warmup_factor * (1 - a) + a
    return lr


class EpochSampler(Sampler):
    """Per-epoch deterministic shuffle, sharded over ranks, resumable mid-epoch.

    Epoch ``e`` uses the permutation from ``derive_seed(seed, e)``; rank ``r`` of ``world`` takes every
    ``world``-th index of it (padded so all ranks get the same count) and keeps ``batches_per_epoch *
    batch_size`` of them; :meth:`set_epoch` picks the epoch and the first batch to yield."""

    def __init__(self, n: int, batch_size: int, *, seed: int, rank: int = 0, world: int = 1, shuffle: bool = True):
        if n < 1:
            raise ValueError("EpochSampler: empty dataset")
        self.n, self.bs, self.seed, self.rank, self.world, self.shuffle = n, batch_size, seed, rank, world, shuffle
        self.per_rank = math.ceil(n / world)
        self.batches_per_epoch = max(1, self.per_rank // batch_size)
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    def indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch))
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        order = (order * math.ceil(self.per_rank * self.world / self.n))[: self.per_rank * self.world]
        mine = order[self.rank :: self.world][: self.batches_per_epoch * self.bs]
        return mine[self.start_batch * self.bs :]

    def __iter__(self):
        return iter(self.indices())

    def __len__(self) -> int:
        return len(self.indices())


def _loader(ds, batch_size, collate, *, sampler=None, workers=0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return DataLoader(
        ds,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        collate_fn=collate,
        num_workers=workers,
        worker_init_fn=worker_init_fn if workers else None,
        generator=g,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
    )


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


def evaluate_model(
    task, model, dataset, device, *, batch_size: int, workers: int = 0, amp: bool = False, progress: bool = True
) -> dict:
    """Evaluate on ``dataset`` (sharded over DDP ranks, merged on every rank). Returns the task's scores."""
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    shard = Subset(dataset, list(range(rank, len(dataset), world)))
    loader = _loader(shard, batch_size, task.collate, workers=workers)
    m = _unwrap(model)
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


def _scalars(task, scores: dict) -> dict:
    if task.name == "semseg":
        return {k: scores[k] for k in ("miou", "pixel_acc", "mean_acc")}
    return {f"{t}_{k}": scores[t][k] for t in ("bbox", "segm") for k in ("AP", "AP50", "AP75")}


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def write_json(path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def run_finetune(cfg: FinetuneConfig, *, resume: bool = False, progress: bool = True, log=print) -> dict:
    """Fine-tune ``cfg.task`` on ``cfg.data`` and return the results dict (also written to
    ``cfg.out/results.json``). Launch under torchrun for DDP; a single process otherwise."""
    if not cfg.data.root:
        raise ConfigError("no dataset: set data.root (--data DIR)")
    t_start = time.time()
    dist = D.init_distributed(cfg.train.device)
    main = dist.is_main
    progress = progress and main
    say = log if main else (lambda *a, **k: None)
    seed_everything(derive_seed(cfg.seed, dist.rank))
    out = Path(cfg.out)
    ckpts = CheckpointManager(out / "checkpoints", keep=cfg.train.keep)
    if ckpts.paths() and not resume:
        raise ConfigError(f"{out} already holds checkpoints; pass --resume to continue, or choose another --out")

    task = make_task(cfg)
    train_ds = task.dataset("train", split=cfg.data.train_split, train=True, progress=progress)
    val_ds = task.dataset("val", split=cfg.data.val_split, train=False, progress=progress)
    say(f"train: {train_ds.stats.summary()}")
    say(f"val:   {val_ds.stats.summary()}")
    if cfg.data.fraction < 1.0:
        n_scenes = len({k[0].scene_id for k in train_ds.index})
        say(
            f"data-efficient: fraction {cfg.data.fraction} by {cfg.data.fraction_by} (seed {cfg.seed}) -> "
            f"{len(train_ds)} images from {n_scenes} scenes"
        )
        if cfg.data.fraction_by == "scene" and n_scenes < 3:
            say("warning: fewer than 3 training scenes; --fraction-by image gives finer subsets")

    model, init_desc = task.build_model(cfg.init)
    say(f"model: {init_desc}")
    model.to(dist.device)
    params = [p for p in model.parameters() if p.requires_grad]
    o = cfg.optim
    if o.name == "sgd":
        optimizer = torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    else:
        optimizer = torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
    use_amp = cfg.train.amp and dist.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    local_bs = max(1, cfg.train.batch_size // dist.world_size)
    sampler = EpochSampler(len(train_ds), local_bs, seed=cfg.seed, rank=dist.rank, world=dist.world_size)
    ipe = sampler.batches_per_epoch
    total = cfg.train.iters if cfg.train.iters > 0 else cfg.train.epochs * ipe
    best_key = cfg.train.best_metric or task.default_best_metric

    step, best, final, history = 0, None, None, []
    if resume:
        found = ckpts.latest()
        if found is None:
            say(f"--resume: no checkpoint in {ckpts.dir}; starting from scratch")
        else:
            state, path = found
            if hasattr(model, "upgrade_state_dict") and model.upgrade_state_dict(state["model"]) is not state["model"]:
                raise ConfigError(
                    f"{path}: a checkpoint of the earlier semantic-segmentation UNet layout (a classifier stacked "
                    "on the decoder's last conv); it cannot be resumed. Start a new run (another --out), or "
                    "evaluate it with `pri3d evaluate`, which converts it."
                )
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if "scaler" in state and use_amp:
                scaler.load_state_dict(state["scaler"])
            step, best, history = int(state["step"]), state.get("best"), list(state.get("history", []))
            if history and history[-1]["step"] == step and step >= total:
                final = {"label": FINAL_LABEL, **history[-1]}
            if state.get("rng") and dist.world_size == 1:
                restore_rng(state["rng"])
            changed = _diff(state.get("config", {}), to_dict(cfg))
            say(
                f"resumed from {path} at step {step}/{total}"
                + (f" (config changed: {', '.join(changed)})" if changed else "")
            )

    if dist.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(
            model,
            device_ids=[dist.device.index] if dist.device.type == "cuda" else None,
            find_unused_parameters=task.name == "detect",
        )

    if main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
    logger = MetricLogger(out, enabled=main, tensorboard=False, resume_step=step + 1 if resume else None)
    say(
        f"{task.name}: {len(train_ds)} train / {len(val_ds)} val images, {total} iterations "
        f"({ipe} per epoch, batch {local_bs} x {dist.world_size} rank(s)), device {dist.device}"
    )

    data_info = {
        "train": train_ds.stats.to_dict(),
        "val": val_ds.stats.to_dict(),
        "fraction": cfg.data.fraction,
        "fraction_by": cfg.data.fraction_by,
        "train_images": len(train_ds),
        "val_images": len(val_ds),
    }

    def results() -> dict:
        return {
            "task": task.name,
            "metric": best_key,
            "final": final,
            "best": best,
            "history": [{k: v for k, v in h.items() if k != "scores"} for h in history],
            "init": init_desc,
            "iterations": step,
            "total_iterations": total,
            "data": data_info,
            "time_s": round(time.time() - t_start, 2),
            "config": to_dict(cfg),
        }

    def save_checkpoint() -> None:
        if not main:
            return
        m = _unwrap(model)
        state = {
            "format": CKPT_FORMAT,
            "task": task.name,
            "model": m.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "step": step,
            "epoch": step / ipe,
            "rng": capture_rng(),
            "config": to_dict(cfg),
            "best": best,
            "history": history,
            **task.checkpoint_extras(m),
        }
        ckpts.save(state, step)

    def evaluate_now() -> None:
        nonlocal best, final
        scores = evaluate_model(
            task,
            model,
            val_ds,
            dist.device,
            batch_size=local_bs,
            workers=cfg.data.num_workers,
            amp=use_amp,
            progress=progress,
        )
        value = task.metric(scores, best_key)
        rec = {
            "step": step,
            "epoch": round(step / ipe, 3),
            "metric": best_key,
            "value": value,
            **_scalars(task, scores),
            "scores": scores,
        }
        history.append(rec)
        final = {"label": FINAL_LABEL, **rec} if step >= total else None
        logger.log(step, **{f"val/{k}": v for k, v in _scalars(task, scores).items()})
        say(f"[step {step}] val {task.headline(scores)}")
        if value is not None and (best is None or best["value"] is None or value > best["value"]):
            best = {"label": BEST_LABEL, **rec}
            if main:
                m = _unwrap(model)
                atomic_save(
                    {
                        "format": CKPT_FORMAT,
                        "task": task.name,
                        "model": m.state_dict(),
                        "step": step,
                        "config": to_dict(cfg),
                        "scores": scores,
                        **task.checkpoint_extras(m),
                    },
                    out / "best.pt",
                )
        if main:
            write_json(out / "results.json", results())

    model.train()
    bar = tqdm(total=total, initial=step, desc=f"finetune {task.name}", disable=not progress, dynamic_ncols=True)
    t_log, n_img = time.time(), 0
    while step < total:
        epoch, start_batch = divmod(step, ipe)
        sampler.set_epoch(epoch, start_batch)
        loader = _loader(
            train_ds,
            local_bs,
            task.collate,
            sampler=sampler,
            workers=cfg.data.num_workers,
            seed=derive_seed(cfg.seed, dist.rank, epoch),
        )
        for batch in loader:
            lr = lr_at(step, total, o)
            for gr in optimizer.param_groups:
                gr["lr"] = lr
            with torch.autocast(dist.device.type, enabled=use_amp):
                losses = task.loss(model, batch, dist.device)
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"non-finite loss at step {step}: " + ", ".join(f"{k}={float(v):.4g}" for k, v in losses.items())
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if o.clip_grad > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, o.clip_grad)
            scaler.step(optimizer)
            scaler.update()
            step += 1
            n_img += local_bs
            bar.update(1)
            loss_value = float(loss.detach())
            bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}")
            if step % cfg.train.log_every == 0 or step == total:
                dt = max(1e-9, time.time() - t_log)
                logger.log(
                    step,
                    loss=loss_value,
                    lr=lr,
                    epoch=round(step / ipe, 3),
                    images_per_s=n_img * dist.world_size / dt,
                    **{k: float(D.all_reduce_mean(v.detach())) for k, v in losses.items()},
                )
                t_log, n_img = time.time(), 0
            end_of_epoch = step % ipe == 0
            do_eval = step == total or (
                end_of_epoch and cfg.train.eval_every > 0 and (step // ipe) % cfg.train.eval_every == 0
            )
            if do_eval:
                evaluate_now()
            if do_eval or step == total or (cfg.train.ckpt_every and step % cfg.train.ckpt_every == 0):
                save_checkpoint()
            if step >= total:
                break
    bar.close()
    if final is None:  # resumed after the end: evaluate the final model once more
        evaluate_now()
    res = results()
    if main:
        write_json(out / "results.json", res)
        say(task.format_scores(final["scores"]))
        b = best
        say(
            f"finetune {task.name}: {step} iterations in {res['time_s']:.1f} s; "
            f"final {best_key} = {_fmt(final['value'])} (step {final['step']}); "
            f"best-on-val {best_key} = {_fmt(b['value'] if b else None)} (step {b['step'] if b else '-'}); "
            f"results in {out / 'results.json'}"
        )
    logger.close()
    D.barrier()
    return res


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            keys += _diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            keys.append(prefix + k)
    return keys


# ------------------------------------------------------------------------------- evaluation only


def load_finetuned(path) -> tuple[dict, FinetuneConfig]:
    """Read a fine-tuned checkpoint (a file, or a run folder: its ``best.pt`` if present, else the
    newest ``checkpoints/ckpt_*.pt``). Returns ``(checkpoint dict, config)``."""
    from pri3d.errors import DataError

    p = Path(path)
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
    if state.get("format") != CKPT_FORMAT:
        raise DataError(
            f"{path}: not a fine-tuned checkpoint (format {state.get('format')!r}, expected {CKPT_FORMAT!r})"
        )
    return state, build(FinetuneConfig, state["config"])


def load_finetuned_model(path):
    """Rebuild a fine-tuned model from its checkpoint (without reading the original init file).
    Returns ``(model in eval mode, task, config, checkpoint dict)``; the task's datasets follow
    ``config.data``, which callers may change before building one."""
    from pri3d.models.init import load_state_strict

    state, cfg = load_finetuned(path)
    if cfg.task == "detect" and cfg.model.norm == "auto":
        cfg.model.norm = "bn" if cfg.init in ("scratch", "", None) else "frozen_bn"
    if "feature_dim" in state:
        cfg.model.feature_dim = int(state["feature_dim"])
    cfg.model.transfer = "auto"
    task = make_task(cfg)
    model, _ = task.build_model("scratch")
    weights = state["model"]
    if hasattr(model, "upgrade_state_dict"):  # semseg UNet checkpoints of the earlier layout
        weights = model.upgrade_state_dict(weights)
    load_state_strict(model, weights, f"{path} model weights")
    return model.eval(), task, cfg, state


def evaluate_checkpoint(
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
    model, task, cfg, state = load_finetuned_model(path)
    if data is not None:
        cfg.data.root = str(data)
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
        workers=cfg.data.num_workers,
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
