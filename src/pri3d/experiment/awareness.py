"""The real-capture 3D-awareness experiment: pre-train on one RGB-D capture, read the frozen features out
on another that pre-training never saw (an experiment config with ``awareness.captures``; run by
``pri3d experiment`` as the semantic-segmentation protocol is).

For every direction ``[pre-training capture, probed capture]`` and every pre-training seed
(``pretrain.seeds``):

1. prepare both captures (pairs and voxel geometry, ``prepare`` options), cached;
2. pre-train every method of ``methods`` from random weights, and the Stage-I method
   (``pretrain.stage1``) followed by every ``awareness.stage1_methods`` method from its weights (the rows
   "X on Stage I"), on every pair of the pre-training capture (``data.pretrain_split``);
3. read out each pre-trained backbone (and ``scratch``, a random-init network of the same arch and seed)
   on the probed capture only, frozen, at the pre-training resolution:

   * the depth and normal probes (:mod:`pri3d.probe`), their heads fitted on the frames in
     ``awareness.fit_part`` of the probed capture's frame order and scored on those in
     ``awareness.test_part`` (a gap between the two; at most ``max_frames`` each, evenly spaced), with
     ``pixels_per_frame`` fit pixels per frame; their floor is the constant predictor of each probe;
   * correspondence recall and relative pose (:func:`pri3d.pretrain.matching_eval.matching_recall`) on a
     fixed sample of the probed capture's mined pairs, at most ``pairs_per_bin`` per bin of relative
     camera rotation (so large viewpoint changes are not drowned by the many near-duplicates of a
     sequence), ``points`` ground-truth correspondences per pair.

   The readout seed is the pre-training seed (the scratch network's init, the probes' fit pixels and the
   matching points), so every row of one seed is scored on the same pixels, points and pairs: the paired
   deltas against random init and against Stage I are per seed.
4. report: ``results.json``, ``table.md`` and one ``recall_by_rotation-<pre>-to-<probe>.png`` per
   direction; each readout cell of the first seed also keeps pictures (``depth.png``, ``normals.png``:
   colour | sensor | probe; ``match.png``: one pair of the largest rotation bin present, nearest-neighbour
   matches of ground-truth points, green within 8 px of the truth, red beyond).

Every cell is cached (:class:`~pri3d.experiment.cells.Cell`) and a re-run resumes; the pre-training cells
are the semantic-segmentation experiment's own (:func:`~pri3d.experiment.cells.pretrain_cell`).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from pri3d.engine.io import atomic_write_text, write_json
from pri3d.errors import DataError
from pri3d.experiment.cells import (
    Cell,
    build_pretrain_config,
    cell_hash,
    prepare_cell,
    pretrain_cell,
    weights_ref,
)
from pri3d.experiment.config import ExperimentConfig, out_dir, resolve_path
from pri3d.experiment.report import mean_std

__all__ = [
    "ROTATION_LABELS",
    "MATCH_RADIUS",
    "rows",
    "row_label",
    "probe_frames",
    "pairs_cell",
    "readout_cell",
    "run_awareness",
    "awareness_tables",
]

MATCH_RADIUS = 8.0  # input pixels: the recall read in the table, the plot and the match picture
ROTATION_LABELS = ("0-15", "15-30", "30-60", "60-180")  # pri3d.pretrain.matching_eval.ROTATION_BINS
CELL_VERSION = 1  # bumped when a readout's computation changes


def rows(cfg: ExperimentConfig) -> list[str]:
    """The table's rows: ``methods`` (random init / from scratch pre-training), then ``"<m>@<stage1>"`` for
    every ``awareness.stage1_methods`` method pre-trained from the Stage-I weights."""
    st = cfg.pretrain.stage1
    return list(cfg.methods) + [f"{m}@{st}" for m in cfg.awareness.stage1_methods]


def row_label(row: str) -> str:
    from pri3d.experiment.report import METHOD_LABELS

    m, _, st = row.partition("@")
    label = "random init" if m == "scratch" else METHOD_LABELS.get(m, m)
    return f"{label} on Stage I ({METHOD_LABELS.get(st, st)})" if st else label


def probe_frames(path: Path, part, max_frames: int, what: str):
    """The frames of ``path`` (one capture, frame order) in ``part = [lo, hi)`` of its length, at most
    ``max_frames`` of them evenly spaced, as a :class:`~pri3d.probe.frames.FrameSet`."""
    from pri3d.data.info import sample_frames
    from pri3d.probe.frames import FrameSet, open_frames

    every = open_frames(path)
    n = len(every.refs)
    chosen = every.refs[int(np.floor(part[0] * n)) : int(np.floor(part[1] * n))]
    if not chosen:
        raise DataError(f"{path}: no frames in {what} part {part} of its {n} frames")
    keep = sample_frames([len(chosen)], min(int(max_frames), len(chosen)))[0]
    refs = [chosen[i] for i in keep]
    return FrameSet(Path(path), refs, f"{path}: {what} frames {part} of {n}: {len(refs)} frames")


# ----------------------------------------------------------------------------- cells


def pairs_cell(cfg: ExperimentConfig, root: Path, name: str, prepared: Path, prep_key: str, log) -> tuple[Path, str]:
    """The matching pairs of a probed capture: at most ``pairs_per_bin`` of its mined pairs per rotation
    bin, a fixed sample (seed 0), written as ``pairs.csv``. Returns ``(csv path, key)``."""
    from pri3d.geometry.pose import relative_rotation_deg
    from pri3d.pairs.store import PreparedData
    from pri3d.pretrain.data import fixed_sample
    from pri3d.pretrain.matching_eval import ROTATION_BINS

    spec = {"prepared": prep_key, "pairs_per_bin": cfg.awareness.pairs_per_bin, "bins": list(ROTATION_BINS)}
    cell = Cell(root, "awareness-pairs", name, spec)
    if not cell.done:
        cell.start()
        data = PreparedData(prepared)
        scenes = data.scenes()
        poses: dict = {}
        by_bin: dict[str, list] = {label: [] for label in ROTATION_LABELS}
        for p in data.pairs:
            for f in (p.frame_a, p.frame_b):
                if (p.scene, f) not in poses:
                    poses[(p.scene, f)] = scenes[p.scene].load_frame(f, color=False, depth=False, labels=False).pose
            rot = float(relative_rotation_deg(poses[(p.scene, p.frame_a)], poses[(p.scene, p.frame_b)]))
            k = int(np.searchsorted(ROTATION_BINS, rot, side="right")) - 1
            by_bin[ROTATION_LABELS[min(max(k, 0), len(ROTATION_LABELS) - 1)]].append(p)
        chosen = [p for label in ROTATION_LABELS for p in fixed_sample(by_bin[label], cfg.awareness.pairs_per_bin, 0)]
        if not chosen:
            raise DataError(f"{prepared}: no mined pairs to score correspondences on")
        lines = ["scene,frame_a,frame_b,overlap"] + [f"{p.scene},{p.frame_a},{p.frame_b},{p.overlap}" for p in chosen]
        atomic_write_text(cell.dir / "pairs.csv", "\n".join(lines) + "\n")
        counts = {label: min(len(v), cfg.awareness.pairs_per_bin) for label, v in by_bin.items()}
        mined = {label: len(v) for label, v in by_bin.items()}
        log(f"[awareness] {name}: {len(chosen)} matching pairs per rotation bin {counts} (of mined {mined})")
        cell.finish({"pairs": len(chosen), "per_bin": counts, "mined_per_bin": mined})
    return cell.dir / "pairs.csv", cell.key


def _resolution(cfg: ExperimentConfig) -> tuple[int, int]:
    ms = [m for m in (cfg.pretrain.stage1, *cfg.methods) if m and m != "scratch"]
    return tuple(build_pretrain_config(cfg, ms[0]).data.resolution) if ms else (96, 128)


def _arch(cfg: ExperimentConfig) -> tuple[str, int | None]:
    ms = [m for m in (cfg.pretrain.stage1, *cfg.methods) if m and m != "scratch"]
    if not ms:
        return "resnet18", None
    p = build_pretrain_config(cfg, ms[0])
    return p.model.arch, p.model.feature_dim


def readout_cell(
    cfg: ExperimentConfig,
    root: Path,
    row: str,
    init: str,
    init_key: str,
    probe: tuple[str, Path, str],
    prepared: Path,
    pairs: tuple[Path, str],
    seed: int,
    pictures: bool = False,
    log=print,
    progress: bool = False,
) -> dict:
    """The depth probe, the normal probe and correspondence recall / relative pose of one backbone
    (``init``: a weights file or ``scratch``) on the probed capture ``probe = (name, path, key)``
    (``prepared``: its prepared folder; ``pairs``: the matching pairs' csv and key). Returns ``results``
    (``depth``, ``normals``, ``matching``), ``seconds`` and the cell's ``dir``."""
    from pri3d.models.load import load_unet
    from pri3d.probe.depth import probe_depth
    from pri3d.probe.features import FeatureExtractor
    from pri3d.probe.normals import probe_normals
    from pri3d.probe.run import probe_picture

    a = cfg.awareness
    arch, feature_dim = _arch(cfg)
    res = _resolution(cfg)
    spec = {
        "init": init_key,
        "probe": probe[2],
        "pairs": pairs[1],
        "seed": seed,
        "arch": arch,
        "feature_dim": feature_dim,
        "resolution": list(res),
        "parts": [a.fit_part, a.test_part, a.max_frames, a.pixels_per_frame, a.points],
        "pictures": pictures,
        "version": CELL_VERSION,
    }
    cell = Cell(root, "awareness", f"{row}-on-{probe[0]}-s{seed}", spec)
    if cell.done:
        return cell.result() | {"dir": str(cell.dir)}
    cell.start()
    t0 = time.time()
    model, _, desc = load_unet(str(init), arch, feature_dim, seed, what="the awareness readout")
    extractor = FeatureExtractor(model, res)
    fit = probe_frames(probe[1], a.fit_part, a.max_frames, "fit")
    test = probe_frames(probe[1], a.test_part, a.max_frames, "test")
    common = dict(pixels_per_frame=a.pixels_per_frame, seed=seed, progress=progress)
    depth = probe_depth(extractor, fit, test, **common)
    normals = probe_normals(extractor, fit, test, **common)
    if pictures:
        probe_picture("depth", depth["examples"], cell.dir / "depth.png")
        probe_picture("normals", normals["examples"], cell.dir / "normals.png")
    for r in (depth, normals):
        r.pop("examples")
    matching = _matching(model, prepared, pairs[0], res, a.points, seed, cell.dir / "match.png" if pictures else None)
    results = {"depth": depth, "normals": normals, "matching": matching}
    log(
        f"[awareness] {row} on {probe[0]} seed {seed}: depth abs_rel {depth['abs_rel']:.3f}, normals median "
        f"{normals['median_deg']:.1f} deg, recall@{MATCH_RADIUS:g}px {matching[f'recall@{MATCH_RADIUS:g}px_img']:.3f} "
        f"({desc}, {time.time() - t0:.0f} s)"
    )
    return cell.finish({"results": results, "backbone": desc, "seconds": time.time() - t0}) | {"dir": str(cell.dir)}


def _matching(model, prepared: Path, pairs_csv: Path, res, points: int, seed: int, picture: Path | None) -> dict:
    from pri3d.pairs.store import PreparedData, read_pairs_csv
    from pri3d.pretrain.data import PairDataset
    from pri3d.pretrain.matching_eval import matching_recall

    pairs = read_pairs_csv(pairs_csv)
    ds = PairDataset(PreparedData(prepared), pairs, resolution=res, view=True, num_matches=points, augment=False)
    out = matching_recall(model, ds, seed=seed, details=True, pose=True)
    if picture is not None:
        match_picture(model, ds, out, seed, picture)
    return out


def match_picture(model, ds, result: dict, seed: int, path: Path) -> Path:
    """One pair of the largest rotation bin that has pairs: nearest-neighbour matches of its ground-truth
    points (60 drawn), green within :data:`MATCH_RADIUS` input pixels of the truth, red beyond."""
    import torch
    import torch.nn.functional as F

    from pri3d.engine.seed import derive_seed
    from pri3d.geometry.pose import relative_rotation_deg
    from pri3d.models.imagenet import denormalize
    from pri3d.viz import match_overlay, save_png

    lo = {"0-15": 0, "15-30": 15, "30-60": 30, "60-180": 60}
    present = [b for b in ROTATION_LABELS if (result["by_rotation"].get(b) or {}).get("pairs")]
    floor = lo[present[-1]] if present else 0
    idx = 0
    for i in range(len(ds)):
        s = ds[(i, derive_seed(seed, 3, i))]
        if relative_rotation_deg(s["pose_a"].numpy(), s["pose_b"].numpy()) >= floor:
            idx = i
            break
    s = ds[(idx, derive_seed(seed, 3, idx))]
    was = model.training
    model.eval()
    with torch.no_grad():
        feats = F.normalize(model(torch.stack([s["image_a"], s["image_b"]])).float(), dim=1)
    model.train(was)
    _, C, h, w = feats.shape
    H, W = s["image_a"].shape[-2:]
    m = s["view"]
    fa, fb = feats[0].reshape(C, -1)[:, m[:, 0]].t(), feats[1].reshape(C, -1)
    pred = (fa @ fb).argmax(1)

    def to_uv(flat):
        return np.stack([(flat % w).numpy(), (flat // w).numpy()], 1).astype(np.float64) * (W / w) + 0.5 * (W / w) - 0.5

    uv_a, uv_true, uv_pred = to_uv(m[:, 0]), to_uv(m[:, 1]), to_uv(pred)
    ok = np.linalg.norm(uv_pred - uv_true, axis=1) <= MATCH_RADIUS
    colors = np.where(ok[:, None], np.array([[40, 200, 40]]), np.array([[230, 40, 40]])).astype(np.uint8)

    up = 3  # drawn 3x larger than the network's input, so the lines can be read

    def rgb(t):
        img = (denormalize(t).clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        return np.repeat(np.repeat(img, up, axis=0), up, axis=1)

    def big(uv):
        return (uv + 0.5) * up - 0.5

    img = match_overlay(
        rgb(s["image_a"]), rgb(s["image_b"]), big(uv_a), big(uv_pred), max_lines=60, seed=seed, colors=colors
    )
    return save_png(path, img)


# ----------------------------------------------------------------------------- the driver


def run_awareness(cfg: ExperimentConfig, log=print) -> dict:
    """Run (or resume) every cell, then write ``results.json``, ``table.md`` and the plots into ``cfg.out``.
    Direction by direction, seed by seed, so a session that ends early leaves whole seeds."""
    from pri3d.experiment.pool import run_cells

    out = out_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    a = cfg.awareness
    captures = {n: resolve_path(cfg.base_dir, p) for n, p in a.captures.items()}
    for n, p in captures.items():
        if not p.exists():
            raise DataError(f"{p}: capture {n!r} not found (awareness.captures in the experiment config)")
    prepared = {}
    cells: list[dict] = []
    for pre, probed in a.directions:
        for n in (pre, probed):
            if n not in prepared:
                prepared[n] = prepare_cell(cfg, out, captures[n], cell_hash({"path": str(captures[n])}), log)
        pairs = pairs_cell(cfg, out, probed, *prepared[probed], log)
        probe = (probed, prepared[probed][0], cell_hash({"prepared": prepared[probed][1]}))
        for sd in cfg.pretrain.seeds:
            inits = _pretrain_seed(cfg, out, prepared[pre], sd, log)
            calls = [
                (
                    (cfg, out, row, *inits[row], probe, prepared[probed][0], pairs, sd),
                    {"pictures": sd == cfg.pretrain.seeds[0]},
                )
                for row in rows(cfg)
            ]
            done = run_cells(cfg.jobs, readout_cell, calls, log)
            cells += [
                {"row": row, "direction": [pre, probed], "seed": sd, "results": r["results"], "dir": r["dir"]}
                for row, r in zip(rows(cfg), done)
            ]
            write_awareness_results(cfg, out, cells, t0, log)
    return {"cells": cells, "out": str(out)}


def _pretrain_seed(cfg: ExperimentConfig, out: Path, prepared: tuple[Path, str], seed: int, log) -> dict:
    """Pre-train every row's backbone of one seed on one capture: ``{row: (weights, key)}``."""
    from pri3d.experiment.config import PRETRAIN_METHODS
    from pri3d.experiment.pool import run_cells
    from pri3d.pretrain.modes import MODES

    st = cfg.pretrain.stage1
    inits = {"scratch": ("scratch", "scratch")}
    stage1 = None
    if cfg.awareness.stage1_methods or st in cfg.methods:  # alone: it may use every core
        stage1 = weights_ref(pretrain_cell(cfg, out, st, *prepared, log, seed=seed)["backbone"])
        inits[st] = stage1
    # longest first (the rows with a 3D branch, then the 2D ones), so the last cell does not run alone
    todo = [(m, stage1) for m in cfg.awareness.stage1_methods]
    plain = [m for m in cfg.methods if m in PRETRAIN_METHODS and m != st]
    todo += [(m, None) for m in sorted(plain, key=lambda m: (not MODES[m].uses_3d, plain.index(m)))]
    calls = [((cfg, out, m, *prepared), {"init": init, "seed": seed}) for m, init in todo]
    for (m, init), r in zip(todo, run_cells(cfg.jobs, pretrain_cell, calls, log)):
        inits[f"{m}@{st}" if init else m] = weights_ref(r["backbone"])
    return inits


# ----------------------------------------------------------------------------- the report

# (table column, results path, scale, higher is better)
COLUMNS = (
    ("depth AbsRel", ("depth", "abs_rel"), 1.0, False),
    ("depth δ<1.25", ("depth", "delta1"), 100.0, True),
    ("AbsRel (median-scaled)", ("depth", "abs_rel_median"), 1.0, False),
    ("normals median°", ("normals", "median_deg"), 1.0, False),
    ("normals <30°", ("normals", "within_30"), 100.0, True),
    (f"recall@{MATCH_RADIUS:g}px", ("matching", f"recall@{MATCH_RADIUS:g}px_img"), 100.0, True),
    (
        f"recall@{MATCH_RADIUS:g}px, 30-60°",
        ("matching", "by_rotation", "30-60", f"recall@{MATCH_RADIUS:g}px_img"),
        100.0,
        True,
    ),
    ("pose AUC@20", ("matching", "pose_auc@20"), 100.0, True),
)
# The verdict's metrics (chosen before any result was seen): the depth probe's AbsRel and the recall in
# the 30-60 degree bin.
VERDICT = (0, 6)


def _get(results: dict, path) -> float | None:
    v = results
    for k in path:
        v = v.get(k) if isinstance(v, dict) else None
    return None if v is None else float(v)


def awareness_tables(cfg: ExperimentConfig, cells: list[dict]) -> tuple[dict, str]:
    """``(summary, markdown)``: per direction, every row's mean ± std over seeds in every column, the
    probes' constant floors, and the paired deltas of the verdict's metrics against random init and
    against Stage I."""
    summary: dict = {}
    md = []
    st = cfg.pretrain.stage1
    for pre, probed in cfg.awareness.directions:
        key = f"{pre}->{probed}"
        dc = [c for c in cells if c["direction"] == [pre, probed]]
        if not dc:
            continue
        seeds = sorted({c["seed"] for c in dc})
        by = {(c["row"], c["seed"]): c["results"] for c in dc}
        s = summary[key] = {"seeds": seeds, "rows": {}, "paired": {}}
        md += [
            f"### Pre-trained on {pre}, probed on {probed} (never seen in pre-training); seeds {seeds}",
            "",
            "| Row | " + " | ".join(col[0] for col in COLUMNS) + " |",
            "|---|" + "---|" * len(COLUMNS),
        ]
        for row in rows(cfg):
            vals = [[_get(by[(row, sd)], col[1]) for sd in seeds if (row, sd) in by] for col in COLUMNS]
            if not vals[0]:
                continue
            s["rows"][row] = {col[0]: [v for v in vs if v is not None] for col, vs in zip(COLUMNS, vals)}
            md.append(f"| {row_label(row)} | " + " | ".join(_cell(vs, col[2]) for col, vs in zip(COLUMNS, vals)) + " |")
        first = next(iter(by.values()))
        md.append(
            f"| floor: constant prediction | {first['depth']['constant']['abs_rel']:.3f} | "
            f"{100 * first['depth']['constant']['delta1']:.1f} | {first['depth']['constant']['abs_rel_median']:.3f} | "
            f"{first['normals']['constant']['median_deg']:.1f} | {100 * first['normals']['constant']['within_30']:.1f} "
            "| – | – | – |"
        )
        m0 = first["matching"]["by_rotation"]
        md += [
            "",
            "Matching pairs per rotation bin: " + ", ".join(f"{b}°: {m0[b]['pairs']}" for b in ROTATION_LABELS),
            "",
        ]
        md += _paired(cfg, s, by, seeds, st)
    return summary, "\n".join(md)


def _cell(vs: list, scale: float) -> str:
    vs = [v for v in vs if v is not None]
    if not vs:
        return "–"
    m, sd = mean_std([v * scale for v in vs])
    digits = 3 if scale == 1.0 and abs(m) < 1 else 1
    return f"{m:.{digits}f} ± {sd:.{digits}f}"


def _paired(cfg: ExperimentConfig, s: dict, by: dict, seeds: list, st: str) -> list[str]:
    refs = [r for r in ("scratch", st) if r in rows(cfg)]
    md = [
        "| Row | vs | " + " | ".join(f"Δ {COLUMNS[i][0]} per seed, mean ± std" for i in VERDICT) + " |",
        "|---|---|" + "---|" * len(VERDICT),
    ]
    for row in rows(cfg):
        for ref in refs:
            if row in (ref, "scratch"):
                continue
            parts = []
            for i in VERDICT:
                name, path, scale, higher = COLUMNS[i]
                d = [
                    scale * (_get(by[(row, sd)], path) - _get(by[(ref, sd)], path))
                    for sd in seeds
                    if (row, sd) in by
                    and (ref, sd) in by
                    and _get(by[(row, sd)], path) is not None
                    and _get(by[(ref, sd)], path) is not None
                ]
                if not d:
                    parts.append("–")
                    continue
                m, sd_ = mean_std(d)
                better = sum((x > 0) == higher and x != 0 for x in d)
                beyond = (m > sd_ if higher else -m > sd_) and len(d) > 1
                s["paired"].setdefault(row, {}).setdefault(ref, {})[name] = {
                    "deltas": d,
                    "mean": m,
                    "std": sd_,
                    "better_seeds": better,
                    "beyond_spread": beyond,
                }
                digits = 3 if scale == 1.0 else 1
                per = ", ".join(f"{x:+.{digits}f}" for x in d)
                parts.append(
                    f"{per}; {m:+.{digits}f} ± {sd_:.{digits}f} ({better}/{len(d)} better"
                    f"{', beyond the spread' if beyond else ''})"
                )
            md.append(f"| {row_label(row)} | {row_label(ref)} | " + " | ".join(parts) + " |")
    return md


def rotation_plot(path: Path, cfg: ExperimentConfig, cells: list[dict], direction: list[str]) -> Path | None:
    """Recall at :data:`MATCH_RADIUS` px per rotation bin, one line per row (mean ± std over seeds)."""
    from pri3d.viz import plot_curves

    dc = [c for c in cells if c["direction"] == direction]
    centres = {"0-15": 7.5, "15-30": 22.5, "30-60": 45.0, "60-180": 120.0}
    series = {}
    for row in rows(cfg):
        per_bin = {}
        for c in dc:
            if c["row"] != row:
                continue
            for b in ROTATION_LABELS:
                v = (c["results"]["matching"]["by_rotation"].get(b) or {}).get(f"recall@{MATCH_RADIUS:g}px_img")
                if v is not None:
                    per_bin.setdefault(b, []).append(100 * v)
        bins = [b for b in ROTATION_LABELS if b in per_bin]
        if bins:
            stats = [mean_std(per_bin[b]) for b in bins]
            series[row_label(row)] = ([centres[b] for b in bins], [m for m, _ in stats], [sd for _, sd in stats])
    if not series:
        return None
    return plot_curves(
        path,
        series,
        xlabel="relative camera rotation (degrees; bins 0-15, 15-30, 30-60, 60-180 at their centres)",
        ylabel=f"recall@{MATCH_RADIUS:g}px (%)",
        title=f"pre-trained on {direction[0]}, matched on {direction[1]}",
    )


def write_awareness_results(cfg: ExperimentConfig, out: Path, cells: list[dict], t0: float, log) -> dict:
    summary, md = awareness_tables(cfg, cells)
    plots = {}
    for d in cfg.awareness.directions:
        p = rotation_plot(out / f"recall_by_rotation-{d[0]}-to-{d[1]}.png", cfg, cells, d)
        if p is not None:
            plots[f"{d[0]}->{d[1]}"] = str(p)
    atomic_write_text(out / "table.md", f"# {cfg.name}: 3D awareness of frozen features\n\n{md}\n")
    results = {"name": cfg.name, "summary": summary, "cells": cells, "plots": plots, "wall_s": time.time() - t0}
    write_json(out / "results.json", results)
    log(f"[awareness] wrote {out / 'table.md'}")
    return results
