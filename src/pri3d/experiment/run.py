"""The experiment's driver: run (or resume) every cell, in a pool of processes when ``jobs > 1``, then
write the report (:func:`pri3d.experiment.report.write_results`)."""

from __future__ import annotations

import time
from pathlib import Path

from pri3d.experiment.cells import (
    build_finetune_config,
    cell_hash,
    data_cell,
    finetune_cell,
    floor_cell,
    prepare_cell,
    pretrain_cell,
    probe_cell,
    synth_cell,
    test_cell,
    test_data,
    weights_ref,
)
from pri3d.experiment.config import PRETRAIN_METHODS, ExperimentConfig, out_dir, pretrain_seed, resolve_path
from pri3d.experiment.pool import run_cells
from pri3d.experiment.report import write_results

__all__ = ["run_experiment", "run_cells", "imagenet_available"]

BASELINES = ("scratch", "imagenet")  # fine-tuned from their own init: no pre-training cell


def imagenet_available(arch: str) -> tuple[bool, str]:
    from pri3d.errors import InitError
    from pri3d.models.init import imagenet_state_dict

    try:
        imagenet_state_dict(arch)
        return True, ""
    except InitError as e:
        return False, str(e)


def run_experiment(cfg: ExperimentConfig, log=print) -> dict:
    """Run (or resume) every cell, then write results.json, table.md and curve.png into ``cfg.out``.

    The returned dict holds the cells' folders (``cell_dirs``: ``data``, ``pretrain_data``, ``prepared``,
    ``pretrain`` per method, ``finetune`` and ``test`` per (method, fraction, seed)) so callers never
    search the disk. An experiment with ``awareness.captures`` is the real-capture 3D-awareness experiment
    (:func:`pri3d.experiment.awareness.run_awareness`)."""
    if cfg.awareness.captures:
        from pri3d.experiment.awareness import run_awareness

        return run_awareness(cfg, log)
    out = out_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    data = data_cell(cfg, out, log)
    dirs: dict = {"data": str(data[0]), "pretrain": {}, "finetune": {}, "test": {}}
    methods, skipped = _available_methods(cfg, log)
    pretrained, inits, prepared = _pretrain_stage(cfg, out, methods, data, dirs, log)
    for m in BASELINES:
        if m in methods:
            for sd in cfg.pretrain.seeds:
                inits[(m, sd)] = (m, m)
    test = test_data(cfg, out, log) if cfg.test else None
    ft_data = _finetune_data(cfg, data)
    probes = _probe_stage(cfg, out, methods, inits, ft_data, test, log) if cfg.probe.enabled else {}
    cells, test_cells = [], []
    if cfg.finetune.enabled:
        cells = _finetune_stage(cfg, out, methods, inits, ft_data, dirs, log)
        test_cells = _test_stage(cfg, out, methods, test, dirs, log) if test is not None else []
    floors = _floor_stage(cfg, out, ft_data, test, log)
    scaling = None
    if cfg.scaling.steps:
        from pri3d.experiment.scaling import run_scaling

        scaling = run_scaling(cfg, out, prepared, inits, probes["val"], ft_data, log)
    results = write_results(
        cfg, out, cells, test_cells, pretrained, skipped, dirs, t0, log, floors=floors, probes=probes, scaling=scaling
    )
    results["cell_dirs"] = dirs
    return results


def _available_methods(cfg: ExperimentConfig, log) -> tuple[list[str], dict]:
    """The methods to run, without ``imagenet`` when its weights cannot be had (``skipped``: why)."""
    methods, skipped = list(cfg.methods), {}
    if "imagenet" in methods:
        arch = build_finetune_config(cfg, "imagenet", cfg.fractions[0], cfg.seeds[0]).model.arch
        ok, why = imagenet_available(arch)
        if not ok:
            log(f"[imagenet] skipped: {why}")
            skipped["imagenet"] = why
            methods.remove("imagenet")
    return methods, skipped


def _pretrain_order(cfg: ExperimentConfig, methods: list[str]) -> list[str]:
    """The pre-training cells to run: Stage I first (its weights are needed even when its own row is not
    asked for), then the methods' own."""
    todo = [m for m in methods if m in PRETRAIN_METHODS]
    st = cfg.pretrain.stage1
    if st and todo:
        todo = [st] + [m for m in todo if m != st]
    return todo


def _pretrain_stage(cfg: ExperimentConfig, out: Path, methods: list[str], data: tuple[Path, str], dirs: dict, log):
    """Prepare the pre-training data and run every pre-training cell, for every pre-training seed.
    Returns ``(pretrained, inits, prepared)``: the cell results of the methods in ``methods`` (``{method: [result
    per pre-training seed]}``), their weights as ``{(method, seed): (path, key)}`` and the prepared
    pre-training data as ``(path, cell key)`` (None when nothing is pre-trained)."""
    todo = _pretrain_order(cfg, methods)
    if not todo:
        return {}, {}, None
    if cfg.data.pretrain_synth.scenes > 0:  # unlabelled scans of their own seed
        pre_path, pre_key = synth_cell(out, cfg.data.pretrain_synth, "synth-pretrain", log)
        pre_format = None
    else:
        (pre_path, pre_key), pre_format = data, cfg.data.format
    dirs["pretrain_data"] = str(pre_path)
    prepared, prep_key = prepare_cell(cfg, out, pre_path, pre_key, log, data_format=pre_format)
    dirs["prepared"] = str(prepared)
    done = {}
    st = cfg.pretrain.stage1
    seeds = cfg.pretrain.seeds
    for sd in seeds:  # Stage I first (alone: it may use every core), then the methods built on it in parallel
        if st:
            done[(st, sd)] = pretrain_cell(cfg, out, st, prepared, prep_key, log, seed=sd)
    rest = [(m, sd) for sd in seeds for m in todo if m != st]
    calls = [
        (
            (cfg, out, m, prepared, prep_key),
            {"init": weights_ref(done[(st, sd)]["backbone"]) if st else None, "seed": sd},
        )
        for m, sd in rest
    ]
    done.update(zip(rest, run_cells(cfg.jobs, pretrain_cell, calls, log)))
    pretrained, inits = {}, {}
    for m in todo:
        dirs["pretrain"][m] = done[(m, seeds[0])]["dir"]
        for sd in seeds:
            dirs.setdefault("pretrain_seeds", {})[(m, sd)] = done[(m, sd)]["dir"]
            if m in methods:
                pretrained.setdefault(m, []).append(done[(m, sd)] | {"seed": sd})
                inits[(m, sd)] = weights_ref(done[(m, sd)]["backbone"])
    return pretrained, inits, (prepared, prep_key)


def _finetune_data(cfg: ExperimentConfig, data: tuple[Path, str]) -> tuple[Path, str | None, str]:
    """The labelled dataset: ``data.finetune_path``, else the experiment's dataset. ``(path, format, key)``."""
    if cfg.data.finetune_path:
        path = resolve_path(cfg.base_dir, cfg.data.finetune_path)
        return path, cfg.data.finetune_format, cell_hash({"path": str(path)})
    return data[0], cfg.data.format, data[1]


def _grid(cfg: ExperimentConfig, methods: list[str]) -> list[tuple[str, float, int]]:
    return [(m, f, sd) for m in methods for f in cfg.fractions for sd in cfg.seeds]


def _finetune_stage(cfg, out: Path, methods: list[str], inits: dict, ft_data: tuple, dirs: dict, log) -> list[dict]:
    """One fine-tuning cell per (method, fraction, seed); returns the cells' results."""
    grid = _grid(cfg, methods)
    calls = [((cfg, out, m, *inits[(m, pretrain_seed(cfg, sd))], *ft_data, f, sd), {}) for m, f, sd in grid]
    log(f"[experiment] {len(grid)} fine-tuning cells ({cfg.jobs} at a time)")
    cells = []
    for (m, f, sd), r in zip(grid, run_cells(cfg.jobs, finetune_cell, calls, log)):
        dirs["finetune"][(m, f, sd)] = r["dir"]
        cells.append({"method": m, "fraction": f, "seed": sd, "results": r["results"], "seconds": r.get("seconds")})
    return cells


def _test_stage(cfg, out: Path, methods: list[str], test: tuple, dirs: dict, log) -> list[dict]:
    """Score every fine-tuning cell's final model on the test set; returns the scores."""
    grid = _grid(cfg, methods)
    calls = [((cfg, out, Path(dirs["finetune"][k]), *test), {}) for k in grid]
    test_cells = []
    for (m, f, sd), t in zip(grid, run_cells(cfg.jobs, test_cell, calls, log)):
        dirs["test"][(m, f, sd)] = t["dir"]
        test_cells.append({"method": m, "fraction": f, "seed": sd, "results": t["results"]})
    return test_cells


def _floor_stage(cfg, out: Path, ft_data: tuple, test: tuple | None, log) -> dict:
    """The floor cells (semantic segmentation): one per (fraction, seed) on the validation scenes, and on
    the test set when it is scored. ``{"val": [...], "test": [...]}``, each entry tagged with its
    fraction and seed."""
    if cfg.finetune.task != "semseg" or not cfg.finetune.floors:
        return {}
    floors: dict = {"val": [], "test": []}
    for f in cfg.fractions:
        for sd in cfg.seeds:
            floors["val"].append({"fraction": f, "seed": sd} | floor_cell(cfg, out, *ft_data, f, sd, log=log))
            if test is not None:
                r = floor_cell(cfg, out, *ft_data, f, sd, test=test, log=log)
                floors["test"].append({"fraction": f, "seed": sd} | r)
    return floors


def _probe_stage(cfg, out: Path, methods: list[str], inits: dict, ft_data: tuple, test: tuple | None, log) -> dict:
    """One probe cell per (method, fraction, seed) on the validation scenes, and on the test set when it
    is scored: ``{"val": [cells], "test": [cells]}`` in the fine-tuning cells' shape."""
    grid = _grid(cfg, methods)
    probes: dict = {}
    for where, t in (("val", None), ("test", test)):
        if where == "test" and test is None:
            continue
        calls = [
            ((cfg, out, m, *inits[(m, pretrain_seed(cfg, sd))], *ft_data, f, sd), {"test": t}) for m, f, sd in grid
        ]
        log(f"[experiment] {len(grid)} probe cells on {where} ({cfg.jobs} at a time)")
        res = run_cells(cfg.jobs, probe_cell, calls, log)
        probes[where] = [
            {"method": m, "fraction": f, "seed": sd, "results": r["results"], "seconds": r.get("seconds")}
            for (m, f, sd), r in zip(grid, res)
        ]
    return probes
