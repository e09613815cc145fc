"""``pri3d demo``: the whole pipeline on the embedded synthetic data, with a report.

It runs the experiment in ``pri3d/presets/experiment/demo.yaml`` (synth -> prepare -> Pri3D
view+geo pre-training of a ResNet-18 at low resolution -> semantic segmentation at a 20 % label
fraction from the Pri3D weights and from scratch -> evaluation), then draws the pictures and writes
``OUT/report/report.md``. Every stage is a cached experiment cell, so a re-run only redoes what
changed (pictures are redrawn; they take seconds).
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
    from pri3d.models.imagenet import normalize
    from pri3d.pretrain.augment import to_float_image
    from pri3d.pretrain.data import resize_color
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
    from pri3d.geometry import scale_intrinsics
    from pri3d.geometry.correspondences import resample_depth, view_correspondences
    from pri3d.pairs.store import PreparedData
    from pri3d.pretrain.data import resize_color
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
    from pri3d.downstream.loop import load_finetuned_model
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


def slice_summary(cfg: ExperimentConfig, results: dict) -> list[str]:
    """What this run measured (each row against scratch at the lowest label fraction) and what a slice of
    this size can and cannot show."""
    from pri3d.experiment import method_label

    f, summ = min(cfg.fractions), results.get("summary_final", {})
    ref = summ.get(cfg.reference, {}).get(f, {}).get("mean")
    out = []
    for m in cfg.methods:
        v = summ.get(m, {}).get(f, {}).get("mean")
        if m != cfg.reference and v is not None and ref is not None:
            # the same scale as the table (scores are fractions, the table shows them x100)
            out.append(
                f"measured here: {method_label(cfg, m)} {100 * v:.1f} vs {method_label(cfg, cfg.reference)} "
                f"{100 * ref:.1f} {cfg.finetune.metric} ({100 * (v - ref):+.1f}) at {f * 100:g} % of the labels"
            )
    from pri3d.data.synth import split_scene_ids

    n = cfg.data.synth.scenes
    n_val = len(split_scene_ids([str(i) for i in range(n)])[1]) if n > 1 else None
    out += [
        "it shows: the whole pipeline (scans -> pairs -> Stage-I init -> Pri3D -> fine-tuning) runs on this "
        "machine, what each stage costs, and whether pre-training improved label-free matching on held-out scenes",
        f"it cannot show: whether one row is better than another. With {len(cfg.seeds)} seed(s), "
        f"{'about ' + str(n_val) + ' validation scenes' if n_val else 'the validation scenes'} and short "
        "pre-training, differences of a few mIoU are within the seed-to-seed spread",
        "the full protocol (more unlabelled scans, every method, 3 seeds, a test set of its own seed) is "
        "`pri3d experiment --config configs/synthetic-cpu.yaml`; its table and wall time are in the README "
        "(Results on the embedded benchmark)",
    ]
    return out


def _fmt_s(s) -> str:
    return "-" if s is None else f"{s:.0f} s"


def write_report(
    cfg: ExperimentConfig, results: dict, out: Path, pictures: dict, timings: dict, notes: list[str]
) -> Path:
    """``out/report.md``: the experiment's table, what this slice can and cannot show, the settings,
    the timings, the pre-training table and the pictures."""
    out.mkdir(parents=True, exist_ok=True)
    table = (Path(cfg.out) / "table.md").read_text() if (Path(cfg.out) / "table.md").is_file() else ""
    s = cfg.data.synth
    lines = [
        "# pri3d demo report",
        "",
        "Pri3D pre-training on the embedded synthetic RGB-D data, then semantic segmentation with few labels.",
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
        f"- fine-tuning: {cfg.finetune.task}, preset `{cfg.finetune.preset}` {' '.join(cfg.finetune.overrides)}",
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
    captions = {
        "curve": "Data efficiency: mIoU against the fraction of training labels.",
        "features": "Pre-trained features (PCA to RGB). Columns: image, randomly initialised network (scratch), "
        f"Pri3D {pri3d_method(cfg.methods)}.",
        "correspondences": "Pixel correspondences of a mined pair (reprojection + depth test, as pre-training uses).",
        "segmentation": "Validation frames. Columns: image, ground truth, scratch, Pri3D (black = unlabelled).",
    }
    for key, path in pictures.items():
        lines += [f"### {key}", "", captions.get(key, ""), "", f"![{key}]({Path(path).name})", ""]
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report


def run_demo(out="pri3d-demo", overrides: list[str] | None = None, log=print) -> Path:
    """Run the demo into ``out`` and return the path of ``report.md``."""
    from pri3d.models.init import load_backbone
    from pri3d.models.resnet_unet import ResNetUNet
    from pri3d.viz import save_png

    out = Path(out).resolve()
    cfg = load_experiment(DEMO_CONFIG, [f"out={out / 'experiment'}", *(overrides or [])])
    t0 = time.time()
    results = run_experiment(cfg, log=log)
    root = Path(cfg.out)
    report_dir = out / "report"
    pictures, notes = {}, []
    report_dir.mkdir(parents=True, exist_ok=True)
    pictures["curve"] = Path(shutil.copyfile(root / "curve.png", report_dir / "curve.png"))

    dirs = results["cell_dirs"]
    prepared = Path(dirs["prepared"]) if "prepared" in dirs else None
    if prepared is not None:
        img, info = correspondence_figure(prepared, size=tuple(cfg.data.synth.resolution))
        pictures["correspondences"] = save_png(report_dir / "correspondences.png", img)
        notes.append(
            f"correspondences: {info['scene']} frames {info['frame_a']}-{info['frame_b']}, mined overlap "
            f"{info['overlap']:.2f}, {info['matches']} matches on the {info['grid'][0]}x{info['grid'][1]} "
            "feature grid (50 drawn)"
        )

    pri3d_m = pri3d_method(cfg.methods)
    if pri3d_m is not None:
        bb_path = _done(dirs["pretrain"][pri3d_m])["backbone"]
        state = torch.load(bb_path, map_location="cpu", weights_only=False)
        torch.manual_seed(0)
        scratch = ResNetUNet(state["arch"], state["feature_dim"])
        pri3d = ResNetUNet(state["arch"], state["feature_dim"])
        load_backbone(pri3d, bb_path)
        from pri3d.data.formats import open_dataset

        data_path = dirs["data"]
        val = open_dataset(data_path, cfg.data.format, split=Path(data_path) / "splits" / "val.txt")
        frames = _pick_frames(val, 3)
        fig = feature_pca_figure({"scratch": scratch, "pri3d": pri3d}, frames, tuple(cfg.data.synth.resolution))
        pictures["features"] = save_png(report_dir / "features.png", fig)

    lowest, seed = min(cfg.fractions), cfg.seeds[0]
    runs = {
        m: Path(dirs["finetune"][(m, lowest, seed)]) / "run"
        for m in ("scratch", pri3d_m)
        if (m, lowest, seed) in dirs["finetune"]
    }
    if runs:
        pictures["segmentation"] = save_png(report_dir / "segmentation.png", segmentation_figure(runs))
        notes.append(f"segmentation picture: models fine-tuned with {lowest * 100:g}% of the labels, seed {seed}")
    timings = {}
    for kind in ("data", "pretrain_data", "prepared"):  # these folders lie inside their cell's folder
        if kind in dirs:
            timings[kind] = _done(Path(dirs[kind]).parent).get("seconds")
    for m, d in dirs["pretrain"].items():
        timings[f"pretrain: {m}"] = _done(d).get("seconds")
    for (m, f, sd), d in dirs["finetune"].items():
        timings[f"finetune: {m} f{f:g} s{sd}"] = _done(d).get("seconds")
    timings["this run (cached stages are not re-run)"] = time.time() - t0
    report = write_report(cfg, results, report_dir, pictures, timings, notes)
    log(f"[demo] report: {report}")
    return report
