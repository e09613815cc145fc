"""The one fine-tune loop, shared by semantic segmentation and detection.

A *task* object (:class:`~pri3d.downstream.semseg.SemSegTask`, :class:`~pri3d.downstream.detection.DetectTask`)
plugs in what differs: ``dataset(which, train=)``, ``collate``, ``build_model(init)``, ``loss(model, batch,
device) -> {name: tensor}``, ``evaluate_partial(model, loader, device) -> partial`` (per rank) and
``merge(partials) -> scores``. Everything else lives here once: data order, LR schedule, DDP,
checkpoints with exact resume, JSONL logs, progress bars, evaluation schedule and the results file.

Outputs in ``cfg.out``:

* ``config.yaml``: the resolved config;
* ``metrics.jsonl``: training losses / lr every ``train.log_every`` iterations and every evaluation;
* ``checkpoints/ckpt_<step>.pt``: ``{"format": FINETUNE_FORMAT, "task", "model", "optimizer", "step",
  "rng", "config", "backbone", ...}`` (the newest ``train.keep_checkpoints``); ``best.pt``: the best-on-val weights;
* ``results.json``: the **final** (last iteration) and **best-on-val** scores, labelled as such;
* ``done``: written last, after ``results.json``: the run finished.

The folder is checked before anything is written (:mod:`pri3d.engine.run_dir`): a finished or foreign
folder, or one with checkpoints, is refused unless ``overwrite=True`` (which replaces the run's own
outputs); ``resume=True`` needs a readable checkpoint trained on the same data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from pri3d.config import to_dict
from pri3d.downstream.config import FinetuneConfig
from pri3d.downstream.evaluate import evaluate_model, make_task, unwrap
from pri3d.engine import distributed as D
from pri3d.engine.amp import amp_dtype
from pri3d.engine.checkpoint import CheckpointManager, capture_rng, restore_rng
from pri3d.engine.io import atomic_save, write_json
from pri3d.engine.logging import MetricLogger
from pri3d.engine.optim import build_optimizer, lr_at
from pri3d.engine.run_dir import RESUME_FREE, RunDir, mark_done, open_run
from pri3d.engine.sampling import EpochSampler, make_loader
from pri3d.engine.seed import derive_seed, seed_everything
from pri3d.engine.step import TrainStep
from pri3d.errors import ConfigError
from pri3d.models.formats import FINETUNE_FORMAT

__all__ = ["run_finetune", "EpochSampler"]

FINAL_LABEL = "final: the model after the last training iteration"
BEST_LABEL = (
    "best-on-val: the best of all evaluations, selected on the same split it is scored on "
    "(optimistic; the official Pri3D numbers were reported this way)"
)


@dataclass
class Run:
    """One fine-tuning run: what :func:`_setup` builds, and the state the loop advances."""

    cfg: FinetuneConfig
    dist: D.DistInfo
    task: object
    out: Path
    ckpts: CheckpointManager
    train_ds: object
    val_ds: object
    model: torch.nn.Module  # DDP-wrapped under torchrun
    optimizer: torch.optim.Optimizer
    amp: torch.dtype | None
    sampler: EpochSampler
    local_bs: int
    total: int
    best_key: str
    init_desc: str
    say: object
    progress: bool
    t_start: float
    logger: MetricLogger | None = None
    step_fn: TrainStep | None = None  # built after the DDP wrapper
    step: int = 0
    best: dict | None = None
    final: dict | None = None
    history: list = field(default_factory=list)

    @property
    def ipe(self) -> int:  # iterations per epoch
        return self.sampler.batches_per_epoch

    def results(self) -> dict:
        cfg, t = self.cfg, self.task
        return {
            "task": t.name,
            "metric": self.best_key,
            "final": self.final,
            "best": self.best,
            "history": [{k: v for k, v in h.items() if k != "scores"} for h in self.history],
            "init": self.init_desc,
            "iterations": self.step,
            "total_iterations": self.total,
            "data": {
                "train": self.train_ds.stats.to_dict(),
                "val": self.val_ds.stats.to_dict(),
                "fraction": cfg.data.fraction,
                "fraction_by": cfg.data.fraction_by,
                "train_images": len(self.train_ds),
                "val_images": len(self.val_ds),
            },
            "time_s": round(time.time() - self.t_start, 2),
            "config": to_dict(cfg),
        }


def run_finetune(
    cfg: FinetuneConfig, *, resume: bool = False, progress: bool = True, log=print, overwrite: bool = False
) -> dict:
    """Fine-tune ``cfg.task`` on ``cfg.data`` and return the results dict (also written to
    ``cfg.out/results.json``). Launch under torchrun for DDP; a single process otherwise. See the module
    docstring for what ``resume`` and ``overwrite`` allow."""
    if not cfg.data.path:
        raise ConfigError("no dataset: set data.path (--data DIR)")
    with D.session(cfg.train.device) as dist:  # the process group is destroyed on the way out
        return _loop(_setup(cfg, dist, resume, progress, log, overwrite))


def _loop(run: Run) -> dict:
    """The iterations ``run.step .. run.total - 1``, epoch by epoch: log, evaluate, checkpoint."""
    cfg, dev = run.cfg, run.dist.device
    run.model.train()
    bar = tqdm(
        total=run.total,
        initial=run.step,
        desc=f"finetune {run.task.name}",
        disable=not run.progress,
        dynamic_ncols=True,
    )

    def loss_fn(batch):
        return run.task.loss(run.model, batch, dev)

    t_log, n_img = time.time(), 0
    while run.step < run.total:
        epoch, start_batch = divmod(run.step, run.ipe)
        run.sampler.set_epoch(epoch, start_batch)
        seed = derive_seed(cfg.seed, run.dist.rank, epoch)
        loader = make_loader(
            run.train_ds,
            run.task.collate,
            device=dev,
            workers=cfg.data.workers,
            batch_size=run.local_bs,
            sampler=run.sampler,
            seed=seed,
        )
        for batch in loader:
            lr = lr_at(run.step, run.total, cfg.optim)
            (losses,) = run.step_fn(run.step, lr, iter([batch]), loss_fn)
            run.step += 1
            n_img += run.local_bs
            bar.update(1)
            loss_value = float(sum(losses.values()))
            bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}")
            if run.step % cfg.train.log_every == 0 or run.step == run.total:
                dt = max(1e-9, time.time() - t_log)
                run.logger.log(
                    run.step,
                    loss=loss_value,
                    lr=lr,
                    epoch=round(run.step / run.ipe, 3),
                    images_per_s=n_img * run.dist.world_size / dt,
                    **{k: float(D.all_reduce_mean(v)) for k, v in losses.items()},
                )
                t_log, n_img = time.time(), 0
            end_of_epoch = run.step % run.ipe == 0
            ev = cfg.train.eval_every_epochs
            do_eval = run.step == run.total or (end_of_epoch and ev > 0 and (run.step // run.ipe) % ev == 0)
            if do_eval:
                _evaluate_now(run)
            if cfg.train.checkpoint_due(run.step, evaluated=do_eval, last=run.step == run.total):
                _save_checkpoint(run)
            if run.step >= run.total:
                break
    bar.close()
    if run.final is None:  # resumed after the end: evaluate the final model once more
        _evaluate_now(run)
    return _finish(run)


def _setup(cfg: FinetuneConfig, dist: D.DistInfo, resume: bool, progress: bool, log, overwrite: bool = False) -> Run:
    """Datasets, model, optimizer (restored on resume), DDP and logger, in this order (it fixes the
    random streams, so a run repeats exactly)."""
    t_start = time.time()
    progress = progress and dist.is_main
    say = log if dist.is_main else (lambda *a, **k: None)
    seed_everything(derive_seed(cfg.seed, dist.rank))
    rd = open_run(
        cfg.out,
        resume=resume,
        overwrite=overwrite,
        keep=cfg.train.keep_checkpoints,
        checkpoint_format=FINETUNE_FORMAT,
        kind=("task", cfg.task),
        data_path=cfg.data.path,
        is_main=dist.is_main,
    )

    task = make_task(cfg)
    train_ds, val_ds = _datasets(cfg, task, progress, say)
    model, init_desc = task.build_model(cfg.init)
    say(f"model: {init_desc}")
    model.to(dist.device)
    optimizer = build_optimizer(model.parameters(), cfg.optim)
    amp = amp_dtype(cfg.train.amp, dist.device)
    local_bs = max(1, cfg.train.batch_size // dist.world_size)
    sampler = EpochSampler(len(train_ds), local_bs, seed=cfg.seed, rank=dist.rank, world=dist.world_size)
    ipe = sampler.batches_per_epoch
    total = cfg.train.steps if cfg.train.steps > 0 else cfg.train.epochs * ipe
    run = Run(
        cfg, dist, task, rd.out, rd.checkpoints, train_ds, val_ds, model, optimizer, amp, sampler, local_bs, total,
        cfg.train.best_metric or task.default_best_metric, init_desc, say, progress, t_start,
    )  # fmt: skip
    if rd.state is not None:
        _resume(run, rd)
    run.logger = rd.start(cfg, start_step=run.step)
    run.model = D.wrap_ddp(model, dist, find_unused_parameters=task.find_unused_parameters)
    run.step_fn = TrainStep(
        run.model, optimizer, device=dist.device, amp=amp, clip_grad=cfg.optim.clip_grad, checkpoints=rd.checkpoints
    )
    if rd.state is not None and "scaler" in rd.state and amp is torch.float16:
        run.step_fn.scaler.load_state_dict(rd.state["scaler"])
    say(
        f"{task.name}: {len(train_ds)} train / {len(val_ds)} val images, {total} iterations "
        f"({ipe} per epoch, batch {local_bs} x {dist.world_size} rank(s)), device {dist.device}"
    )
    return run


def _datasets(cfg: FinetuneConfig, task, progress: bool, say) -> tuple:
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
    return train_ds, val_ds


def _resume(run: Run, rd: RunDir) -> None:
    """Continue from the checkpoint ``rd.state`` (weights, optimizer, step, history, RNG; the loss
    scaler once the step function is built)."""
    state, path, model = rd.state, rd.path, run.model
    if hasattr(model, "upgrade_state_dict") and model.upgrade_state_dict(state["model"]) is not state["model"]:
        raise ConfigError(
            f"{path}: a checkpoint of the earlier semantic-segmentation UNet layout (a classifier stacked "
            "on the decoder's last conv); it cannot be resumed. Start a new run (another --out), or "
            "evaluate it with `pri3d evaluate`, which converts it."
        )
    model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.step, run.best, run.history = int(state["step"]), state.get("best"), list(state.get("history", []))
    if run.history and run.history[-1]["step"] == run.step and run.step >= run.total:
        run.final = {"label": FINAL_LABEL, **run.history[-1]}
    if state.get("rng") and run.dist.world_size == 1:
        restore_rng(state["rng"])
    run.say(f"resumed from {path} at step {run.step}/{run.total}")
    warning = rd.resume_warning(FinetuneConfig, run.cfg, _RESUME_FREE)
    if warning:
        run.say(warning)


# Keys that may change on resume without affecting the computation: the engine's and these.
_RESUME_FREE = RESUME_FREE | {"data.scan_workers", "train.eval_every_epochs"}


def _save_checkpoint(run: Run) -> None:
    if not run.dist.is_main:
        return
    m = unwrap(run.model)
    state = {
        "format": FINETUNE_FORMAT,
        "task": run.task.name,
        "model": m.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scaler": run.step_fn.scaler.state_dict(),
        "step": run.step,
        "epoch": run.step / run.ipe,
        "rng": capture_rng(),
        "config": to_dict(run.cfg),
        "best": run.best,
        "history": run.history,
        **run.task.checkpoint_extras(m),
    }
    run.ckpts.save(state, run.step)


def _evaluate_now(run: Run) -> None:
    """Score the model on the validation set; record it (history, final, best.pt) and log it."""
    task, cfg = run.task, run.cfg
    scores = evaluate_model(
        task,
        run.model,
        run.val_ds,
        run.dist.device,
        batch_size=run.local_bs,
        workers=cfg.data.workers,
        amp=run.amp,
        progress=run.progress,
    )
    value = task.metric(scores, run.best_key)
    scalars = task.scalars(scores)
    rec = {
        "step": run.step,
        "epoch": round(run.step / run.ipe, 3),
        "metric": run.best_key,
        "value": value,
        **scalars,
        "scores": scores,
    }
    run.history.append(rec)
    run.final = {"label": FINAL_LABEL, **rec} if run.step >= run.total else None
    run.logger.log(run.step, **{f"val/{k}": v for k, v in scalars.items()})
    run.say(f"[step {run.step}] val {task.headline(scores)}")
    if value is not None and (run.best is None or run.best["value"] is None or value > run.best["value"]):
        run.best = {"label": BEST_LABEL, **rec}
        if run.dist.is_main:
            m = unwrap(run.model)
            weights = {"format": FINETUNE_FORMAT, "task": task.name, "model": m.state_dict(), "step": run.step}
            extras = {"config": to_dict(cfg), "scores": scores, **task.checkpoint_extras(m)}
            atomic_save({**weights, **extras}, run.out / "best.pt")
    if run.dist.is_main:
        write_json(run.out / "results.json", run.results())


def _finish(run: Run) -> dict:
    res = run.results()
    if run.dist.is_main:
        write_json(run.out / "results.json", res)
        mark_done(run.out, {"task": run.task.name, "step": run.step})  # last: the folder holds a finished run
        run.say(run.task.format_scores(run.final["scores"]))
        b, f, key = run.best, run.final, run.best_key
        run.say(
            f"finetune {run.task.name}: {run.step} iterations in {res['time_s']:.1f} s; "
            f"final {key} = {_fmt(f['value'])} (step {f['step']}); "
            f"best-on-val {key} = {_fmt(b['value'] if b else None)} (step {b['step'] if b else '-'}); "
            f"results in {run.out / 'results.json'}"
        )
    run.logger.close()
    D.barrier()
    return res


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"
