"""``pri3d experiment --check``: validate an experiment config without running anything.

Every pre-training and fine-tuning config is built by the cells' own builders
(:func:`~pri3d.experiment.cells.build_pretrain_config`, :func:`~pri3d.experiment.cells.build_finetune_config`),
so what passes here is what a run would build.
"""

from __future__ import annotations

from pri3d.errors import ConfigError, DataError
from pri3d.experiment.cells import build_finetune_config, build_pretrain_config, pretrain_preset
from pri3d.experiment.config import PRETRAIN_METHODS, ExperimentConfig, resolve_path

__all__ = ["check_experiment"]

STAGE1_PLACEHOLDER = "STAGE1_WEIGHTS.pth"  # stands for the Stage-I weights: a path, not read here


def check_experiment(cfg: ExperimentConfig, *, require_data: bool = False) -> list[str]:
    """Validate an experiment config without running it: every preset and override resolves to a
    valid pre-training / fine-tuning config for every cell, and every path it names is reported
    (missing datasets are an error only with ``require_data``). Returns report lines; raises
    :class:`ConfigError` on the first problem."""
    if cfg.awareness.captures:
        a = cfg.awareness
        lines = [
            f"experiment {cfg.name!r} (3D awareness): methods {cfg.methods}, on Stage I {a.stage1_methods}, "
            f"pre-training seeds {cfg.pretrain.seeds}, directions {[f'{p} -> {q}' for p, q in a.directions]}"
        ]
    else:
        lines = [f"experiment {cfg.name!r}: methods {cfg.methods}, fractions {cfg.fractions}, seeds {cfg.seeds}"]
    lines += _check_pretrain(cfg)
    if not cfg.awareness.captures:  # the awareness experiment fine-tunes nothing
        lines += _check_finetune(cfg)
    _check_prepare(cfg)
    path_lines = _check_paths(cfg, require_data)
    lines += path_lines
    missing = [ln.split(":")[0].strip() for ln in path_lines if ln.endswith("(not on this machine)")]
    if missing:  # the settings are valid; the run needs these paths on the machine that runs it
        lines.append(
            f"config OK, but {', '.join(missing)} not found on this machine: a run here would fail "
            "(--require-data makes this an error)"
        )
    else:
        lines.append("config OK")
    return lines


def _check_pretrain(cfg: ExperimentConfig) -> list[str]:
    st = cfg.pretrain.stage1
    methods = [m for m in cfg.methods if m in PRETRAIN_METHODS]
    if st and methods and st not in methods:
        methods.append(st)  # a run pre-trains the Stage-I method even when its own row is not asked for
    lines = []
    aware = bool(cfg.awareness.captures)  # there, `methods` start from random weights
    todo = [(m, STAGE1_PLACEHOLDER if st and m != st and not aware else None) for m in methods]
    todo += [(m, STAGE1_PLACEHOLDER) for m in cfg.awareness.stage1_methods] if aware else []
    for m, init in todo:
        p = build_pretrain_config(cfg, m, init)
        lines.append(
            f"  pretrain {m}: preset {pretrain_preset(cfg, m)} -> {p.model.arch}, {p.train.steps} steps, "
            f"batch {p.train.batch_size}, lr {p.optim.lr}, train split {p.data.train_split}"
            f"{f', from the {st} (Stage I) weights' if init else ''}"
        )
    if cfg.scaling.steps:
        from pri3d.experiment.scaling import scaling_config

        for m in cfg.scaling.methods:  # every step count builds (a bad override shows here, not hours later)
            steps = [
                build_pretrain_config(scaling_config(cfg, m, n), m, STAGE1_PLACEHOLDER).train.steps
                for n in sorted(cfg.scaling.steps)
            ]
            lines.append(f"  scaling {m}: steps {steps} from the {st} (Stage I) weights, read out by the probe")
    unknown = (set(cfg.pretrain.per_method) | set(cfg.pretrain.presets)) - set(PRETRAIN_METHODS)
    if unknown:
        raise ConfigError(f"pretrain.per_method names unknown method(s): {sorted(unknown)}")
    return lines


def _check_finetune(cfg: ExperimentConfig) -> list[str]:
    """Builds every fine-tuning cell's config; one line when all methods share the schedule, else one per
    method."""
    summary = {}
    for m in cfg.methods:
        configs = [build_finetune_config(cfg, m, f, sd) for f in cfg.fractions for sd in cfg.seeds]
        f = configs[0]
        length = f"{f.train.steps} iterations" if f.train.steps > 0 else f"{f.train.epochs} epochs"
        summary[m] = (
            f"preset {cfg.finetune.preset} -> {f.model.arch}/{f.model.head}, "
            f"{length}, batch {f.train.batch_size}, lr {f.optim.lr}"
        )
    if len(set(summary.values())) == 1:
        return [f"  finetune {cfg.finetune.task}: {summary[cfg.reference]}"]
    return [f"  finetune {cfg.finetune.task} {m}: {s}" for m, s in summary.items()]


def _check_prepare(cfg: ExperimentConfig) -> None:
    if cfg.prepare:
        from pri3d.pairs.mine import PrepareParams

        opts = {k: v for k, v in cfg.prepare.items() if k != "workers"}
        try:
            PrepareParams(**opts).check()
        except TypeError as e:
            raise ConfigError(f"prepare: {e}") from e


def _check_paths(cfg: ExperimentConfig, require_data: bool) -> list[str]:
    paths = [(f"awareness.captures.{n}", resolve_path(cfg.base_dir, p)) for n, p in cfg.awareness.captures.items()]
    if cfg.awareness.captures:
        pass
    elif cfg.data.synth.scenes <= 0:
        paths.append(("data.path", resolve_path(cfg.base_dir, cfg.data.path)))
    if cfg.data.test_path and cfg.data.test_synth.scenes <= 0:
        paths.append(("data.test_path", resolve_path(cfg.base_dir, cfg.data.test_path)))
    if cfg.data.finetune_path:
        paths.append(("data.finetune_path", resolve_path(cfg.base_dir, cfg.data.finetune_path)))
    lines = []
    for what, p in paths:
        if p.exists():
            lines.append(f"  {what}: {p} (found)")
        elif require_data:
            raise DataError(f"{what}: {p} does not exist")
        else:
            lines.append(f"  {what}: {p} (not on this machine)")
    return lines
