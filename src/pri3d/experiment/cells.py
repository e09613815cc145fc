"""The experiment's cells: each a cached unit of work (:class:`Cell`) named by a hash of what determines it.

A cell is the generated data, the mined pairs, one pre-training run per method, one fine-tuning run per
(method, fraction, seed), or one test score. Each pre-training and fine-tuning cell's typed config
(:class:`~pri3d.pretrain.config.PretrainConfig`, :class:`~pri3d.downstream.config.FinetuneConfig`) is
built once, by :func:`build_pretrain_config` / :func:`build_finetune_config` through the one config builder
(:func:`pri3d.config.resolve`, which the CLI and the loops use too): the preset, the experiment's
``key=value`` overrides, then the settings the experiment chooses (mode, split, seed, fraction, ...) as
typed values. The same object gives the cell's key (its
resolved settings) and runs the cell; ``--check`` builds the same configs
(:func:`pri3d.experiment.check.check_experiment`).

A cell's key is a hash of its inputs' keys, its preset, the experiment's overrides and the resolved
settings, so a renamed or added config field also gives new keys (cells made before are then
recomputed once, not reused).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from pri3d.config import resolve, to_dict
from pri3d.engine.io import atomic_write_text, write_json
from pri3d.errors import DataError
from pri3d.experiment.config import PRETRAIN_METHODS, ExperimentConfig, SynthSpec, pretrain_seed, resolve_path

__all__ = [
    "CELL_VERSION",
    "Cell",
    "cell_hash",
    "weights_ref",
    "synth_cell",
    "data_cell",
    "test_data",
    "prepare_cell",
    "build_pretrain_config",
    "pretrain_setup",
    "pretrain_spec",
    "pretrain_cell",
    "build_finetune_config",
    "finetune_cell",
    "test_cell",
    "floor_cell",
    "probe_setup",
    "probe_cell",
    "metric_value",
]

# Bumped when the code behind a cell changes what it computes (e.g. the semantic-segmentation UNet's
# classifier layout): cells made by earlier code are then re-run instead of reused.
CELL_VERSION = 2


def cell_hash(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


def weights_ref(path: str) -> tuple[str, str]:
    """``(path, key)`` of pre-trained weights, as the cells that start from them are keyed."""
    return path, cell_hash({"backbone": path})


class Cell:
    """A cached unit of work in ``root/<kind>/<name>-<hash>/``; finished when ``done.json`` exists."""

    def __init__(self, root: Path, kind: str, name: str, spec: dict):
        self.spec = spec
        self.key = cell_hash(spec)
        safe = name.replace("+", "_").replace("/", "_")
        self.dir = Path(root) / kind / f"{safe}-{self.key}"

    @property
    def done(self) -> bool:
        return (self.dir / "done.json").is_file()

    def result(self) -> dict:
        return json.loads((self.dir / "done.json").read_text())

    def finish(self, result: dict) -> dict:
        write_json(self.dir / "done.json", result, sort_keys=True)
        return result

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json(self.dir / "spec.json", self.spec, sort_keys=True)


# ----------------------------------------------------------------------------- data


def synth_cell(root: Path, s: SynthSpec, name: str, log) -> tuple[Path, str]:
    """A generated synthetic dataset (cached). Returns (path, content hash key)."""
    from pri3d.data.synth import VERSION

    # the worker count does not change the bytes; the generator's version does
    spec = {"synth": to_dict(s) | {"workers": None}, "generator": VERSION}
    cell = Cell(root, "data", name, spec)
    if not cell.done:
        from pri3d.data.synth import generate

        cell.start()
        log(
            f"[data] generating {s.scenes} synthetic scenes x {s.frames_per_scene} frames (seed {s.seed}) -> "
            f"{cell.dir / 'synth'}"
        )
        t0 = time.time()
        generate(
            cell.dir / "synth",
            scenes=s.scenes,
            frames_per_scene=s.frames_per_scene,
            seed=s.seed,
            resolution=tuple(s.resolution),
            workers=s.workers,
            materials=s.materials,
        )
        cell.finish({"path": str(cell.dir / "synth"), "seconds": time.time() - t0})
    return cell.dir / "synth", cell.key


def data_cell(cfg: ExperimentConfig, root: Path, log) -> tuple[Path, str]:
    """The dataset: generated (cached) or given. Returns (path, content hash key)."""
    if cfg.data.synth.scenes > 0:
        return synth_cell(root, cfg.data.synth, "synth", log)
    path = resolve_path(cfg.base_dir, cfg.data.path)
    if not path.exists():
        raise DataError(f"{path}: dataset not found (data.path in the experiment config)")
    return path, cell_hash({"path": str(path)})


def test_data(cfg: ExperimentConfig, root: Path, log) -> tuple[Path, str | None, str]:
    """The test set: generated (its own seed) or given. Returns (path, format, hash key)."""
    if cfg.data.test_synth.scenes > 0:
        path, key = synth_cell(root, cfg.data.test_synth, "synth-test", log)
        return path, None, key
    path = resolve_path(cfg.base_dir, cfg.data.test_path)
    if not path.exists():
        raise DataError(f"{path}: test set not found (data.test_path in the experiment config)")
    return path, cfg.data.test_format, cell_hash({"path": str(path)})


def prepare_cell(
    cfg: ExperimentConfig, root: Path, data_path: Path, data_key: str, log, data_format: str | None = None
) -> tuple[Path, str]:
    """Pairs and geometry of every scene, cached. (Which scenes pre-training may use is decided by
    ``data.pretrain_split``; the held-out scenes' pairs only serve the label-free matching recall.)"""
    spec = {"data": data_key, "format": data_format, "options": cfg.prepare}
    cell = Cell(root, "prepared", "prepared", spec)
    if not cell.done:
        from pri3d.pairs.mine import PrepareParams, prepare

        cell.start()
        log(f"[prepare] mining pairs and voxel geometry -> {cell.dir / 'out'}")
        t0 = time.time()
        opts = dict(cfg.prepare)
        workers = int(opts.pop("workers", 1))
        summary = prepare(
            data_path,
            cell.dir / "out",
            format=data_format,
            params=PrepareParams(**opts),
            workers=workers,
            overwrite=True,
        )
        log(f"[prepare] {summary.get('message', '')}")
        cell.finish({"summary": summary, "seconds": time.time() - t0})
    return cell.dir / "out", cell.key


# ----------------------------------------------------------------------------- typed configs


def pretrain_preset(cfg: ExperimentConfig, method: str) -> str:
    return cfg.pretrain.presets.get(method, cfg.pretrain.preset)


def _pretrain_overrides(cfg: ExperimentConfig, method: str) -> list[str]:
    return [*cfg.pretrain.overrides, *cfg.pretrain.per_method.get(method, [])]


def _pretrain_values(cfg: ExperimentConfig, method: str, init: str | None, seed: int | None) -> dict:
    values = {"mode": method, "data.train_split": cfg.data.pretrain_split}
    if init:
        values["model.init"] = init
    if seed is not None:
        values["train.seed"] = seed
    return values


def build_pretrain_config(cfg: ExperimentConfig, method: str, init: str | None = None, seed: int | None = None):
    """``method``'s pre-training config (``init``: the Stage-I weights it starts from; ``seed``: its
    ``train.seed``, None = the preset's). ``data.path`` and ``out`` keep the preset's values (the key does
    not depend on them); :func:`pretrain_cell` sets them."""
    from pri3d.pretrain.config import PretrainConfig

    values = _pretrain_values(cfg, method, init, seed)
    return resolve(PretrainConfig, pretrain_preset(cfg, method), _pretrain_overrides(cfg, method), values=values)


def pretrain_setup(
    cfg: ExperimentConfig, method: str, prep_key: str, init: tuple[str, str] | None = None, seed: int | None = None
):
    """``(config, spec)`` of ``method``'s pre-training cell: the typed config and what determines the cell
    (its inputs, preset, overrides and the resolved settings, so that editing a preset file invalidates the
    cells it made). ``init``: ``(path, key)`` of the Stage-I weights; ``seed``: the pre-training seed."""
    pcfg = build_pretrain_config(cfg, method, init[0] if init else None, seed)
    spec = {
        "prepared": prep_key,
        "preset": pretrain_preset(cfg, method),
        "overrides": _pretrain_overrides(cfg, method),  # the experiment's own values are in the settings
        "settings": to_dict(pcfg),
        "init": init[1] if init else None,
        "version": CELL_VERSION,
    }
    return pcfg, spec


def pretrain_spec(
    cfg: ExperimentConfig, method: str, prep_key: str, init: tuple[str, str] | None = None, seed: int | None = None
) -> dict:
    """What determines ``method``'s pre-training cell (see :func:`pretrain_setup`)."""
    return pretrain_setup(cfg, method, prep_key, init, seed)[1]


def _finetune_overrides(cfg: ExperimentConfig, method: str) -> list[str]:
    return [*cfg.finetune.overrides, *cfg.finetune.per_method.get(method, [])]


def build_finetune_config(
    cfg: ExperimentConfig, method: str, fraction: float, seed: int, data: tuple[Path, str | None] | None = None
):
    """The fine-tuning config of the cell (``method``, ``fraction``, ``seed``). ``init``, ``out`` and the
    dataset (``data.path``, ``data.format``) keep the preset's values (the key has their own hashes);
    :func:`finetune_cell` sets them. ``data = (path, format)`` sets the dataset now."""
    from pri3d.downstream.config import FinetuneConfig

    values = {"task": cfg.finetune.task, "seed": seed, "data.fraction": fraction}
    fcfg = resolve(FinetuneConfig, cfg.finetune.preset, _finetune_overrides(cfg, method), values=values)
    if data is not None:  # the floor and probe cells key their data settings with the dataset's own values
        fcfg.data.path, fcfg.data.format = str(data[0]), data[1]
    return fcfg


# ----------------------------------------------------------------------------- training cells


def pretrain_cell(
    cfg: ExperimentConfig,
    root: Path,
    method: str,
    prepared: Path,
    prep_key: str,
    log=print,
    init: tuple[str, str] | None = None,
    progress: bool = True,
    seed: int | None = None,
) -> dict:
    """One pre-training run for ``method`` with pre-training seed ``seed`` (starting from the Stage-I
    weights ``init = (path, key)``); returns its result: ``backbone`` (the exported weights' path),
    ``seconds``, the training ``summary`` and the cell's ``dir``."""
    pcfg, spec = pretrain_setup(cfg, method, prep_key, init, seed)
    cell = Cell(root, "pretrain", method if not seed else f"{method}-p{seed}", spec)
    if not cell.done:
        from pri3d.pretrain.loop import train

        cell.start()
        pcfg.data.path, pcfg.out = str(prepared), str(cell.dir / "run")
        pcfg.train.progress = pcfg.train.progress and progress  # display only: not part of the cell's key
        start = f" from {Path(init[0]).parent.parent.name}" if init else ""
        log(
            f"[pretrain] {method}{start} (seed {pcfg.train.seed}): {pcfg.train.steps} steps, {pcfg.model.arch} -> "
            f"{cell.dir / 'run'}"
        )
        t0 = time.time()
        summary = train(pcfg, resume=_has_checkpoints(cell.dir / "run"))
        if summary.get("stopped_early"):
            log(
                f"[pretrain] {method}: CUT SHORT by the wall-clock guard train.max_minutes at step "
                f"{summary['steps']} of {pcfg.train.steps}; the report marks this cell"
            )
        cell.finish(
            {
                "backbone": str((cell.dir / "run" / "backbone.pth").resolve()),
                "seconds": time.time() - t0,
                "summary": summary,
            }
        )
    return cell.result() | {"dir": str(cell.dir)}


def finetune_cell(
    cfg: ExperimentConfig,
    root: Path,
    method: str,
    init: str,
    init_key: str,
    data_path: Path,
    data_format: str | None,
    data_key: str,
    fraction: float,
    seed: int,
    log=print,
    progress: bool = True,
) -> dict:
    """One fine-tuning run of ``method`` (from the weights ``init``, keyed by ``init_key``) on
    ``fraction`` of the labels with ``seed``; returns ``results``, ``seconds`` and the cell's ``dir``."""
    from pri3d.downstream import run_finetune

    fcfg = build_finetune_config(cfg, method, fraction, seed)
    spec = {
        "data": data_key,
        "init": init_key,
        "task": cfg.finetune.task,
        "preset": cfg.finetune.preset,
        "overrides": _finetune_overrides(cfg, method),
        "fraction": fraction,
        "seed": seed,
        "settings": to_dict(fcfg),  # the resolved settings are part of the key (the init path is keyed by init_key)
        "version": CELL_VERSION,
    }
    cell = Cell(root, "finetune", f"{method}-f{fraction:g}-s{seed}", spec)
    if not cell.done:
        cell.start()
        fcfg.init, fcfg.out = init, str(cell.dir / "run")
        fcfg.data.path, fcfg.data.format = str(data_path), data_format
        log(f"[finetune] {method} fraction={fraction:g} seed={seed} -> {cell.dir / 'run'}")
        t0 = time.time()
        res = run_finetune(fcfg, resume=_has_checkpoints(cell.dir / "run"), progress=progress, log=log)
        cell.finish({"results": res, "seconds": time.time() - t0})
    return cell.result() | {"dir": str(cell.dir)}


def _has_checkpoints(run_dir: Path) -> bool:
    """Resume a cell's run only from a checkpoint (a run killed before its first one starts again)."""
    from pri3d.engine.checkpoint import CheckpointManager

    return bool(CheckpointManager(run_dir / "checkpoints").paths())


def metric_value(res: dict, name: str, which: str) -> float | None:
    """``name`` (a dotted key such as ``miou`` or ``bbox.AP``) from the ``final`` or ``best`` block of
    a fine-tuning results dict."""
    block = res.get(which) or {}
    if res.get("metric") == name and block.get("value") is not None:
        return float(block["value"])
    v = block.get("scores") or {}
    for part in name.split("."):
        v = v.get(part) if isinstance(v, dict) else None
    return None if v is None else float(v)


def test_cell(
    cfg: ExperimentConfig,
    root: Path,
    ft_dir: Path,
    test_path: Path,
    test_format: str | None,
    test_key: str,
    log=print,
    progress: bool = False,
) -> dict:
    """Score the final model of a fine-tuning cell (its last checkpoint, not the best-on-val one) on
    every scene of the test set. Returns ``{"results": {"metric", "final": {"value", "scores"}}, ...}``."""
    from pri3d.data.formats import open_dataset
    from pri3d.downstream.evaluate import evaluate_finetuned
    from pri3d.engine.checkpoint import CheckpointManager

    ft_key = Path(ft_dir).name.rsplit("-", 1)[-1]
    cell = Cell(root, "test", Path(ft_dir).name.rsplit("-", 1)[0], {"finetune": ft_key, "test": test_key})
    if not cell.done:
        cell.start()
        ckpts = CheckpointManager(Path(ft_dir) / "run" / "checkpoints").paths()
        if not ckpts:
            raise DataError(f"{ft_dir}: no fine-tuning checkpoint to score on the test set")
        scenes = [sc.scene_id for sc in open_dataset(test_path, test_format)]
        split = cell.dir / "test-scenes.txt"
        atomic_write_text(split, "\n".join(scenes) + "\n")
        log(f"[test] {Path(ft_dir).name}: final model ({ckpts[-1].name}) on {len(scenes)} test scenes")
        t0 = time.time()
        r = evaluate_finetuned(ckpts[-1], data=str(test_path), format=test_format, split=str(split), progress=False)
        value = metric_value({"final": {"scores": r["scores"]}}, cfg.finetune.metric, "final")
        cell.finish(
            {
                "results": {
                    "metric": cfg.finetune.metric,
                    "final": {"value": value, "scores": r["scores"], "step": r.get("step")},
                },
                "checkpoint": str(ckpts[-1]),
                "images": r.get("images"),
                "seconds": time.time() - t0,
            }
        )
    return cell.result() | {"dir": str(cell.dir)}


def floor_cell(
    cfg: ExperimentConfig,
    root: Path,
    data_path: Path,
    data_format: str | None,
    data_key: str,
    fraction: float,
    seed: int,
    test: tuple[Path, str | None, str] | None = None,
    log=print,
    progress: bool = False,
) -> dict:
    """The floor of the table (majority class, position + colour lookup) and the class coverage of the
    labelled subset of (``fraction``, ``seed``), scored on the validation scenes the fine-tuning cells
    are scored on, or on every scene of the test set ``test = (path, format, key)``
    (:func:`pri3d.downstream.floors.floor_scores`). Semantic segmentation only."""
    from pri3d.data.formats import open_dataset
    from pri3d.downstream.datasets import SemSegDataset
    from pri3d.downstream.floors import floor_scores
    from pri3d.downstream.semseg import SemSegTask

    fcfg = build_finetune_config(cfg, "scratch", fraction, seed, (data_path, data_format))
    where = "test" if test else "val"
    spec = {
        "data": data_key,
        "eval": test[2] if test else "val",
        "fraction": fraction,
        "seed": seed,
        "settings": to_dict(fcfg.data),
        "version": CELL_VERSION,
    }
    cell = Cell(root, "floor", f"f{fraction:g}-s{seed}-{where}", spec)
    if not cell.done:
        cell.start()
        task = SemSegTask(fcfg)
        train = task.dataset("train", split=fcfg.data.train_split, train=True, progress=False)
        if test:
            evaluate = SemSegDataset(
                open_dataset(test[0], test[1]), task.label_set, tuple(fcfg.data.resolution), progress=False
            )
        else:
            evaluate = task.dataset("val", split=fcfg.data.val_split, progress=False)
        t0 = time.time()
        r = floor_scores(train, evaluate)
        gaps = ", ".join(r["gaps"]) or "none"
        log(
            f"[floor] fraction={fraction:g} seed={seed} on {where}: majority {100 * r['majority']['miou']:.1f}, "
            f"lookup {100 * r['lookup']['miou']:.1f} mIoU; {where} classes without a labelled pixel: {gaps}"
        )
        cell.finish(r | {"train_frames": len(train), "eval_frames": len(evaluate), "seconds": time.time() - t0})
    return cell.result() | {"dir": str(cell.dir)}


def _eval_frames(task, fcfg, test: tuple[Path, str | None, str] | None):
    """The frames a readout is scored on: the validation scenes (with the fine-tuning's validation cap) or
    every frame of the test set ``test = (path, format, key)``, as ``(path, [(scene, frame id)])``."""
    from pri3d.data.formats import open_dataset

    if test:
        return Path(test[0]), [(sc, f) for sc in open_dataset(test[0], test[1]) for f in sc.frame_ids]
    return Path(fcfg.data.path), list(task.dataset("val", split=fcfg.data.val_split, progress=False).index)


def _probe_feature_dim(cfg: ExperimentConfig) -> int | None:
    """The pre-trained networks' feature width, so the random-init row is the same network."""
    ms = [m for m in (cfg.pretrain.stage1, *cfg.methods) if m in PRETRAIN_METHODS]
    return build_pretrain_config(cfg, ms[0]).model.feature_dim if ms else None


def probe_setup(
    cfg: ExperimentConfig,
    method: str,
    init: str,
    data_path: Path,
    data_format: str | None,
    fraction: float,
    seed: int,
):
    """What the probe of (``method``, ``fraction``, ``seed``) fits: ``(fcfg, task, fit, extractor,
    backbone)``: the fine-tuning cell's config (its data settings: label fraction and unit, resolution,
    label set), its task, the seed's labelled frames (``fit``, a :class:`~pri3d.probe.frames.FrameSet`), the
    frozen features of the weights ``init`` (a file, or ``scratch`` / ``imagenet`` initialised from the
    paired pre-training seed) and the backbone's one-line description. :func:`probe_cell` fits and scores
    with it; the demo uses it to redraw a probe cell's predictions."""
    from pri3d.downstream.semseg import SemSegTask
    from pri3d.models.load import load_unet
    from pri3d.probe.features import FeatureExtractor
    from pri3d.probe.frames import FrameSet

    fcfg = build_finetune_config(cfg, method, fraction, seed, (data_path, data_format))
    task = SemSegTask(fcfg)
    train = task.dataset("train", split=fcfg.data.train_split, train=True, progress=False)
    fit = FrameSet(Path(data_path), list(train.index), f"labelled {fraction:g} seed {seed}: {len(train)} frames")
    feature_dim = _probe_feature_dim(cfg)
    model, _, desc = load_unet(str(init), fcfg.model.arch, feature_dim, pretrain_seed(cfg, seed), what="the probe")
    return fcfg, task, fit, FeatureExtractor(model, tuple(fcfg.data.resolution)), desc


def probe_cell(
    cfg: ExperimentConfig,
    root: Path,
    method: str,
    init: str,
    init_key: str,
    data_path: Path,
    data_format: str | None,
    data_key: str,
    fraction: float,
    seed: int,
    test: tuple[Path, str | None, str] | None = None,
    log=print,
    progress: bool = False,
) -> dict:
    """The frozen-feature semseg probe of ``method`` (weights ``init``: a file, or ``scratch`` /
    ``imagenet``), fitted on the labelled frames of (``fraction``, ``seed``) and scored on the validation
    scenes or the test set; results in the fine-tuning cells' shape (``{"metric", "final": {"value",
    "scores"}}``) plus the probe's report."""
    from pri3d.probe.frames import FrameSet
    from pri3d.probe.semseg import probe_semseg

    fcfg = build_finetune_config(cfg, method, fraction, seed, (data_path, data_format))
    pseed = pretrain_seed(cfg, seed)
    feature_dim = _probe_feature_dim(cfg)
    where = "test" if test else "val"
    spec = {
        "data": data_key,
        "init": init_key,
        "eval": test[2] if test else "val",
        "fraction": fraction,
        "seed": seed,
        "pretrain_seed": pseed,
        "arch": fcfg.model.arch,
        "feature_dim": feature_dim,
        "data_settings": to_dict(fcfg.data),
        "pixels_per_frame": cfg.probe.pixels_per_frame,
        "version": CELL_VERSION,
    }
    cell = Cell(root, "probe", f"{method}-f{fraction:g}-s{seed}-{where}", spec)
    if not cell.done:
        cell.start()
        fcfg, task, fit, extractor, desc = probe_setup(cfg, method, init, data_path, data_format, fraction, seed)
        eval_path, refs = _eval_frames(task, fcfg, test)
        t0 = time.time()
        r = probe_semseg(
            extractor,
            fit,
            FrameSet(eval_path, refs, f"{where}: {len(refs)} frames"),
            label_set=fcfg.data.label_set,
            pixels_per_frame=cfg.probe.pixels_per_frame,
            seed=seed,
            progress=progress,
        )
        r.pop("examples", None)
        log(f"[probe] {method} fraction={fraction:g} seed={seed} on {where}: mIoU {100 * r['miou']:.1f} ({desc})")
        scores = {k: r[k] for k in ("miou", "pixel_acc", "mean_acc", "per_class_iou")}
        cell.finish(
            {
                "results": {"metric": "miou", "final": {"value": r["miou"], "scores": scores}},
                "probe": {k: v for k, v in r.items() if k not in ("per_class", "per_class_iou")},
                "backbone": desc,
                "features": extractor.describe(),
                "seconds": time.time() - t0,
            }
        )
    return cell.result() | {"dir": str(cell.dir)}
