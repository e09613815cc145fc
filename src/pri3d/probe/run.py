"""``run_probe(task, checkpoint, fit, test, ...)``: the probe of ``pri3d probe`` as one call.

Loads the backbone (:func:`pri3d.models.load.load_unet`: a pre-training checkpoint, an exported
``backbone.pth``, a fine-tuning checkpoint, or ``scratch`` / ``imagenet``), opens the fit and test
frames (:func:`pri3d.probe.frames.open_frames`), builds the one
:class:`~pri3d.probe.features.FeatureExtractor` and runs the task's probe. With ``out``, writes
``OUT/probe.json`` (atomically) and ``OUT/<task>.png`` (colour | ground truth | prediction for a few test
frames). The backbone is never trained.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from pri3d.errors import ConfigError, DataError

__all__ = ["TASKS", "run_probe", "format_probe", "probe_picture"]

TASKS = ("semseg", "depth", "normals")
DEFAULT_RESOLUTION = (240, 320)


def run_probe(
    task: str,
    checkpoint,
    fit,
    test,
    *,
    arch: str | None = None,
    feature_dim: int | None = None,
    resolution=None,
    seed: int = 0,
    fit_split: str | None = None,
    test_split: str | None = None,
    max_frames: int | None = None,
    pixels_per_frame: int = 512,
    label_set: str = "scannet20",
    normal_step: int = 2,
    normal_smooth: int = 3,
    normal_max_jump: float = 0.1,
    device: str = "cpu",
    out=None,
    force: bool = False,
    progress: bool = False,
) -> dict:
    """Run one probe; returns its JSON-ready report (see the task modules for the metric keys).

    Args:
        task: ``"semseg"``, ``"depth"`` or ``"normals"``.
        checkpoint: a weights file, or ``"scratch"`` / ``"imagenet"`` (then ``arch``, ``feature_dim``
            and ``seed`` choose the untrained network).
        fit, test: datasets (any format ``pri3d info`` reads) or prepared folders.
        resolution: ``(H, W)`` input size; default: the checkpoint's training resolution, else 240x320.
        seed: the scratch network's initialisation and the fit pixels' draw.
        fit_split, test_split: split names or files (see :func:`pri3d.probe.frames.open_frames`).
        max_frames: at most this many frames of each of fit and test, evenly spaced.
        pixels_per_frame: fit pixels drawn per fit frame.
        label_set: the semseg probe's classes.
        normal_step, normal_smooth, normal_max_jump: the normal probe's ground truth (``step``, ``smooth``,
            ``max_rel_jump`` of :func:`pri3d.geometry.normals.normals_from_depth`).
        device: ``cpu``, ``cuda`` or ``auto``.
        out: folder for ``probe.json`` and the picture; an existing ``probe.json`` is kept unless ``force``.
    """
    import torch

    from pri3d.models.load import load_unet
    from pri3d.probe.features import FeatureExtractor
    from pri3d.probe.frames import open_frames

    _check_arguments(task, pixels_per_frame, normal_step, normal_smooth, normal_max_jump)
    out = _check_out(out, force)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r}: CUDA is not available here (use --device cpu)")
    t0 = time.perf_counter()
    fit_set = open_frames(fit, split=fit_split, max_frames=max_frames)
    test_set = open_frames(test, split=test_split, max_frames=max_frames)
    model, ckpt_res, desc = load_unet(str(checkpoint), arch, feature_dim, seed, what="the probe")
    res = tuple(int(v) for v in resolution) if resolution else (ckpt_res or DEFAULT_RESOLUTION)
    if len(res) != 2 or any(v % 4 or v < 32 for v in res):
        raise DataError(f"resolution {res}: both sides must be multiples of 4 and at least 32")
    extractor = FeatureExtractor(model, res, device=device)
    common = dict(pixels_per_frame=pixels_per_frame, seed=seed, progress=progress)
    normal_gt = dict(step=normal_step, smooth=normal_smooth, max_rel_jump=normal_max_jump)
    result = _fit_and_score(task, extractor, fit_set, test_set, label_set, normal_gt, common)
    examples = result.pop("examples")
    report = {
        "task": task,
        **result,
        "checkpoint": desc,
        "checkpoint_path": str(checkpoint),
        "fit": fit_set.description,
        "test": test_set.description,
        "resolution": list(res),
        "features": extractor.describe(),
        "seed": seed,
        "pixels_per_frame": pixels_per_frame,
        "device": str(device),
        "time_s": round(time.perf_counter() - t0, 2),
    }
    if out is not None:
        from pri3d.engine.io import write_json

        out.mkdir(parents=True, exist_ok=True)
        report["picture"] = str(probe_picture(task, examples, out / f"{task}.png", result.get("num_classes")))
        write_json(out / "probe.json", report)
    return report


def _check_arguments(task: str, pixels_per_frame: int, normal_step: int, normal_smooth: int, normal_max_jump) -> None:
    """:class:`ConfigError` for an unknown task, no fit pixels or an impossible normal ground truth."""
    if task not in TASKS:
        raise ConfigError(f"unknown probe {task!r}; choose one of {', '.join(TASKS)}")
    if pixels_per_frame < 1:
        raise ConfigError(f"pixels_per_frame must be >= 1, got {pixels_per_frame}")
    if normal_step < 1 or normal_smooth < 0 or not normal_max_jump > 0:
        raise ConfigError(
            f"normal ground truth: need step >= 1, smooth >= 0 and max jump > 0, got {normal_step}, "
            f"{normal_smooth}, {normal_max_jump}"
        )


def _check_out(out, force: bool) -> Path | None:
    """The output folder as a Path (None stays None); an existing ``probe.json`` is refused unless ``force``."""
    if out is not None:
        out = Path(out)
        if (out / "probe.json").exists() and not force:
            raise ConfigError(f"{out / 'probe.json'} exists; pass --force to overwrite it")
        if out.exists() and not out.is_dir():
            raise DataError(f"{out}: exists and is not a directory")
    return out


def _fit_and_score(task: str, extractor, fit_set, test_set, label_set: str, normal_gt: dict, common: dict) -> dict:
    """The task's probe: fitted on ``fit_set``, scored on ``test_set`` (its result dict, ``examples`` included)."""
    if task == "semseg":
        from pri3d.probe.semseg import probe_semseg

        return probe_semseg(extractor, fit_set, test_set, label_set=label_set, **common)
    if task == "depth":
        from pri3d.probe.depth import probe_depth

        return probe_depth(extractor, fit_set, test_set, **common)
    from pri3d.probe.normals import probe_normals

    return probe_normals(extractor, fit_set, test_set, **normal_gt, **common)


def probe_picture(task: str, examples: list[dict], path, num_classes: int | None = None) -> Path:
    """Rows of colour | ground truth | prediction for the kept test frames, saved as a PNG."""
    from pri3d.viz import colorize_labels, depth_to_rgb, hstack, save_png, vstack

    rows = []
    if task == "depth" and examples:
        hi = max(float(np.percentile(e["gt"][e["gt"] > 0], 99)) if (e["gt"] > 0).any() else 1.0 for e in examples)
    for e in examples:
        if task == "semseg":
            k = num_classes or 256
            gt = colorize_labels(e["gt"], k, ignore_index=255)  # the same palette as the prediction
            pred = colorize_labels(e["pred"], k)
        elif task == "depth":
            gt, pred = depth_to_rgb(e["gt"], hi), depth_to_rgb(e["pred"], hi)
        else:
            gt = ((e["gt"] + 1) * 127.5).clip(0, 255).astype(np.uint8)
            gt[np.abs(e["gt"]).sum(-1) == 0] = 0
            pred = ((e["pred"] + 1) * 127.5).clip(0, 255).astype(np.uint8)
            pred[np.abs(e["pred"]).sum(-1) == 0] = 0
        rows.append(hstack([e["color"], gt, pred]))
    if not rows:
        rows = [np.zeros((8, 8, 3), np.uint8)]
    return save_png(path, vstack(rows))


def _constant_table(report: dict, keys, width: int, digits: int) -> list[str]:
    """The rows of a regression probe's table: each metric of ``keys``, the probe's and the constant floor's."""
    c = report["constant"]
    rows = [f"  {'':<{width}s} {'probe':>8s} {'constant':>9s}"]
    return rows + [f"  {k:<{width}s} {report[k]:8.{digits}f} {c[k]:9.{digits}f}" for k in keys]


def format_probe(report: dict) -> str:
    """A few lines for the terminal: the metrics and the floor."""
    task = report["task"]
    lines = [
        f"probe {task}: {report['checkpoint']} at {report['resolution'][0]}x{report['resolution'][1]}",
        f"  fit:  {report['fit']}",
        f"  test: {report['test']}",
        f"  features: {report['features']}",
        f"  head: {report['head']['head']}, {report['fit_pixels']} fit pixels"
        + (f", lambda {report['head']['lambda']:g}" if "lambda" in report["head"] else ""),
    ]
    if task == "semseg":
        for name, iou in report["per_class_iou"].items():
            if iou is not None:
                lines.append(f"    {name:<16s} IoU {100 * iou:6.2f}")
        m = report["majority"]
        lines.append(
            f"probe semseg: mIoU {100 * report['miou']:.2f}, pixel acc {100 * report['pixel_acc']:.2f} "
            f"(majority class {m['class']!r}: mIoU {100 * m['miou']:.2f}, pixel acc {100 * m['pixel_acc']:.2f}), "
            f"{report['test_pixels']} test pixels, {report['time_s']:.1f} s"
        )
    elif task == "depth":
        from pri3d.probe.depth import DEPTH_KEYS

        c = report["constant"]
        lines += _constant_table(report, DEPTH_KEYS, 15, 4)
        lines.append(
            f"probe depth: abs_rel {report['abs_rel']:.4f}, rmse {report['rmse']:.3f} m, delta1 {report['delta1']:.4f} "
            f"(constant {c['depth_m']:.2f} m: {c['abs_rel']:.4f}, {c['rmse']:.3f} m, {c['delta1']:.4f}), "
            f"{report['test_pixels']} test pixels, {report['time_s']:.1f} s"
        )
    else:
        from pri3d.probe.normals import NORMAL_KEYS

        c = report["constant"]
        lines += _constant_table(report, NORMAL_KEYS, 13, 3)
        lines.append(
            f"probe normals: median {report['median_deg']:.2f} deg, mean {report['mean_deg']:.2f} deg, "
            f"within 30 deg {report['within_30']:.4f} (constant: median {c['median_deg']:.2f} deg), "
            f"{report['test_pixels']} test pixels, {report['time_s']:.1f} s"
        )
    return "\n".join(lines)
