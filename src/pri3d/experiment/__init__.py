"""The paper's protocol: methods x label fractions x seeds, each cell cached and resumable.

An experiment config (YAML, see ``configs/``) names the data (or synthetic-generator settings),
``pri3d prepare`` options, a pre-training preset with per-method overrides, a fine-tuning preset, the
methods, fractions and seeds. :func:`run_experiment` runs:

1. data: the labelled dataset (generated when ``data.synth.scenes > 0``, else ``data.path``); its
   ``train`` split is fine-tuned on (a label fraction of it), its ``val`` split scores every run and
   is where settings are chosen. Optionally a separate unlabelled pre-training dataset
   (``data.pretrain_synth``, its own generator seed) and a test set (``data.test_synth`` or
   ``data.test_path``, yet another seed), scored only when ``test: true`` (once, at the end);
2. prepare: mine pairs and geometry of the pre-training data;
3. pretrain: one run per pre-training method (``trivial``, ``mocov2``, ``view``, ``geo``,
   ``view+geo``), as in the paper. With ``pretrain.stage1`` (e.g. ``mocov2``), that method runs first
   and every other pre-training method starts from its encoder (the paper's two-stage pipeline,
   Table 4);
4. finetune: one run per (method, fraction, seed); ``scratch`` and ``imagenet`` need no
   pre-training; with ``test: true`` each final model is also scored on the test set;
5. report: ``results.json``, ``table.md`` (Table-1 shape: mean +- std across seeds, delta against the
   reference method, paired deltas per seed) and ``curve.png`` (Figure-5 shape: score against label
   fraction).

Caching: every cell lives in its own folder named by a hash of everything that determines it (its
resolved settings and the hashes of its inputs) and is finished when its ``done.json`` exists. A
re-run skips finished cells, so a killed experiment resumes where it stopped, and changing a setting
re-runs only the cells it affects. Pre-training and fine-tuning cells also resume from their own
checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from pri3d.config import build, to_dict
from pri3d.errors import ConfigError, DataError
from pri3d.fsutil import atomic_open
from pri3d.pretrain.modes import MODES

__all__ = ["ExperimentConfig", "load_experiment", "run_experiment", "PRETRAIN_METHODS", "ALL_METHODS"]

PRETRAIN_METHODS = tuple(MODES)  # the registered pre-training modes (trivial, mocov2, view, geo, view+geo)
ALL_METHODS = ("scratch", "imagenet") + PRETRAIN_METHODS  # scratch and imagenet need no pre-training
METHOD_LABELS = {
    "scratch": "Scratch",
    "imagenet": "ImageNet",
    "trivial": "Trivial corr.",
    "mocov2": "MoCoV2 (scans)",
    "view": "Pri3D (view)",
    "geo": "Pri3D (geo)",
    "view+geo": "Pri3D (view+geo)",
}


@dataclass
class SynthSpec:
    scenes: int = 0  # > 0: generate this many scenes with `pri3d synth`
    frames_per_scene: int = 30
    seed: int = 0
    resolution: list[int] = field(default_factory=lambda: [120, 160])
    workers: int = 2
    materials: str = "shared"  # object colours/textures: one palette for all classes, or class-typical


@dataclass
class DataSpec:
    synth: SynthSpec = field(default_factory=SynthSpec)  # the labelled data (and the pre-training data
    # unless pretrain_synth is set)
    path: str = ""  # pre-training RGB-D scans (used when synth.scenes == 0)
    format: str | None = None
    pretrain_split: str = "train"  # pre-training scenes: a split name (<dataset>/splits/<name>.txt) or a file
    finetune_path: str = ""  # labelled downstream dataset; "" = the same dataset
    finetune_format: str | None = None
    # Unlabelled pre-training scans from their own generator seed (scenes > 0); pre-training then uses
    # this dataset's pretrain_split, and its val split for the label-free matching recall.
    pretrain_synth: SynthSpec = field(default_factory=SynthSpec)
    # The test set, scored only when `test: true`: generated (scenes > 0, its own seed) or a path.
    test_synth: SynthSpec = field(default_factory=SynthSpec)
    test_path: str = ""
    test_format: str | None = None


@dataclass
class PretrainSpec:
    preset: str = "cpu-small"
    overrides: list[str] = field(default_factory=list)
    per_method: dict = field(default_factory=dict)  # method -> list of extra overrides
    presets: dict = field(default_factory=dict)  # method -> preset replacing `preset` (e.g. mocov2: mocov2)
    stage1: str = ""  # a pre-training method (e.g. mocov2) whose encoder every other one starts from


@dataclass
class FinetuneSpec:
    task: str = "semseg"
    preset: str = "cpu-small-semseg"
    overrides: list[str] = field(default_factory=list)
    # method -> extra overrides. MoCoV2 trains the encoder only, so only the encoder is transferred.
    per_method: dict = field(default_factory=lambda: {"mocov2": ["model.transfer=encoder"]})
    metric: str = "miou"  # key of the fine-tuning results used in the table


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    out: str = "runs/experiment"
    data: DataSpec = field(default_factory=DataSpec)
    prepare: dict = field(default_factory=dict)  # keyword options of pri3d.data.prepare
    pretrain: PretrainSpec = field(default_factory=PretrainSpec)
    finetune: FinetuneSpec = field(default_factory=FinetuneSpec)
    methods: list[str] = field(default_factory=lambda: list(ALL_METHODS))
    fractions: list[float] = field(default_factory=lambda: [0.2, 0.4, 0.6, 0.8, 1.0])
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    reference: str = "scratch"
    test: bool = False  # also score every final model on the test set (do it once, after choosing settings)
    jobs: int = 1  # cells run in parallel processes (one torch thread each) when > 1; results do not depend on it
    base_dir: str = ""  # relative paths start here ("" = the current directory)

    def validate(self):
        bad = [m for m in self.methods if m not in ALL_METHODS]
        if bad:
            raise ConfigError(f"unknown method(s) {bad}; choose from {', '.join(ALL_METHODS)}")
        if not self.methods:
            raise ConfigError("methods must not be empty")
        for f in self.fractions:
            if not 0 < f <= 1:
                raise ConfigError(f"fractions must be in (0, 1], got {f}")
        if not self.seeds:
            raise ConfigError("seeds must not be empty")
        if self.reference not in self.methods:
            raise ConfigError(f"reference method {self.reference!r} is not in methods")
        if self.data.synth.scenes <= 0 and not self.data.path:
            raise ConfigError("data: set synth.scenes > 0 or a dataset path")
        st = self.pretrain.stage1
        if st and st not in PRETRAIN_METHODS:
            raise ConfigError(
                f"pretrain.stage1 must be a pre-training method ({', '.join(PRETRAIN_METHODS)}), got {st!r}"
            )
        if self.jobs < 1:
            raise ConfigError(f"jobs must be >= 1, got {self.jobs}")
        from pri3d.data.synth.scene import MATERIAL_MODES  # the generator's own list

        for what in ("synth", "pretrain_synth", "test_synth"):
            m = getattr(self.data, what).materials
            if m not in MATERIAL_MODES:
                raise ConfigError(f"data.{what}.materials must be one of {', '.join(MATERIAL_MODES)}, got {m!r}")
        if self.test and self.data.test_synth.scenes <= 0 and not self.data.test_path:
            raise ConfigError("test: true needs a test set (data.test_synth.scenes > 0 or data.test_path)")


def load_experiment(path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load an experiment YAML (+ ``key=value`` overrides) into a validated config."""
    import yaml

    from pri3d.config import apply_overrides

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: experiment config not found")
    try:
        d = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from e
    d = apply_overrides(d, overrides or [])
    return build(ExperimentConfig, d)


# ----------------------------------------------------------------------------- cells


# Bumped when the code behind a cell changes what it computes (e.g. the semantic-segmentation UNet's
# classifier layout): cells made by earlier code are then re-run instead of reused.
CELL_VERSION = 2


def _hash(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _write_json(path, obj) -> None:
    with atomic_open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=str)


class Cell:
    """A cached unit of work in ``root/<kind>/<name>-<hash>/``; finished when ``done.json`` exists."""

    def __init__(self, root: Path, kind: str, name: str, spec: dict):
        self.spec = spec
        self.key = _hash(spec)
        safe = name.replace("+", "_").replace("/", "_")
        self.dir = Path(root) / kind / f"{safe}-{self.key}"

    @property
    def done(self) -> bool:
        return (self.dir / "done.json").is_file()

    def result(self) -> dict:
        return json.loads((self.dir / "done.json").read_text())

    def finish(self, result: dict) -> dict:
        _write_json(self.dir / "done.json", result)
        return result

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        _write_json(self.dir / "spec.json", self.spec)


# ----------------------------------------------------------------------------- steps


def _resolve_path(base: str, p: str) -> Path:
    q = Path(p).expanduser()
    return q if q.is_absolute() else (Path(base or ".") / q).resolve()


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
    path = _resolve_path(cfg.base_dir, cfg.data.path)
    if not path.exists():
        raise DataError(f"{path}: dataset not found (data.path in the experiment config)")
    return path, _hash({"path": str(path)})


def test_data(cfg: ExperimentConfig, root: Path, log) -> tuple[Path, str | None, str]:
    """The test set: generated (its own seed) or given. Returns (path, format, hash key)."""
    if cfg.data.test_synth.scenes > 0:
        path, key = synth_cell(root, cfg.data.test_synth, "synth-test", log)
        return path, None, key
    path = _resolve_path(cfg.base_dir, cfg.data.test_path)
    if not path.exists():
        raise DataError(f"{path}: test set not found (data.test_path in the experiment config)")
    return path, cfg.data.test_format, _hash({"path": str(path)})


def prepare_cell(
    cfg: ExperimentConfig, root: Path, data_path: Path, data_key: str, log, data_format: str | None = None
) -> tuple[Path, str]:
    """Pairs and geometry of every scene, cached. (Which scenes pre-training may use is decided by
    ``data.pretrain_split``; the held-out scenes' pairs only serve the label-free matching recall.)"""
    spec = {"data": data_key, "format": data_format, "options": cfg.prepare}
    cell = Cell(root, "prepared", "prepared", spec)
    if not cell.done:
        from pri3d.data.prepare import PrepareParams, prepare

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


def pretrain_overrides(cfg: ExperimentConfig, method: str, init: str | None = None) -> tuple[str, list[str]]:
    """The preset and overrides of ``method``'s pre-training (``init``: the Stage-I weights it starts
    from). One builder for running and for ``--check``."""
    overrides = [
        *cfg.pretrain.overrides,
        *cfg.pretrain.per_method.get(method, []),
        f"mode={method}",
        f"data.train_split={cfg.data.pretrain_split}",
    ]
    if init:
        overrides.append(f"model.init={init}")
    return cfg.pretrain.presets.get(method, cfg.pretrain.preset), overrides


def pretrain_spec(cfg: ExperimentConfig, method: str, prep_key: str, init: tuple[str, str] | None = None) -> dict:
    """What determines ``method``'s pre-training cell: its inputs, preset, overrides and the resolved
    settings (so that editing a preset file invalidates the cells it made). ``init``: ``(path, key)`` of
    the Stage-I weights."""
    from pri3d.config import resolve
    from pri3d.pretrain.config import PretrainConfig

    preset, overrides = pretrain_overrides(cfg, method, init[0] if init else None)
    settings = to_dict(resolve(PretrainConfig, preset, overrides, "pretrain"))
    return {
        "prepared": prep_key,
        "preset": preset,
        "overrides": overrides,
        "settings": settings,
        "init": init[1] if init else None,
        "version": CELL_VERSION,
    }


def pretrain_cell(
    cfg: ExperimentConfig,
    root: Path,
    method: str,
    prepared: Path,
    prep_key: str,
    log=print,
    init: tuple[str, str] | None = None,
    progress: bool = True,
) -> dict:
    """One pre-training run for ``method`` (starting from the Stage-I weights ``init = (path, key)``);
    returns its result: ``backbone`` (the exported weights' path), ``seconds``, the training ``summary``
    and the cell's ``dir``."""
    spec = pretrain_spec(cfg, method, prep_key, init)
    preset, overrides = spec["preset"], spec["overrides"]
    cell = Cell(root, "pretrain", method, spec)
    if not cell.done:
        from pri3d.config import resolve
        from pri3d.pretrain.config import PretrainConfig
        from pri3d.pretrain.loop import train

        cell.start()
        pcfg = resolve(
            PretrainConfig, preset, [*overrides, f"data.path={prepared}", f"out={cell.dir / 'run'}"], "pretrain"
        )
        pcfg.train.progress = pcfg.train.progress and progress  # display only: not part of the cell's key
        start = f" from {Path(init[0]).parent.parent.name}" if init else ""
        log(f"[pretrain] {method}{start}: {pcfg.train.steps} steps, {pcfg.model.arch} -> {cell.dir / 'run'}")
        t0 = time.time()
        summary = train(pcfg, resume=(cell.dir / "run" / "checkpoints").is_dir())
        cell.finish(
            {
                "backbone": str((cell.dir / "run" / "backbone.pth").resolve()),
                "seconds": time.time() - t0,
                "summary": summary,
            }
        )
    return cell.result() | {"dir": str(cell.dir)}


def pretrain_table(pretrained: dict[str, dict], radius: str = "recall@4px") -> str:
    """Markdown table of pre-training runs (method -> pretrain cell result): steps, time, final loss
    and the held-out feature-matching recall of the same network at initialisation and after."""
    lines = [f"| method | steps | time | final loss | held-out {radius} at init | after |", "|---|---|---|---|---|---|"]

    def fmt(x):
        return "-" if x is None else f"{x:.3f}"

    for m, res in pretrained.items():
        sm = res.get("summary", {})
        init = (sm.get("recall_init") or {}).get(radius)
        after = (sm.get("recall") or {}).get(radius)
        secs = res.get("seconds")
        lines.append(
            f"| {m} | {sm.get('steps')}{' (time budget)' if sm.get('stopped_early') else ''} | "
            f"{'-' if secs is None else f'{secs / 60:.1f} min'} | {fmt(sm.get('final_loss'))} | "
            f"{fmt(init)} | {fmt(after)} |"
        )
    return "\n".join(lines)


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
    from pri3d.downstream import finetune_config, run_finetune

    overrides = [*cfg.finetune.overrides, *cfg.finetune.per_method.get(method, [])]
    # The resolved settings are part of the key (the init path is keyed by init_key).
    settings = to_dict(
        finetune_config(
            cfg.finetune.preset, [*overrides, f"task={cfg.finetune.task}", f"seed={seed}"], fraction=fraction
        )
    )
    spec = {
        "data": data_key,
        "init": init_key,
        "task": cfg.finetune.task,
        "preset": cfg.finetune.preset,
        "overrides": overrides,
        "fraction": fraction,
        "seed": seed,
        "settings": settings,
        "version": CELL_VERSION,
    }
    cell = Cell(root, "finetune", f"{method}-f{fraction:g}-s{seed}", spec)
    if not cell.done:
        cell.start()
        fcfg = finetune_config(
            cfg.finetune.preset,
            [*overrides, f"task={cfg.finetune.task}", f"init={init}", f"seed={seed}", f"out={cell.dir / 'run'}"],
            root=str(data_path),
            format=data_format,
            fraction=fraction,
        )
        log(f"[finetune] {method} fraction={fraction:g} seed={seed} -> {cell.dir / 'run'}")
        t0 = time.time()
        res = run_finetune(fcfg, resume=(cell.dir / "run" / "checkpoints").is_dir(), progress=progress, log=log)
        cell.finish({"results": res, "seconds": time.time() - t0})
    return cell.result() | {"dir": str(cell.dir)}


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
    from pri3d.downstream.loop import evaluate_checkpoint
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
        split.write_text("\n".join(scenes) + "\n")
        log(f"[test] {Path(ft_dir).name}: final model ({ckpts[-1].name}) on {len(scenes)} test scenes")
        t0 = time.time()
        r = evaluate_checkpoint(ckpts[-1], data=str(test_path), format=test_format, split=str(split), progress=False)
        value = _metric({"final": {"scores": r["scores"]}}, cfg.finetune.metric, "final")
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


# ----------------------------------------------------------------------------- aggregation


def _metric(res: dict, name: str, which: str) -> float | None:
    """``name`` (a dotted key such as ``miou`` or ``bbox.AP``) from the ``final`` or ``best`` block of
    a fine-tuning results dict."""
    block = res.get(which) or {}
    if res.get("metric") == name and block.get("value") is not None:
        return float(block["value"])
    v = block.get("scores") or {}
    for part in name.split("."):
        v = v.get(part) if isinstance(v, dict) else None
    return None if v is None else float(v)


def _mean_std(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return m, sd


def summarize(cells: list[dict], cfg: ExperimentConfig, which: str = "final", metric: str | None = None) -> dict:
    """``{method: {fraction: {"mean", "std", "n", "values"}}}`` for ``metric`` (default: the table
    metric, ``finetune.metric``; any score key of the results, e.g. ``pixel_acc``)."""
    out: dict = {}
    for c in cells:
        v = _metric(c["results"], metric or cfg.finetune.metric, which)
        if v is None:
            continue
        out.setdefault(c["method"], {}).setdefault(c["fraction"], []).append(v)
    return {
        m: {f: dict(zip(("mean", "std"), _mean_std(vs))) | {"n": len(vs), "values": vs} for f, vs in fr.items()}
        for m, fr in out.items()
    }


def method_label(cfg: ExperimentConfig, m: str) -> str:
    """A method's row label; with a Stage-I init, the Stage-I method and the methods built on it say so."""
    label = METHOD_LABELS.get(m, m)
    st = cfg.pretrain.stage1
    if st and m == st:
        return f"{label}: Stage I alone"
    if st and m in PRETRAIN_METHODS:
        return f"{label} on Stage I"
    return label


def paired_deltas(cells: list[dict], cfg: ExperimentConfig, which: str = "final") -> dict:
    """``{method: {fraction: {"deltas": [per seed], "mean", "std", "wins"}}}``: each seed's score minus the
    reference method's score with the same seed (the same label subset), the paired comparison."""
    by = {}
    for c in cells:
        v = _metric(c["results"], cfg.finetune.metric, which)
        if v is not None:
            by[(c["method"], c["fraction"], c["seed"])] = v
    out: dict = {}
    for (m, f, sd), v in sorted(by.items()):
        ref = by.get((cfg.reference, f, sd))
        if m == cfg.reference or ref is None:
            continue
        out.setdefault(m, {}).setdefault(f, []).append(v - ref)
    return {
        m: {
            f: {"deltas": d, **dict(zip(("mean", "std"), _mean_std(d))), "wins": sum(x > 0 for x in d)}
            for f, d in fr.items()
        }
        for m, fr in out.items()
    }


def paired_table(deltas: dict, cfg: ExperimentConfig, scale: float = 100.0) -> str:
    """Markdown: per method and fraction, the paired deltas against the reference (per seed, mean ± std,
    how many seeds are above)."""
    lines = [
        f"| Method | fraction | paired delta vs {method_label(cfg, cfg.reference)} per seed {cfg.seeds} | "
        "mean ± std | seeds above |",
        "|---|---|---|---|---|",
    ]
    for m in cfg.methods:
        for f, d in sorted(deltas.get(m, {}).items()):
            per = ", ".join(f"{x * scale:+.1f}" for x in d["deltas"])
            lines.append(
                f"| {method_label(cfg, m)} | {f * 100:g}% | {per} | {d['mean'] * scale:+.1f} ± "
                f"{d['std'] * scale:.1f} | {d['wins']}/{len(d['deltas'])} |"
            )
    return "\n".join(lines)


def markdown_table(summary: dict, cfg: ExperimentConfig, scale: float = 100.0) -> str:
    """Table-1 shape: rows = methods, columns = fractions; mean +- std over seeds and the delta of the
    mean against the reference method."""
    fracs = sorted({f for fr in summary.values() for f in fr})
    head = "| Method | " + " | ".join(f"{f * 100:g}%" for f in fracs) + " |"
    sep = "|---|" + "---|" * len(fracs)
    lines = [head, sep]
    ref = summary.get(cfg.reference, {})
    for m in cfg.methods:
        if m not in summary:
            continue
        cells = []
        for f in fracs:
            s = summary[m].get(f)
            if s is None:
                cells.append("–")
                continue
            txt = f"{s['mean'] * scale:.1f} ± {s['std'] * scale:.1f}"
            if m != cfg.reference and f in ref:
                txt += f" ({(s['mean'] - ref[f]['mean']) * scale:+.1f})"
            cells.append(txt)
        lines.append(f"| {method_label(cfg, m)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def epoch_table(cells: list[dict], cfg: ExperimentConfig, scale: float = 100.0) -> str:
    """The validation metric at every evaluation of fine-tuning (mean over seeds, lowest label
    fraction): whether every method's fine-tuning had plateaued by the final epoch."""
    f = min(cfg.fractions)
    by: dict = {}
    for c in cells:
        if c["fraction"] != f:
            continue
        for h in c["results"].get("history", []):
            if h.get("value") is not None:
                by.setdefault(c["method"], {}).setdefault(h["epoch"], []).append(h["value"])
    epochs = sorted({e for d in by.values() for e in d})
    if not epochs:
        return ""
    lines = ["| Method | " + " | ".join(f"ep {e:g}" for e in epochs) + " |", "|---|" + "---|" * len(epochs)]
    for m in cfg.methods:
        if m in by:
            vals = [by[m].get(e) for e in epochs]
            lines.append(
                f"| {method_label(cfg, m)} | "
                + " | ".join("-" if v is None else f"{scale * sum(v) / len(v):.1f}" for v in vals)
                + " |"
            )
    return "\n".join(lines)


def curve_plot(path, summary: dict, cfg: ExperimentConfig, scale: float = 100.0) -> Path:
    from pri3d.viz import plot_curves

    series = {}
    for m in cfg.methods:
        if m in summary:
            fr = sorted(summary[m])
            series[method_label(cfg, m)] = (
                [f * 100 for f in fr],
                [summary[m][f]["mean"] * scale for f in fr],
                [summary[m][f]["std"] * scale for f in fr],
            )
    return plot_curves(
        path,
        series,
        xlabel="% of training labels",
        ylabel=f"{cfg.finetune.metric} (x{scale:g})",
        title=f"{cfg.name}: data efficiency",
    )


# ----------------------------------------------------------------------------- driver


def imagenet_available(arch: str) -> tuple[bool, str]:
    from pri3d.errors import InitError
    from pri3d.models.init import imagenet_state_dict

    try:
        imagenet_state_dict(arch)
        return True, ""
    except InitError as e:
        return False, str(e)


def _job_init() -> None:
    import torch

    torch.set_num_threads(1)  # the processes are the parallelism (shared CPUs: see train.threads)


def _job(fn, args: tuple, kwargs: dict):
    return fn(*args, log=lambda msg: print(msg, flush=True), progress=False, **kwargs)


def run_cells(jobs: int, fn, calls: list[tuple[tuple, dict]], log) -> list:
    """``[fn(*args, **kwargs) for args, kwargs in calls]``, in ``jobs`` spawned processes when ``jobs > 1``
    (results in call order). Every cell is cached on disk, so a failure loses only the cells in flight."""
    if jobs <= 1 or len(calls) <= 1:
        return [fn(*a, log=log, **kw) for a, kw in calls]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(
        max_workers=min(jobs, len(calls)), mp_context=mp.get_context("spawn"), initializer=_job_init
    ) as ex:
        futures = [ex.submit(_job, fn, a, kw) for a, kw in calls]
        return [f.result() for f in futures]


def run_experiment(cfg: ExperimentConfig, log=print) -> dict:
    """Run (or resume) every cell, then write results.json, table.md and curve.png into ``cfg.out``.

    The returned dict holds the cells' folders (``dirs``: ``data``, ``pretrain_data``, ``prepared``,
    ``pretrain`` per method, ``finetune`` per (method, fraction, seed)) so callers never search the disk."""
    out = _resolve_path(cfg.base_dir, cfg.out) if not Path(cfg.out).is_absolute() else Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    data_path, data_key = data_cell(cfg, out, log)
    dirs: dict = {"data": str(data_path), "pretrain": {}, "finetune": {}, "test": {}}
    methods = list(cfg.methods)
    skipped = {}
    if "imagenet" in methods:
        arch = _finetune_arch(cfg)
        ok, why = imagenet_available(arch)
        if not ok:
            log(f"[imagenet] skipped: {why}")
            skipped["imagenet"] = why
            methods.remove("imagenet")
    inits: dict[str, tuple[str, str]] = {}
    pretrained: dict[str, dict] = {}
    todo = [m for m in methods if m in PRETRAIN_METHODS]
    st = cfg.pretrain.stage1
    if st and todo:  # Stage I first; its weights are needed even when its own row is not asked for
        todo = [st] + [m for m in todo if m != st]
    if todo:
        if cfg.data.pretrain_synth.scenes > 0:  # unlabelled scans of their own seed
            pre_path, pre_key = synth_cell(out, cfg.data.pretrain_synth, "synth-pretrain", log)
            pre_format = None
        else:
            pre_path, pre_key, pre_format = data_path, data_key, cfg.data.format
        dirs["pretrain_data"] = str(pre_path)
        prepared, prep_key = prepare_cell(cfg, out, pre_path, pre_key, log, data_format=pre_format)
        dirs["prepared"] = str(prepared)
        done_pre = {}
        if st:  # Stage I first (alone: it may use every core), then the methods built on it in parallel
            done_pre[st] = pretrain_cell(cfg, out, st, prepared, prep_key, log)
        stage1 = (done_pre[st]["backbone"], _hash({"backbone": done_pre[st]["backbone"]})) if st else None
        rest = [m for m in todo if m != st]
        calls = [((cfg, out, m, prepared, prep_key), {"init": stage1}) for m in rest]
        done_pre.update(zip(rest, run_cells(cfg.jobs, pretrain_cell, calls, log)))
        for m in todo:
            r = done_pre[m]
            dirs["pretrain"][m] = r["dir"]
            if m in methods:
                pretrained[m] = r
                inits[m] = (r["backbone"], _hash({"backbone": r["backbone"]}))
    for m in ("scratch", "imagenet"):
        if m in methods:
            inits[m] = (m, m)
    if cfg.data.finetune_path:
        ft_path = _resolve_path(cfg.base_dir, cfg.data.finetune_path)
        ft_format, ft_key = cfg.data.finetune_format, _hash({"path": str(ft_path)})
    else:
        ft_path, ft_format, ft_key = data_path, cfg.data.format, data_key
    test = test_data(cfg, out, log) if cfg.test else None
    cells, test_cells = [], []
    grid = [(m, f, sd) for m in methods for f in cfg.fractions for sd in cfg.seeds]
    calls = [((cfg, out, m, *inits[m], ft_path, ft_format, ft_key, f, sd), {}) for m, f, sd in grid]
    log(f"[experiment] {len(grid)} fine-tuning cells ({cfg.jobs} at a time)")
    for (m, f, sd), r in zip(grid, run_cells(cfg.jobs, finetune_cell, calls, log)):
        dirs["finetune"][(m, f, sd)] = r["dir"]
        cells.append({"method": m, "fraction": f, "seed": sd, "results": r["results"], "seconds": r.get("seconds")})
    if test is not None:
        calls = [((cfg, out, Path(dirs["finetune"][k]), *test), {}) for k in grid]
        for (m, f, sd), t in zip(grid, run_cells(cfg.jobs, test_cell, calls, log)):
            dirs["test"][(m, f, sd)] = t["dir"]
            test_cells.append({"method": m, "fraction": f, "seed": sd, "results": t["results"]})
    summary = {w: summarize(cells, cfg, w) for w in ("final", "best")}
    deltas = paired_deltas(cells, cfg, "final")
    results = {
        "name": cfg.name,
        "config": to_dict(cfg),
        "metric": cfg.finetune.metric,
        "cells": cells,
        "summary_final": summary["final"],
        "summary_best": summary["best"],
        "paired_final": deltas,
        "skipped": skipped,
        "pretrain": {m: {"seconds": r.get("seconds"), "summary": r.get("summary")} for m, r in pretrained.items()},
        "seconds": time.time() - t0,
    }
    table = markdown_table(summary["final"], cfg)
    best = markdown_table(summary["best"], cfg)
    text = (
        f"## {cfg.name}: {cfg.finetune.metric} on the validation scenes (final epoch; mean ± std over seeds "
        f"{cfg.seeds}, delta vs {cfg.reference})\n\n{table}\n\n### Paired by seed (same label subset)\n\n"
        f"{paired_table(deltas, cfg)}\n\n### Best-on-val (as the official numbers; optimistic)\n\n{best}\n"
    )
    epochs = epoch_table(cells, cfg)
    if epochs:
        text += (
            f"\n### Validation {cfg.finetune.metric} during fine-tuning ({min(cfg.fractions) * 100:g} % of the "
            f"labels, mean over seeds): plateaued?\n\n{epochs}\n"
        )
    if test_cells:
        summary["test"] = summarize(test_cells, cfg, "final")
        tdeltas = paired_deltas(test_cells, cfg, "final")
        results.update(test_cells=test_cells, summary_test=summary["test"], paired_test=tdeltas)
        text += (
            f"\n## Test scenes (generator seed {cfg.data.test_synth.seed if cfg.data.test_synth.scenes else '-'}"
            f"; final models, scored once)\n\n{markdown_table(summary['test'], cfg)}\n\n"
            f"### Test, paired by seed\n\n{paired_table(tdeltas, cfg)}\n"
        )
    if pretrained:
        text += (
            f"\n### Pre-training (label-free check: feature-matching recall on held-out pairs)\n\n"
            f"{pretrain_table(pretrained)}\n"
        )
    results["dirs"] = {
        k: (
            {"/".join(map(str, kk)) if isinstance(kk, tuple) else kk: vv for kk, vv in v.items()}
            if isinstance(v, dict)
            else v
        )
        for k, v in dirs.items()
    }
    _write_json(out / "results.json", results)
    with atomic_open(out / "table.md", "w") as fh:
        fh.write(text)
    curve_plot(out / "curve.png", summary["final"], cfg)
    log(table)
    log(f"[experiment] wrote {out / 'results.json'}, {out / 'table.md'}, {out / 'curve.png'}")
    results["cell_dirs"] = dirs
    return results


def _finetune_arch(cfg: ExperimentConfig) -> str:
    from pri3d.downstream import finetune_config

    return finetune_config(cfg.finetune.preset, cfg.finetune.overrides).model.arch


def check_experiment(cfg: ExperimentConfig, *, require_data: bool = False) -> list[str]:
    """Validate an experiment config without running it: every preset and override resolves to a
    valid pre-training / fine-tuning config for every method, and every path it names is reported
    (missing datasets are an error only with ``require_data``). Returns report lines; raises
    :class:`ConfigError` on the first problem."""
    from pri3d.config import resolve
    from pri3d.downstream import finetune_config
    from pri3d.pretrain.config import PretrainConfig

    lines = [f"experiment {cfg.name!r}: methods {cfg.methods}, fractions {cfg.fractions}, seeds {cfg.seeds}"]
    st = cfg.pretrain.stage1
    for m in cfg.methods:
        if m in PRETRAIN_METHODS:
            init = "STAGE1_WEIGHTS.pth" if st and m != st else None  # a placeholder path: not read here
            preset, ov = pretrain_overrides(cfg, m, init)
            p = resolve(PretrainConfig, preset, ov, "pretrain")
            lines.append(
                f"  pretrain {m}: preset {preset} -> {p.model.arch}, {p.train.steps} steps, "
                f"batch {p.train.batch_size}, lr {p.optim.lr}, train split {p.data.train_split}"
                f"{f', from the {st} (Stage I) weights' if init else ''}"
            )
    unknown = (set(cfg.pretrain.per_method) | set(cfg.pretrain.presets)) - set(PRETRAIN_METHODS)
    if unknown:
        raise ConfigError(f"pretrain.per_method names unknown method(s): {sorted(unknown)}")
    f = finetune_config(cfg.finetune.preset, [*cfg.finetune.overrides, f"task={cfg.finetune.task}"])
    length = f"{f.train.iters} iterations" if f.train.iters > 0 else f"{f.train.epochs} epochs"
    lines.append(
        f"  finetune {f.task}: preset {cfg.finetune.preset} -> {f.model.arch}/{f.model.head}, "
        f"{length}, batch {f.train.batch_size}, lr {f.optim.lr}"
    )
    if cfg.prepare:
        from pri3d.data.prepare import PrepareParams

        opts = {k: v for k, v in cfg.prepare.items() if k != "workers"}
        try:
            PrepareParams(**opts).check()
        except TypeError as e:
            raise ConfigError(f"prepare: {e}") from e
    paths = []
    if cfg.data.synth.scenes <= 0:
        paths.append(("data.path", _resolve_path(cfg.base_dir, cfg.data.path)))
    if cfg.data.test_path and cfg.data.test_synth.scenes <= 0:
        paths.append(("data.test_path", _resolve_path(cfg.base_dir, cfg.data.test_path)))
    if cfg.data.finetune_path:
        paths.append(("data.finetune_path", _resolve_path(cfg.base_dir, cfg.data.finetune_path)))
    for what, p in paths:
        if p.exists():
            lines.append(f"  {what}: {p} (found)")
        elif require_data:
            raise DataError(f"{what}: {p} does not exist")
        else:
            lines.append(f"  {what}: {p} (not on this machine)")
    lines.append("config OK")
    return lines
