"""How much of the semantic class can be read off colour alone? (prints figures; asserts nothing)

A colour-only per-pixel classifier (a small MLP on each pixel's RGB plus a histogram of the colours
in a window around it: no shape, no position, no depth) is trained on the frames of some synthetic
scenes and scored (ScanNet-20 mIoU, ``pri3d.downstream.metrics``) on the frames of other, held-out
scenes of the same generator settings. If the figure is far above what the same classifier gets on
real indoor frames, the generator gives the class away through colour, and colour-invariant
contrastive features are bound to lose against a network that reads colour.

Real-data reference (rough: two frames): the two NYUv2 frames in ``../shared/data`` (train on one,
test on the other, both ways, mean), skipped when the folder is absent. Each figure comes with the
majority-class baseline (every pixel = the most frequent training class) of the same split.

Examples::

    python benchmarks/bench_color_shortcut.py                      # shared palette (the default generator)
    python benchmarks/bench_color_shortcut.py --materials class    # class-typical materials (generator 1.0)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

NYU = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nyuv2-labeled-samples"


def color_features(rgb: np.ndarray, bins: int = 4, window: int = 15) -> np.ndarray:
    """``(H, W, 3)`` uint8 -> ``(H, W, 3 + bins**3)`` float32: the pixel's RGB in [0, 1] and the joint
    colour histogram (``bins`` levels per channel) of the ``window`` x ``window`` neighbourhood,
    normalised to sum to 1 (a box filter over one-hot quantised colours)."""
    q = (rgb.astype(np.int32) * bins // 256).clip(0, bins - 1)
    code = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    onehot = np.zeros((*code.shape, bins**3), np.float32)
    np.put_along_axis(onehot, code[..., None], 1.0, axis=2)
    hist = np.stack(
        [cv2.blur(onehot[..., k], (window, window), borderType=cv2.BORDER_REFLECT) for k in range(bins**3)], -1
    )
    return np.concatenate([rgb.astype(np.float32) / 255.0, hist], -1)


def frames_of(scenes, label_set, size, max_frames: int | None = None):
    """``[(features (H*W, D), labels (H*W,))]`` of every frame (resized to ``size`` = (H, W))."""
    out = []
    for sc in scenes:
        ids = sc.frame_ids if max_frames is None else sc.frame_ids[:: max(1, len(sc.frame_ids) // max_frames)]
        for fid in ids[: max_frames or None]:
            fr = sc.load_frame(fid, depth=False, labels=True)
            rgb = cv2.resize(fr.color, (size[1], size[0]), interpolation=cv2.INTER_AREA)
            lab = cv2.resize(fr.label.astype(np.int32), (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
            y, _ = label_set.map(lab)
            out.append((color_features(rgb).reshape(-1, 3 + 64), y.reshape(-1)))
    return out


def train_mlp(x: np.ndarray, y: np.ndarray, k: int, *, steps: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], 128),
        torch.nn.ReLU(),
        torch.nn.Linear(128, 128),
        torch.nn.ReLU(),
        torch.nn.Linear(128, k),
    )
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(len(xt), (4096,), generator=g)
        loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


def score(train, test, label_set, *, steps: int, seed: int) -> dict:
    """mIoU / pixel accuracy of the colour MLP and of the majority class, trained on ``train`` frames and
    scored on ``test`` frames (ignore-labelled pixels left out of both)."""
    from pri3d.downstream.classes import IGNORE_INDEX
    from pri3d.downstream.metrics import confusion_matrix, semseg_scores

    k = label_set.num_classes
    x = np.concatenate([f for f, _ in train])
    y = np.concatenate([lab for _, lab in train])
    keep = y != IGNORE_INDEX
    x, y = x[keep], y[keep]
    net = train_mlp(x, y, k, steps=steps, seed=seed)
    majority = int(np.bincount(y, minlength=k).argmax())
    xs = torch.from_numpy(np.concatenate([f for f, _ in test]))
    gt = torch.from_numpy(np.concatenate([lab for _, lab in test]))
    with torch.no_grad():
        pred = torch.cat([net(xs[i : i + 65536]).argmax(1) for i in range(0, len(xs), 65536)])
    out = {}
    for name, p in (("colour MLP", pred), ("majority class", torch.full_like(gt, majority))):
        s = semseg_scores(confusion_matrix(p, gt, k, IGNORE_INDEX), label_set.class_names)
        out[name] = {"miou": s["miou"], "pixel_acc": s["pixel_acc"]}
    out["classes_in_test"] = int(len(set(gt[gt != IGNORE_INDEX].tolist())))
    return out


def synthetic(args, label_set) -> dict:
    from pri3d.data.formats import open_dataset
    from pri3d.data.synth import generate

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synth"
        generate(
            root,
            scenes=args.scenes,
            frames_per_scene=args.frames,
            seed=args.seed,
            resolution=tuple(args.resolution),
            workers=args.workers,
            materials=args.materials,
            progress=False,
        )
        scenes = open_dataset(root)
        n_test = max(1, round(args.test_share * len(scenes)))
        train, test = scenes[:-n_test], scenes[-n_test:]
        size = tuple(args.resolution)
        r = score(
            frames_of(train, label_set, size),
            frames_of(test, label_set, size),
            label_set,
            steps=args.steps,
            seed=args.seed,
        )
    r["split"] = f"{len(train)} training scenes, {len(test)} held-out scenes x {args.frames} frames"
    return r


def nyu(args, label_set) -> dict | None:
    from pri3d.data.formats import open_dataset

    if not NYU.is_dir():
        return None
    frames = []
    for sc in open_dataset(NYU):
        frames += frames_of([sc], label_set, (240, 320))
    if len(frames) < 2:
        return None
    runs = [score([frames[a]], [frames[b]], label_set, steps=args.steps, seed=args.seed) for a, b in ((0, 1), (1, 0))]
    mean = {
        name: {k: float(np.mean([r[name][k] for r in runs])) for k in ("miou", "pixel_acc")}
        for name in ("colour MLP", "majority class")
    }
    mean["classes_in_test"] = float(np.mean([r["classes_in_test"] for r in runs]))
    mean["split"] = "2 frames: train on one, test on the other, both ways (mean)"
    return mean


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--materials", choices=["shared", "class"], default="shared")
    p.add_argument("--scenes", type=int, default=10, help="generated scenes (the last --test-share held out)")
    p.add_argument("--frames", type=int, default=6, help="frames per scene")
    p.add_argument("--test-share", type=float, default=0.4)
    p.add_argument("--resolution", type=int, nargs=2, default=[120, 160])
    p.add_argument("--steps", type=int, default=1500, help="MLP training steps (Adam, 4096 pixels each)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="generator processes")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from pri3d.downstream.classes import get_label_set

    label_set = get_label_set("scannet20")
    t0 = time.time()
    res = {"materials": args.materials, "synthetic": synthetic(args, label_set), "nyuv2": nyu(args, label_set)}
    res["seconds"] = time.time() - t0
    print(
        f"bench_color_shortcut: colour-only MLP (RGB + {15}x{15} colour histogram), ScanNet-20 classes, "
        f"generator materials={args.materials}, seed {args.seed}, {res['seconds']:.0f} s"
    )
    print(f"{'data':<34} {'MLP mIoU':>9} {'MLP acc':>8} {'majority mIoU':>14} {'majority acc':>13} {'classes':>8}")
    for name, r in (("synthetic, held-out scenes", res["synthetic"]), ("NYUv2, cross-frame (2 frames)", res["nyuv2"])):
        if r is None:
            print(f"{name:<34} skipped (no {NYU})")
            continue
        m, b = r["colour MLP"], r["majority class"]
        print(
            f"{name:<34} {100 * m['miou']:>9.1f} {100 * m['pixel_acc']:>8.1f} {100 * b['miou']:>14.1f} "
            f"{100 * b['pixel_acc']:>13.1f} {r['classes_in_test']:>8g}   ({r['split']})"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
