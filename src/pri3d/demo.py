"""``pri3d demo``: the whole pipeline on the embedded synthetic data, with a report.

It runs the experiment in ``pri3d/presets/experiment/demo.yaml`` (synth -> prepare -> a MoCoV2 Stage-I
init -> Pri3D view on top of it -> the frozen-feature semantic-segmentation probe of every row, random
init included, at a 20 % label fraction over several probe seeds, beside the floor of the same frames;
fine-tuning when ``finetune.enabled``), then draws the pictures and writes ``OUT/report/report.md``.
Every stage is a cached experiment cell, so a re-run only redoes what changed (pictures are redrawn;
the probe's segmentation picture refits one probe per row, seconds each).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from pri3d.experiment import ExperimentConfig, load_experiment, run_experiment

__all__ = ["DEMO_CONFIG", "run_demo"]

DEMO_CONFIG = Path(__file__).parent / "presets" / "experiment" / "demo.yaml"


def _done(cell_dir) -> dict:
    """A finished cell's record (its ``done.json``) with its folder."""
    return json.loads((Path(cell_dir) / "done.json").read_text()) | {"dir": str(cell_dir)}


def pri3d_method(methods) -> str | None:
    """The Pri3D row the pictures show: view+geo, else view, else geo (None without one)."""
    return next((m for m in ("view+geo", "view", "geo") if m in methods), None)


def _pick_frames(scenes, n: int) -> list[tuple]:
    """``n`` frames spread over the given scenes (first scenes first, evenly spaced frames)."""
    picks = []
    per = max(1, int(np.ceil(n / max(1, len(scenes)))))
    for s in scenes:
        ids = s.frame_ids
        for k in np.linspace(0, len(ids) - 1, per + 2)[1:-1].round().astype(int):
            picks.append((s, ids[k]))
            if len(picks) == n:
                return picks
    return picks


@torch.no_grad()
def feature_pca_figure(backbones: dict[str, torch.nn.Module], frames, size) -> np.ndarray:
    """Rows: frames; columns: the image, then each backbone's features (PCA -> RGB, one basis per
    backbone shared over the frames)."""
    from pri3d.data.io import resize_color
    from pri3d.models.imagenet import normalize
    from pri3d.pretrain.augment import to_float_image
    from pri3d.viz import hstack, pca_rgb, vstack

    imgs = [resize_color(s.load_frame(fid, depth=False, labels=False).color, size) for s, fid in frames]
    x = torch.stack([normalize(to_float_image(im)) for im in imgs])
    cols = {}
    for name, net in backbones.items():
        net.eval()
        f = net(x).permute(0, 2, 3, 1).numpy()  # (N, h, w, C)
        basis = f.reshape(-1, f.shape[-1])
        cols[name] = [pca_rgb(fi, basis_from=basis) for fi in f]
    rows = [hstack([imgs[i]] + [cols[n][i] for n in backbones]) for i in range(len(imgs))]
    return vstack(rows)


def correspondence_figure(prepared_dir: Path, size=(120, 160), max_lines: int = 50) -> tuple[np.ndarray, dict]:
    """A mined pair (overlap closest to 0.5) with its pixel correspondences (reprojection + depth
    test at the feature grid, as pre-training computes them) drawn as lines."""
    from pri3d.data.io import resize_color
    from pri3d.geometry import scale_intrinsics
    from pri3d.geometry.correspondences import resample_depth, view_correspondences
    from pri3d.pairs.store import PreparedData
    from pri3d.viz import match_overlay

    prep = PreparedData(prepared_dir)
    if not prep.pairs:
        raise RuntimeError(f"{prepared_dir}: no mined pairs to draw")
    pair = min(prep.pairs, key=lambda p: abs(p.overlap - 0.5))
    scene = prep.scenes()[pair.scene]
    fa, fb = scene.load_frame(pair.frame_a), scene.load_frame(pair.frame_b)
    h, w = size[0] // 2, size[1] // 2  # the feature grid

    def grid(fr):
        Hc, Wc = fr.color.shape[:2]
        K = scale_intrinsics(torch.as_tensor(fr.color_intrinsics)[None], w / Wc, h / Hc)
        d = resample_depth(torch.as_tensor(fr.depth)[None], torch.as_tensor(fr.depth_intrinsics)[None], K, (h, w))
        return d, K, torch.as_tensor(fr.pose)[None]

    da, Ka, Ta = grid(fa)
    db, Kb, Tb = grid(fb)
    m = view_correspondences(da, Ka, Ta, db, Kb, Tb, depth_threshold=0.05)
    sx, sy = size[1] / w, size[0] / h  # feature pixel centre -> image pixel centre
    uv_a = torch.stack([(m[:, 1] % w + 0.5) * sx - 0.5, (m[:, 1] // w + 0.5) * sy - 0.5], 1).numpy()
    uv_b = torch.stack([(m[:, 2] % w + 0.5) * sx - 0.5, (m[:, 2] // w + 0.5) * sy - 0.5], 1).numpy()
    img = match_overlay(resize_color(fa.color, size), resize_color(fb.color, size), uv_a, uv_b, max_lines=max_lines)
    return img, {
        "scene": pair.scene,
        "frame_a": pair.frame_a,
        "frame_b": pair.frame_b,
        "overlap": pair.overlap,
        "matches": int(len(m)),
        "grid": [h, w],
    }


@torch.no_grad()
def segmentation_figure(runs: dict[str, Path], n: int = 3) -> np.ndarray:
    """Rows: validation frames; columns: image, ground truth, then each fine-tuned model's prediction."""
    from pri3d.downstream.classes import IGNORE_INDEX
    from pri3d.downstream.evaluate import load_finetuned_model
    from pri3d.models.imagenet import denormalize
    from pri3d.viz import colorize_labels, hstack, vstack

    models, ds = {}, None
    for name, run in runs.items():
        model, task, cfg, _ = load_finetuned_model(run)
        models[name] = model
        if ds is None:
            ds = task.dataset("val", split=cfg.data.val_split, train=False, progress=False)
            k = task.label_set.num_classes
    idx = np.linspace(0, len(ds) - 1, n + 2)[1:-1].round().astype(int)
    rows = []
    for i in idx:
        item = ds[int(i)]
        img = (denormalize(item["image"]).clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        gt = item["label"].numpy()
        row = [img, colorize_labels(gt, k, ignore_index=IGNORE_INDEX)]
        for model in models.values():
            pred = model(item["image"][None]).argmax(1)[0].numpy()
            pred[gt == IGNORE_INDEX] = IGNORE_INDEX  # unlabelled pixels are not scored: show them black
            row.append(colorize_labels(pred, k, ignore_index=IGNORE_INDEX))
        rows.append(hstack(row))
    return vstack(rows)


def _labelled_data(cfg: ExperimentConfig, dirs: dict) -> tuple[Path, str | None]:
    """The labelled dataset the readouts fit and score on: ``data.finetune_path``, else the experiment's."""
    if cfg.data.finetune_path:
        from pri3d.experiment.config import resolve_path

        return resolve_path(cfg.base_dir, cfg.data.finetune_path), cfg.data.finetune_format
    return Path(dirs["data"]), cfg.data.format


def probe_inits(cfg: ExperimentConfig, dirs: dict, methods: list[str] | None = None) -> dict[str, str]:
    """The weights each row's probe reads (first pre-training seed): ``scratch`` / ``imagenet`` or a file;
    for ``methods`` (default: the config's)."""
    inits = {}
    for m in methods or cfg.methods:
        if m in ("scratch", "imagenet"):
            inits[m] = m
        elif m in dirs["pretrain"]:
            inits[m] = _done(dirs["pretrain"][m])["backbone"]
    return inits


def _probe_examples(cfg, method, init, data_path, data_format, fraction, seed, refs, n, info):
    """One row's probe, fitted as its table cell, and its predictions on ``refs`` (the validation frames
    the picture shows; picked here, evenly spaced, when None): ``(examples, classes, backbone, refs)``."""
    from pri3d.experiment.cells import probe_setup
    from pri3d.probe.frames import FrameSet
    from pri3d.probe.semseg import probe_semseg

    fcfg, task, fit, extractor, desc = probe_setup(cfg, method, init, data_path, data_format, fraction, seed)
    if refs is None:
        val = list(task.dataset("val", split=fcfg.data.val_split, progress=False).index)
        refs = [val[i] for i in sorted(set(np.linspace(0, len(val) - 1, n + 2)[1:-1].round().astype(int)))]
        info.update(features=extractor.describe(), frames=[f"{sc.scene_id}/{fid}" for sc, fid in refs])
    r = probe_semseg(
        extractor,
        fit,
        FrameSet(data_path, refs, "picture frames"),
        label_set=fcfg.data.label_set,
        pixels_per_frame=cfg.probe.pixels_per_frame,
        seed=seed,
        keep=len(refs),
    )
    return r["examples"], r["num_classes"], desc, refs


def probe_segmentation_figure(
    cfg: ExperimentConfig, dirs: dict, methods: list[str] | None = None, n: int = 3
) -> tuple[np.ndarray, dict]:
    """Rows: validation frames (evenly spaced over the validation scenes); columns: image, ground truth,
    then the probe prediction of each of ``methods`` (default: the config's). Each probe is refitted as
    the table's cell of the lowest label fraction and the first seed fits it
    (:func:`pri3d.experiment.cells.probe_setup`: the same labelled frames, pixels and head), then predicts
    the picked frames."""
    from pri3d.data.io import resize_color
    from pri3d.downstream.classes import IGNORE_INDEX
    from pri3d.viz import colorize_labels, hstack, vstack

    fraction, seed = min(cfg.fractions), cfg.seeds[0]
    data_path, data_format = _labelled_data(cfg, dirs)
    cols, refs, info = {}, None, {"fraction": fraction, "seed": seed, "backbones": {}}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the probe cells in their pool (jobs > 1): seconds a fit, and the same head
    try:
        for m, init in probe_inits(cfg, dirs, methods).items():
            cols[m], k, info["backbones"][m], refs = _probe_examples(
                cfg, m, init, data_path, data_format, fraction, seed, refs, n, info
            )
    finally:
        torch.set_num_threads(threads)
    rows = []
    for i in range(len(refs)):
        ex = next(iter(cols.values()))[i]
        gt = ex["gt"]
        row = [resize_color(ex["color"], gt.shape), colorize_labels(gt, k, ignore_index=IGNORE_INDEX)]
        for examples in cols.values():
            pred = examples[i]["pred"].copy()
            pred[gt == IGNORE_INDEX] = IGNORE_INDEX  # unlabelled pixels are not scored: show them black
            row.append(colorize_labels(pred, k, ignore_index=IGNORE_INDEX))
        rows.append(hstack(row))
    return vstack(rows), info


def _verdict(deltas: list[float]) -> str:
    """Whether per-seed paired differences (x100) support a difference: the mean beyond the spread of the
    differences and every seed on the same side."""
    from pri3d.experiment.report import mean_std

    m, sd = mean_std(deltas)
    per = ", ".join(f"{d:+.1f}" for d in deltas)
    txt = f"{m:+.1f} ± {sd:.1f} (per seed {per})"
    if len(deltas) < 2:
        return f"{txt}: one seed, no spread to judge it by"
    if abs(m) > sd and (all(d > 0 for d in deltas) or all(d < 0 for d in deltas)):
        return f"{txt}: {'above' if m > 0 else 'below'} on every seed, by more than the seed spread"
    return f"{txt}: within the seed spread, not separated by this run"


def _floors(results: dict, fraction: float) -> list[dict]:
    """The floor cells on the validation frames at ``fraction`` (one per seed)."""
    return [e for e in (results.get("floors") or {}).get("val", []) if e["fraction"] == fraction]


def _floor_line(cfg: ExperimentConfig, results: dict) -> list[str]:
    """The floor of the table, in one line (mean ± std over seeds, the table's x100 scale)."""
    from pri3d.experiment.report import mean_std

    floors = _floors(results, min(cfg.fractions))
    if not floors:
        return []
    maj, sd_maj = mean_std([100 * e["majority"] for e in floors])
    lk, sd_lk = mean_std([100 * e["lookup"] for e in floors])
    return [
        f"the floor (no learning; the same validation frames, fitted on each seed's labelled frames): majority "
        f"class ({floors[0]['majority_class']}) {maj:.1f} ± {sd_maj:.1f}, position + colour lookup "
        f"{lk:.1f} ± {sd_lk:.1f} mIoU"
    ]


def _probe_lines(cfg: ExperimentConfig, results: dict) -> list[str]:
    """The probe table's rows against random init, Stage I alone and the floor of the same frames."""
    from pri3d.experiment import method_label

    block = (results.get("probe") or {}).get("val")
    if not block:
        return []
    f = min(cfg.fractions)
    cells = [c for c in block["cells"] if c["fraction"] == f]
    score = {(c["method"], c["seed"]): 100 * c["results"]["final"]["value"] for c in cells}
    summ = block["summary"]
    out = []
    lookup = {e["seed"]: 100 * e["lookup"] for e in _floors(results, f)}
    for m in cfg.methods:
        s = summ.get(m, {}).get(f)
        if s is None:
            continue
        row = f"probe, {method_label(cfg, m)}{' (random init)' if m == 'scratch' else ''}"
        line = f"measured here: {row} {100 * s['mean']:.1f} ± {100 * s['std']:.1f} mIoU over seeds {cfg.seeds}"
        vs_floor = [score[(m, sd)] - lookup[sd] for sd in cfg.seeds if (m, sd) in score and sd in lookup]
        if vs_floor:
            line += f"; against the lookup floor, paired by seed: {_verdict(vs_floor)}"
        out.append(line)
    pairs = [(m, cfg.reference) for m in cfg.methods if m != cfg.reference]
    st = cfg.pretrain.stage1
    if st in cfg.methods:
        pairs += [(m, st) for m in cfg.methods if m not in (st, cfg.reference, "imagenet")]
    for m, ref in pairs:
        d = [score[(m, sd)] - score[(ref, sd)] for sd in cfg.seeds if (m, sd) in score and (ref, sd) in score]
        if d:
            ref_label = method_label(cfg, ref) + (" (random init)" if ref == "scratch" else "")
            out.append(f"probe, {method_label(cfg, m)} minus {ref_label}, paired by seed: {_verdict(d)}")
    return out


def _finetune_lines(cfg: ExperimentConfig, results: dict) -> list[str]:
    """Each fine-tuned row against the reference at the lowest label fraction (when fine-tuning ran), on
    the table's x100 scale, with the paired differences judged against their spread."""
    from pri3d.experiment import method_label

    f, summ = min(cfg.fractions), results.get("summary_final", {})
    ref = summ.get(cfg.reference, {}).get(f, {}).get("mean")
    out = []
    for m in cfg.methods:
        v = summ.get(m, {}).get(f, {}).get("mean")
        if m == cfg.reference or v is None or ref is None:
            continue
        deltas = results.get("paired_final", {}).get(m, {}).get(f, {}).get("deltas", [])
        out.append(
            f"measured here: fine-tuning, {method_label(cfg, m)} {100 * v:.1f} vs {method_label(cfg, cfg.reference)} "
            f"{100 * ref:.1f} {cfg.finetune.metric} at {f * 100:g} % of the labels (mean over seeds {cfg.seeds}); "
            f"paired by seed: {_verdict([100 * d for d in deltas])}"
        )
    return out


def slice_summary(cfg: ExperimentConfig, results: dict) -> list[str]:
    """What this run measured (the probe table against random init, Stage I alone and the floor; the
    fine-tuning table when it ran) and what a slice of this size can and cannot show."""
    from pri3d.data.synth import split_scene_ids

    out = _floor_line(cfg, results) + _probe_lines(cfg, results) + _finetune_lines(cfg, results)
    n = cfg.data.synth.scenes
    n_val = len(split_scene_ids([str(i) for i in range(n)])[1]) if n > 1 else None
    scenes = f"{n_val} validation scene{'s' if n_val > 1 else ''}" if n_val else "the validation scenes"
    readout = "a linear probe on frozen features" if cfg.probe.enabled else "fine-tuning"
    if len(cfg.pretrain.seeds) == 1:
        spread = (
            "Each pre-trained row is one pre-training run, so the spread over seeds covers the labelled subset and "
            "the readout's own randomness, not pre-training"
        )
    else:
        spread = f"The seeds are paired with {len(cfg.pretrain.seeds)} pre-training seeds {cfg.pretrain.seeds}"
    no_ft = "" if cfg.finetune.enabled else "; fine-tuning, the paper's readout, is off here (`finetune.enabled=true`)"
    out += [
        "it shows: the whole pipeline (scans -> pairs -> Stage-I init -> Pri3D -> readout) runs on this machine, "
        f"what each stage costs, whether pre-training improved label-free matching on held-out scenes, and how "
        f"{readout} ranks the rows on {scenes}, with the spread over seeds {cfg.seeds}",
        f"it cannot show: the paper's comparison at scale (short pre-training, {scenes}). {spread}; a "
        f"difference within the spread is no difference{no_ft}",
        "the full protocol (more unlabelled scans, every method, 2 pre-training seeds, probe and fine-tuning, a test "
        "set of its own seed) is `pri3d experiment --config configs/synthetic-cpu.yaml`; its table and wall time "
        "are in the README (Results on the embedded benchmark)",
    ]
    return out


def readout_lines(cfg: ExperimentConfig, features: str | None) -> list[str]:
    """What the table's readout is, in words (the probe: frozen backbone, which features, linear head)."""
    lines = []
    if cfg.probe.enabled:
        lines += [
            "**Frozen-feature probe** (`pri3d.probe`): every row's backbone (a "
            "ResNet UNet) is frozen: eval mode, no weight changes. Per-pixel features: the UNet's output "
            "(decoder) and its four encoder stages"
            + (f", {features}" if features else "")
            + " (see `pri3d/probe/features.py`). A linear head (multinomial logistic regression on "
            "standardised channels, full-batch L-BFGS) is fitted on "
            f"{cfg.probe.pixels_per_frame} labelled pixels drawn per frame of each seed's labelled "
            f"{min(cfg.fractions) * 100:g} % of the training frames, and scored by mIoU on every labelled pixel "
            "of the validation frames at the label maps' resolution.",
            "The Scratch row is the same network at random initialisation, read out the same way. The seed "
            f"({cfg.seeds}) draws the labelled subset and the fit pixels; "
            + (
                "the backbones are the same for every seed (one pre-training run per row)."
                if len(cfg.pretrain.seeds) == 1
                else f"seed number i reads the weights of pre-training seed {cfg.pretrain.seeds}[i mod "
                f"{len(cfg.pretrain.seeds)}]."
            ),
        ]
    if cfg.finetune.enabled:
        lines.append(
            f"**Fine-tuning** (the paper's readout): the whole network trained on the labelled frames "
            f"(`{cfg.finetune.preset}` {' '.join(cfg.finetune.overrides)}), final-epoch mIoU."
        )
    else:
        lines.append(
            "Fine-tuning (the paper's readout) is off in the demo (`finetune.enabled: false`; see "
            "`demo.yaml` for why); `pri3d demo finetune.enabled=true` adds it."
        )
    if cfg.finetune.task == "semseg" and cfg.finetune.floors:
        lines.append(
            "**The floor**: no learning, on the same validation frames: the majority class of each seed's "
            "labelled pixels, and a lookup table keyed on image position and coarse colour fitted on the same "
            "labelled frames. A row at or below it does no better than image position and colour alone."
        )
    return lines


def _fmt_s(s) -> str:
    return "-" if s is None else f"{s:.0f} s"


def write_report(
    cfg: ExperimentConfig,
    results: dict,
    out: Path,
    pictures: dict,
    timings: dict,
    notes: list[str],
    features: str | None = None,
    captions: dict | None = None,
) -> Path:
    """``out/report.md``: the readout in words, the experiment's tables (fine-tuning when it ran, the probe,
    the floor), what this slice can and cannot show, the settings, the timings, the pre-training table and
    the pictures. ``features``: the probe's feature description (the extractor's ``describe()``);
    ``captions``: picture captions replacing the default ones."""
    out.mkdir(parents=True, exist_ok=True)
    table = (Path(cfg.out) / "table.md").read_text() if (Path(cfg.out) / "table.md").is_file() else ""
    s = cfg.data.synth
    readout = "a linear probe on frozen features" if cfg.probe.enabled else "fine-tuning"
    lines = [
        "# pri3d demo report",
        "",
        "Pri3D pre-training on the embedded synthetic RGB-D data, then semantic segmentation with few labels, "
        f"read out by {readout}.",
        "",
        "## The readout",
        "",
        *[f"- {line}" for line in readout_lines(cfg, features)],
        "",
        table,
        "",
        "## What this slice can and cannot show",
        "",
        *[f"- {line}" for line in slice_summary(cfg, results)],
        "",
        "## Settings",
        "",
        f"- data: {s.scenes} synthetic scenes x {s.frames_per_scene} frames at {s.resolution[0]}x{s.resolution[1]} "
        f"(seed {s.seed}); "
        + (
            f"pre-training on {cfg.data.pretrain_synth.scenes} unlabelled scenes of seed {cfg.data.pretrain_synth.seed}"
            if cfg.data.pretrain_synth.scenes > 0
            else f"pre-training on the `{cfg.data.pretrain_split}` split"
        )
        + ", evaluation on the held-out `splits/val.txt` scenes",
        f"- prepare: {cfg.prepare or 'defaults'}",
        f"- pre-training: preset `{cfg.pretrain.preset}` {' '.join(cfg.pretrain.overrides)}",
        f"- labelled frames and resolution (probe and fine-tuning): preset `{cfg.finetune.preset}` "
        f"{' '.join(cfg.finetune.overrides)}",
        (
            f"- probe: {cfg.probe.pixels_per_frame} fit pixels per labelled frame"
            if cfg.probe.enabled
            else "- probe: off"
        ),
        f"- fine-tuning: {cfg.finetune.task}" if cfg.finetune.enabled else "- fine-tuning: off",
        f"- methods {cfg.methods}, label fractions {cfg.fractions}, seeds {cfg.seeds}",
        "",
        "## Timings",
        "",
        "| stage | time |",
        "|---|---|",
    ]
    lines += [f"| {k} | {_fmt_s(v)} |" for k, v in timings.items()]
    pre = {m: _done(d) for m, d in results["cell_dirs"]["pretrain"].items()}
    if pre:
        from pri3d.experiment import pretrain_table

        lines += ["", "## Pre-training", "", pretrain_table(pre)]
    lines += ["", "## Pictures", ""]
    default_captions = {
        "curve": "Data efficiency (fine-tuning): mIoU against the fraction of training labels.",
        "features": "Pre-trained features (PCA to RGB). Columns: image, randomly initialised network (scratch), "
        f"Pri3D {pri3d_method(cfg.methods)}.",
        "correspondences": "Pixel correspondences of a mined pair (reprojection + depth test, as pre-training uses).",
        "segmentation": "Validation frames. Columns: image, ground truth, scratch, Pri3D (black = unlabelled).",
    } | (captions or {})
    for key, path in pictures.items():
        lines += [f"### {key}", "", default_captions.get(key, ""), "", f"![{key}]({Path(path).name})", ""]
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report


def run_demo(out="pri3d-demo", overrides: list[str] | None = None, log=print) -> Path:
    """Run the demo into ``out`` and return the path of ``report.md``."""
    out = Path(out).resolve()
    cfg = load_experiment(DEMO_CONFIG, [f"out={out / 'experiment'}", *(overrides or [])])
    t0 = time.time()
    results = run_experiment(cfg, log=log)
    t_cells = time.time() - t0
    root = Path(cfg.out)
    report_dir = out / "report"
    pictures, notes, captions = {}, [], {}
    report_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("curve.png", "segmentation.png"):  # drawn below only when their readout ran
        (report_dir / stale).unlink(missing_ok=True)
    if (root / "curve.png").is_file() and results.get("cells"):  # fine-tuning ran
        pictures["curve"] = Path(shutil.copyfile(root / "curve.png", report_dir / "curve.png"))

    dirs = results["cell_dirs"]
    if "prepared" in dirs:
        _correspondence_picture(cfg, Path(dirs["prepared"]), report_dir, pictures, notes)
    pri3d_m = pri3d_method(cfg.methods)
    if pri3d_m is not None:
        _features_picture(cfg, dirs, pri3d_m, report_dir, pictures)
    features = _segmentation_picture(cfg, results, pri3d_m, report_dir, pictures, notes, captions)
    timings = _timings(dirs, results, t_cells, t0)
    report = write_report(cfg, results, report_dir, pictures, timings, notes, features=features, captions=captions)
    log(f"[demo] report: {report}")
    return report


def _correspondence_picture(cfg, prepared: Path, report_dir: Path, pictures: dict, notes: list) -> None:
    """``correspondences.png``: a mined pair with its pixel correspondences, and its note."""
    from pri3d.viz import save_png

    img, info = correspondence_figure(prepared, size=tuple(cfg.data.synth.resolution))
    pictures["correspondences"] = save_png(report_dir / "correspondences.png", img)
    notes.append(
        f"correspondences: {info['scene']} frames {info['frame_a']}-{info['frame_b']}, mined overlap "
        f"{info['overlap']:.2f}, {info['matches']} matches on the {info['grid'][0]}x{info['grid'][1]} "
        "feature grid (50 drawn)"
    )


def _features_picture(cfg, dirs: dict, pri3d_m: str, report_dir: Path, pictures: dict) -> None:
    """``features.png``: the features of a random-init and of the Pri3D backbone on validation frames."""
    from pri3d.data.formats import open_dataset
    from pri3d.models.init import load_backbone
    from pri3d.models.resnet_unet import ResNetUNet
    from pri3d.viz import save_png

    bb_path = _done(dirs["pretrain"][pri3d_m])["backbone"]
    state = torch.load(bb_path, map_location="cpu", weights_only=False)
    torch.manual_seed(0)
    scratch = ResNetUNet(state["arch"], state["feature_dim"])
    pri3d = ResNetUNet(state["arch"], state["feature_dim"])
    load_backbone(pri3d, bb_path)
    data_path = dirs["data"]
    val = open_dataset(data_path, cfg.data.format, split=Path(data_path) / "splits" / "val.txt")
    frames = _pick_frames(val, 3)
    fig = feature_pca_figure({"scratch": scratch, "pri3d": pri3d}, frames, tuple(cfg.data.synth.resolution))
    pictures["features"] = save_png(report_dir / "features.png", fig)


def _segmentation_picture(cfg, results: dict, pri3d_m, report_dir: Path, pictures: dict, notes: list, captions: dict):
    """``segmentation.png``: the probe's predictions when the probe ran (returns its ``features`` info),
    else the fine-tuned models' at the lowest label fraction (returns None)."""
    from pri3d.experiment import method_label
    from pri3d.viz import save_png

    dirs = results["cell_dirs"]
    lowest, seed = min(cfg.fractions), cfg.seeds[0]
    features = None
    if cfg.probe.enabled:  # the table's readout: the picture shows the probe's own predictions
        t_fig = time.time()
        probed = list(dict.fromkeys(c["method"] for c in results["probe"]["val"]["cells"]))  # not a skipped one
        fig, info = probe_segmentation_figure(cfg, dirs, probed)
        pictures["segmentation"] = save_png(report_dir / "segmentation.png", fig)
        features = info.get("features")
        captions["segmentation"] = (
            "Validation frames. Columns: image, ground truth, then the frozen-feature probe's prediction for "
            f"each row ({', '.join(method_label(cfg, m) for m in info['backbones'])}; black = unlabelled)."
        )
        notes.append(
            f"segmentation picture: each row's probe refitted as its table cell ({lowest * 100:g} % of the "
            f"labels, seed {seed}), on frames {', '.join(info['frames'])} ({time.time() - t_fig:.0f} s)"
        )
    else:
        runs = {
            m: Path(dirs["finetune"][(m, lowest, seed)]) / "run"
            for m in ("scratch", pri3d_m)
            if (m, lowest, seed) in dirs["finetune"]
        }
        if runs:
            pictures["segmentation"] = save_png(report_dir / "segmentation.png", segmentation_figure(runs))
            notes.append(f"segmentation picture: models fine-tuned with {lowest * 100:g}% of the labels, seed {seed}")
    return features


def _timings(dirs: dict, results: dict, t_cells: float, t0: float) -> dict:
    """Seconds per cell (from each cell's ``done`` record), for all the cells, and for the whole run."""
    timings = {}
    for kind in ("data", "pretrain_data", "prepared"):  # these folders lie inside their cell's folder
        if kind in dirs:
            timings[kind] = _done(Path(dirs[kind]).parent).get("seconds")
    for m, d in dirs["pretrain"].items():
        timings[f"pretrain: {m}"] = _done(d).get("seconds")
    for c in ((results.get("probe") or {}).get("val") or {}).get("cells", []):
        timings[f"probe (fit + score): {c['method']} f{c['fraction']:g} s{c['seed']}"] = c.get("seconds")
    for (m, f, sd), d in dirs["finetune"].items():
        timings[f"finetune: {m} f{f:g} s{sd}"] = _done(d).get("seconds")
    timings["every cell of this run (cached cells are not re-run)"] = t_cells
    timings["this run, pictures included"] = time.time() - t0
    return timings
