"""Speed of ``pri3d synth`` and the frame-overlap mix its camera walks give.

Prints frames/s with 1 and 2 workers on the same scenes (and the ratio), and the projected time of
the reference dataset (10 scenes x 100 frames at 240x320). With ``--overlap`` it also measures the
pairwise overlap of the written depth maps at 2 cm (the pair-mining criterion of Pri3D) and prints
its distribution by frame gap.

    .venv/bin/python benchmarks/bench_synth.py                     # 4 scenes x 20 frames per setting
    .venv/bin/python benchmarks/bench_synth.py --full              # the real 10 x 100 with 2 workers
    .venv/bin/python benchmarks/bench_synth.py --overlap --frames 100 --scenes 2
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the pool's workers once joined)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run(out: Path, scenes: int, frames: int, resolution, workers: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one generate() call."""
    from pri3d.data.synth import generate

    c0, t0 = _cpu_seconds(), time.perf_counter()
    generate(
        out, scenes=scenes, frames_per_scene=frames, seed=0, resolution=resolution, workers=workers, progress=False
    )
    return time.perf_counter() - t0, _cpu_seconds() - c0


def overlap_report(root: Path, radius: float, n_query: int) -> None:
    import torch
    from scipy.spatial import cKDTree

    from pri3d.data.formats import open_dataset
    from pri3d.geometry.camera import backproject_depth

    rng = np.random.default_rng(0)
    by_gap: dict[int, list[float]] = {}
    all_pairs = []
    for scene in open_dataset(root):
        clouds, trees, queries = [], [], []
        for fid in scene.frame_ids:
            fr = scene.load_frame(fid, color=False, labels=False)
            pts = backproject_depth(
                torch.from_numpy(fr.depth[None]).double(),
                torch.from_numpy(fr.depth_intrinsics),
                torch.from_numpy(fr.pose),
            )[0].numpy()
            pts = pts[fr.depth > 0]
            clouds.append(pts)
            trees.append(cKDTree(pts))
            queries.append(pts[rng.choice(len(pts), size=min(n_query, len(pts)), replace=False)])
        n = len(clouds)
        for i in range(n):
            for j in range(i + 1, n):
                mi = np.mean(trees[j].query(queries[i], distance_upper_bound=radius)[0] < radius)
                mj = np.mean(trees[i].query(queries[j], distance_upper_bound=radius)[0] < radius)
                ov = float((mi * len(clouds[i]) + mj * len(clouds[j])) / (len(clouds[i]) + len(clouds[j])))
                by_gap.setdefault(j - i, []).append(ov)
                all_pairs.append(ov)
    all_pairs = np.array(all_pairs)
    print(
        f"overlap at {radius * 100:.0f} cm, {len(all_pairs)} pairs: "
        f"{np.mean(all_pairs >= 0.3) * 100:.1f}% >= 0.30, {np.mean(all_pairs < 0.3) * 100:.1f}% below"
    )
    print("frame gap | pairs | median | p10 | p90 | share >= 0.30")
    for g in (1, 2, 3, 5, 10, 20, 30, 50, 75, 99):
        if g in by_gap:
            v = np.array(by_gap[g])
            print(
                f"{g:9d} | {len(v):5d} | {np.median(v):.2f} | {np.quantile(v, 0.1):.2f} | {np.quantile(v, 0.9):.2f} | "
                f"{np.mean(v >= 0.3):.2f}"
            )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=4)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--resolution", default="240x320")
    ap.add_argument("--full", action="store_true", help="generate the reference 10 x 100 dataset with 2 workers")
    ap.add_argument("--overlap", action="store_true", help="also print the 2 cm pair-overlap distribution")
    ap.add_argument("--radius", type=float, default=0.02)
    ap.add_argument("--query-points", type=int, default=3000)
    args = ap.parse_args()
    from pri3d.data.synth import parse_resolution

    res = parse_resolution(args.resolution)
    print(f"cpu cores: {os.cpu_count()}; load average before: {os.getloadavg()[0]:.2f} (other processes share the CPU)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.full:
            secs, cpu = run(tmp / "full", 10, 100, res, 2)
            print(
                f"10 scenes x 100 frames at {res[0]}x{res[1]}, 2 workers: {secs:.1f} s ({1000 / secs:.2f} frames/s), "
                f"{cpu:.0f} CPU s ({cpu:.0f} CPU ms/frame)"
            )
            if args.overlap:
                overlap_report(tmp / "full", args.radius, args.query_points)
            return 0
        n = args.scenes * args.frames
        t1, c1 = run(tmp / "w1", args.scenes, args.frames, res, 1)
        t2, c2 = run(tmp / "w2", args.scenes, args.frames, res, 2)
        print(f"{args.scenes} scenes x {args.frames} frames at {res[0]}x{res[1]}:")
        print(f"  1 worker : {t1:6.1f} s  {n / t1:6.2f} frames/s  {c1 / n * 1000:5.0f} CPU ms/frame")
        print(f"  2 workers: {t2:6.1f} s  {n / t2:6.2f} frames/s  {c2 / n * 1000:5.0f} CPU ms/frame (x{t1 / t2:.2f})")
        print(
            f"  projected 10 scenes x 100 frames with 2 workers: {1000 / (n / t2):.0f} s at this load, "
            f"{1000 * c2 / n / 2:.0f} s on 2 idle cores (target < 180 s)"
        )
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        if args.overlap:
            overlap_report(tmp / "w2", args.radius, args.query_points)
    return 0


if __name__ == "__main__":
    sys.exit(main())
