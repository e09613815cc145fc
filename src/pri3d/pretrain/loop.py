"""The pre-training loop: one plain loop, readable top to bottom.

``train(cfg, resume=...)`` runs ``cfg.train.steps`` optimizer steps of the configured mode and writes
into ``cfg.out``:

* ``config.yaml``: the resolved configuration;
* ``metrics.jsonl`` (+ ``tb/`` when TensorBoard is installed): losses, lr, throughput, skips and the
  held-out feature-matching recall;
* ``checkpoints/ckpt_<step>.pt``: ``{"format": PRETRAIN_FORMAT, "arch", "feature_dim", "mode",
  "backbone", "model", "optimizer", "scheduler", "step", "rng", "config"}``, written atomically,
  the newest ``train.keep_checkpoints`` kept;
* ``backbone.pth``: ``{"format": UNET_FORMAT, "arch", "feature_dim", "backbone"}`` at the end;
* ``done``: written last, after ``backbone.pth`` and ``report.md``: the run finished.

The folder is checked before anything is written (:mod:`pri3d.engine.run_dir`): a finished or foreign
folder, or one with checkpoints, is refused unless ``overwrite=True`` (which replaces the run's own
outputs); ``resume=True`` needs a readable checkpoint of the same mode trained on the same data.

Exact resume: batches are a pure function of the step (:class:`~pri3d.pretrain.data.StepBatchSampler`)
and per-sample randomness is seeded from (seed, sample index), so ``resume=True`` continues from the
newest loadable checkpoint and reproduces the losses of an uninterrupted run. Schedules are pure
functions of the step. A non-finite loss stops the run with :class:`TrainingError` naming the step,
before any optimizer update or checkpoint of that step. Distributed training: launch with torchrun
(NCCL on GPU, gloo on CPU); only rank 0 logs and writes.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from pri3d.config import to_dict
from pri3d.engine.amp import amp_dtype
from pri3d.engine.checkpoint import CheckpointManager, capture_rng, restore_rng
from pri3d.engine.distributed import DistInfo, barrier, mean_over_ranks, rank0_flag, session, wrap_ddp
from pri3d.engine.logging import MetricLogger
from pri3d.engine.optim import build_optimizer, lr_at
from pri3d.engine.run_dir import RESUME_FREE, RunDir, mark_done, open_run
from pri3d.engine.sampling import StepBatchSampler, make_loader
from pri3d.engine.seed import seed_everything
from pri3d.engine.step import TrainStep
from pri3d.errors import ConfigError, TrainingError
from pri3d.models.formats import PRETRAIN_FORMAT, unet_file, write_unet
from pri3d.models.init import init_encoder
from pri3d.pairs.store import PreparedData
from pri3d.pretrain.config import PretrainConfig
from pri3d.pretrain.data import PairDataset, fixed_sample, split_pairs
from pri3d.pretrain.matching_eval import matching_recall
from pri3d.pretrain.modes import MODES
from pri3d.pretrain.report import write_curves, write_report

__all__ = ["train", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = PRETRAIN_FORMAT


def train(cfg: PretrainConfig, *, resume: bool = False, overwrite: bool = False) -> dict:
    """Run pre-training; returns a summary dict (see the module docstring for the outputs and for what
    ``resume`` and ``overwrite`` allow)."""
    if not cfg.data.path:
        raise ConfigError(
            "no data: pass --data PREPARED_DIR (or data.path=...), a directory written by 'pri3d prepare'"
        )
    with session(cfg.train.device, cfg.train.threads) as info:  # cleanup and the thread count on the way out
        return _loop(_setup(cfg, info, resume, overwrite))


@dataclass
class Run:
    """Everything the loop needs, built once by :func:`_setup`."""

    cfg: PretrainConfig
    info: DistInfo
    out: Path
    manager: CheckpointManager
    method: torch.nn.Module  # the Pri3D method (backbone + heads); ``model`` wraps it under DDP
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    amp_dtype: torch.dtype | None
    logger: MetricLogger
    step_fn: TrainStep
    batches: object  # iterator over the loader: one item per micro-batch
    start: int
    eval_sets: dict = field(default_factory=dict)  # "val" / "train" -> PairDataset of fixed pairs


def _loop(run: Run) -> dict:
    """The optimizer steps ``run.start .. train.steps - 1``: log, evaluate, checkpoint, stop on budget."""
    cfg, T, main = run.cfg, run.cfg.train, run.info.is_main
    last_eval = init_eval = None
    if run.start == 0 and main:
        last_eval = init_eval = _evaluate(run, 0)  # the same network at initialisation: the baseline to beat
    barrier()
    pbar = tqdm(
        total=T.steps,
        initial=run.start,
        desc=f"pretrain {cfg.mode}",
        disable=not (main and T.progress),
        dynamic_ncols=True,
    )
    skips: dict[str, int] = {}
    stopped_early, done, last_loss, rate = False, run.start, float("nan"), None
    t_start = time.perf_counter()
    run.method.train()
    for step in range(run.start, T.steps):
        t0 = time.perf_counter()
        lr = lr_at(step, T.steps, cfg.optim)
        parts = _optimizer_step(run, step, lr, skips)
        done = step + 1
        dt = time.perf_counter() - t0
        rate = T.batch_size / dt if rate is None else 0.9 * rate + 0.1 * T.batch_size / dt
        last = done == T.steps
        if T.max_minutes > 0 and not last:  # time budget: rank 0 decides, everyone stops at the same step
            if rank0_flag((time.perf_counter() - t_start) / 60 >= T.max_minutes, run.info.device):
                last = stopped_early = True
        if done % T.log_every == 0 or last:
            parts = mean_over_ranks(parts, run.info.device)
            last_loss = sum(parts.values())
            run.logger.log(
                done,
                loss=last_loss,
                **{f"loss/{k}": v for k, v in parts.items()},
                lr=lr,
                pairs_per_s=rate,
                **{f"skips/{k}": v for k, v in skips.items()},
            )
        pbar.update(1)
        pbar.set_postfix(loss=f"{sum(parts.values()):.4f}", pairs_s=f"{rate:.1f}")
        evaluated = T.eval_every > 0 and (done % T.eval_every == 0 or last)  # the same on every rank
        if main and evaluated:
            last_eval = _evaluate(run, done)
        if T.checkpoint_due(done, evaluated=evaluated, last=last):
            if main:
                _check_weights(run.method, f"after step {done}: refusing to write a checkpoint")
                run.manager.save(_checkpoint(cfg, run.method, run.optimizer, done, lr), done)
            barrier()
        if last:
            break
    pbar.close()
    summary = {
        "mode": cfg.mode,
        "steps": done,
        "start_step": run.start,
        "final_loss": last_loss,
        "seconds": time.perf_counter() - t_start,
        "skips": skips,
        "out": str(run.out),
        "stopped_early": stopped_early,
        "steps_planned": T.steps,
    }
    if main:
        _finish(run, summary, last_eval, init_eval)
    run.logger.close()
    return summary


def _optimizer_step(run: Run, step: int, lr: float, skips: dict[str, int]) -> dict[str, float]:
    """One optimizer step over ``train.accumulate`` micro-batches (:class:`~pri3d.engine.step.TrainStep`);
    returns the mean loss parts and counts the skipped pairs and chunks into ``skips``."""
    cfg, T = run.cfg, run.cfg.train

    def loss_fn(batch):
        losses = run.model(batch)
        for k, v in run.method.stats.items():
            if k.endswith("skipped"):
                skips[k] = skips.get(k, 0) + int(v)
        return losses

    batches = (_to_device(next(run.batches), run.info.device, cfg.model.channels_last) for _ in range(T.accumulate))
    parts: dict[str, float] = {}
    for losses in run.step_fn(step, lr, batches, loss_fn, describe=lambda batch: f"pairs {batch['keys'][:4]}"):
        for k, v in losses.items():
            parts[k] = parts.get(k, 0.0) + float(v) / T.accumulate
    return parts


def _setup(cfg: PretrainConfig, info: DistInfo, resume: bool, overwrite: bool = False) -> Run:
    """Data, model, optimizer (restored from the newest checkpoint on resume), DDP, logger and loader, in
    this order (it fixes the random streams, so a run repeats exactly)."""
    T, main, dev = cfg.train, info.is_main, info.device
    spec = MODES[cfg.mode]
    rd = open_run(
        cfg.out,
        resume=resume,
        overwrite=overwrite,
        keep=T.keep_checkpoints,
        checkpoint_format=CHECKPOINT_FORMAT,
        kind=("mode", cfg.mode),
        data_path=cfg.data.path,
        is_main=main,
    )

    prepared = PreparedData(cfg.data.path)
    train_pairs, val_pairs, note = split_pairs(prepared, cfg.data.train_split, cfg.data.val_split)
    if note and main:
        print(f"pretrain: {note}")
    dataset = spec.build_dataset(cfg, prepared, train_pairs, True)

    seed_everything(T.seed)  # same initial weights on every rank
    method = spec.build_method(cfg)
    init_desc = "resumed"
    if rd.state is None:  # an InitError (a Pri3dError: one line in the CLI) names the init that failed
        init_desc = init_encoder(method.backbone.encoder, cfg.model.init, cfg.model.arch)
    method.to(dev)
    if cfg.model.channels_last:
        method.backbone.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(method.parameters(), cfg.optim)
    start = 0
    if rd.state is not None:
        start = _restore(cfg, rd, method, optimizer, main)
    if T.compile:
        method.compile_backbone()
    logger = rd.start(cfg, start_step=start, tensorboard=T.tensorboard)
    model = wrap_ddp(method, info)
    amp = amp_dtype(T.amp, dev)
    step_fn = TrainStep(
        model,
        optimizer,
        device=dev,
        amp=amp,
        clip_grad=cfg.optim.clip_grad,
        accumulate=T.accumulate,
        distributed=info.distributed,
        checkpoints=rd.checkpoints,
    )
    sampler = StepBatchSampler(
        len(dataset),
        batch_size=T.batch_size,
        world_size=info.world_size,
        rank=info.rank,
        accumulate=T.accumulate,
        seed=T.seed,
        start_step=start,
        steps=T.steps,
    )  # batches as a pure function of the step, from step ``start`` on
    loader = make_loader(
        dataset, spec.collate, device=dev, workers=cfg.data.workers, batch_sampler=sampler, prefetch=cfg.data.prefetch
    )
    run = Run(cfg, info, rd.out, rd.checkpoints, method, model, optimizer, amp, logger, step_fn, iter(loader), start)
    if T.eval_every > 0 and main:
        # Fixed random samples (the pairs are sorted by frame: the first ones would all share one frame). The
        # training pairs are evaluated like the held-out ones: the two learning curves part when the network
        # memorises its training views instead of learning to match.
        if val_pairs:
            run.eval_sets["val"] = _eval_dataset(cfg, prepared, fixed_sample(val_pairs, T.eval_pairs, T.seed))
        run.eval_sets["train"] = _eval_dataset(cfg, prepared, fixed_sample(train_pairs, T.eval_pairs, T.seed))
    if main:
        print(
            f"pretrain: mode {cfg.mode}, {cfg.model.arch} ({init_desc}), {len(train_pairs)} training pairs, "
            f"{len(val_pairs)} held-out, batch {T.batch_size} x {T.steps} steps on {dev}"
            f"{f' x {info.world_size} processes' if info.distributed else ''}"
        )
    return run


def _restore(cfg: PretrainConfig, rd: RunDir, method, optimizer, main: bool) -> int:
    """Load weights, optimizer and RNG from the checkpoint ``rd.state``; returns the step to continue from."""
    state = rd.state
    method.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    restore_rng(state["rng"])
    start = int(state["step"])
    if main:
        print(f"pretrain: resumed from {rd.path} at step {start}")
        warning = rd.resume_warning(PretrainConfig, cfg, _RESUME_FREE)
        if warning:
            print(f"pretrain: {warning}")
    return start


def _evaluate(run: Run, step: int) -> dict | None:
    """Matching recall of the backbone on the fixed held-out and training pairs (logged); returns the
    held-out one."""
    T = run.cfg.train
    radii = sorted({1.0, 2.0, 4.0, 8.0, float(T.eval_radius)})
    res = None
    for name in ("val", "train"):
        ds = run.eval_sets.get(name)
        if ds is None:
            continue
        r = matching_recall(
            run.method.backbone,
            ds,
            device=run.info.device,
            seed=T.seed,
            channels_last=run.cfg.model.channels_last,
            autocast_dtype=run.amp_dtype,
            radii=radii,
        )
        run.logger.log(step, **{f"{name}/{k}": v for k, v in r.items()})
        if name == "val":
            res = r
    if run.info.is_main:
        write_curves(run.out, T.eval_radius)
    return res


def _finish(run: Run, summary: dict, last_eval: dict | None, init_eval: dict | None) -> None:
    """Rank 0: write ``backbone.pth`` and the report, print the one-line summary."""
    cfg, T, out, method = run.cfg, run.cfg.train, run.out, run.method
    _check_weights(method, "at the end of training: backbone.pth not written")
    obj = unet_file(
        cfg.model.arch,
        cfg.model.resolved_feature_dim,
        method.backbone.state_dict(),
        resolution=[int(v) for v in cfg.data.resolution],
        mode=cfg.mode,
        step=summary["steps"],
    )
    write_unet(out / "backbone.pth", obj)
    if last_eval:
        summary["recall"] = last_eval
    if init_eval:
        summary["recall_init"] = init_eval
    r = f", recall@{T.eval_radius:g}px {last_eval[f'recall@{T.eval_radius:g}px']:.3f}" if last_eval else ""
    why = ""
    if summary["stopped_early"]:
        guard = f"train.max_minutes={T.max_minutes:g}"
        why = f" (CUT SHORT at step {summary['steps']} of {T.steps}: the wall-clock guard {guard} fired)"
        print(
            f"pretrain: WARNING: the wall-clock guard {guard} stopped the run at step "
            f"{summary['steps']} of {T.steps}; these weights depend on this machine's speed (raise the guard or "
            "resume with --resume train.max_minutes=0 to finish the planned steps)",
            file=sys.stderr,
        )
    print(
        f"pretrain: done: mode {cfg.mode}, steps {summary['start_step']}->{summary['steps']}{why} in "
        f"{summary['seconds']:.0f}s, final loss {summary['final_loss']:.4f}{r}, "
        f"{sum(summary['skips'].values())} pair/chunk skips; weights in {out / 'backbone.pth'}"
    )
    write_report(out, summary, T.eval_radius)
    mark_done(out, {"mode": cfg.mode, "step": summary["steps"]})  # last: the folder now holds a finished run


def _check_weights(module: torch.nn.Module, where: str) -> None:
    if not all(bool(torch.isfinite(t).all()) for t in module.state_dict().values() if t.is_floating_point()):
        raise TrainingError(f"non-finite weights {where}")


def _to_device(batch: dict, device, channels_last: bool) -> dict:
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            v = v.to(device, non_blocking=True)
            if k == "images" and channels_last:
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out


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


# Keys that may change on resume without affecting the computation: the engine's and these.
_RESUME_FREE = RESUME_FREE | {
    "data.prefetch",
    "train.steps",
    "train.max_minutes",
    "train.eval_every",
    "train.eval_pairs",
    "train.eval_points",
    "train.eval_radius",
    "train.tensorboard",
    "train.progress",
    "train.compile",
}


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
