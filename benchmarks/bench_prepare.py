"""Pair-mining benchmark: the fast miner against the exact KD-tree reference, in one run.

For each scene (the real 7-Scenes sample when present, and a ScanNet-like synthetic scan: the
generator's one-loop walk, 70 frames at 640x480, like a ScanNet scan sampled every 25th frame):

* loads the frames once (timed separately),
* mines every pair with :func:`pri3d.geometry.overlap.overlap_fast` (the ``pri3d prepare``
  defaults) and with the exact reference :func:`pri3d.geometry.overlap.overlap_reference`
  (scipy cKDTree over every valid pixel) on a random subset of the same pairs,
* prints pairs/s for both, the speed-up, and the agreement (keep/drop decisions at 0.30 and the
  overlap error on pairs both computed),
* extrapolates to ScanNet (1513 scans, every 25th frame, about 70 frames per scan) from the measured
  per-scene figures of the synthetic scan, for 1 and 2 worker processes,
* and measures peak memory of ``prepare`` over 1 and 2 scenes (it must not grow with scenes).

Timings are wall-clock on whatever machine runs it; compare the ratios, which are measured in the
same run. Example::

    .venv/bin/python benchmarks/bench_prepare.py --ref-pairs 100
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pri3d.data.formats import open_dataset
from pri3d.geometry.overlap import overlap_fast, overlap_reference
from pri3d.pairs.mine import PrepareParams, auto_query_stride, load_scene_frames

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "7scenes-redkitchen-150-199"
SCANNET_SCANS, SCANNET_FRAMES = 1513, 70


def bench_scene(scene, *, frame_skip: int, ref_pairs: int, threads: list[int], seed: int, label: str) -> dict:
    params = PrepareParams(frame_skip=frame_skip)
    t0 = time.perf_counter()
    fr = load_scene_frames(scene, params)
    t_load = time.perf_counter() - t0
    F = len(fr.frame_ids)
    H, W = fr.depth.shape[1:]
    qs = auto_query_stride((H, W))
    fast_s = {}
    # Warm-up on two frames: loads the compiled kernel (numba's on-disk cache) outside the timing.
    overlap_fast(fr.depth[:2], fr.K, fr.poses[:2], radius=params.radius, query_stride=qs)
    for th in threads:
        t0 = time.perf_counter()
        ov, pairs, st = overlap_fast(fr.depth, fr.K, fr.poses, radius=params.radius, query_stride=qs, threads=th)
        fast_s[th] = time.perf_counter() - t0
    t_fast = fast_s[threads[0]]
    P = len(pairs)
    rng = np.random.default_rng(seed)
    sub = np.sort(rng.choice(P, size=min(ref_pairs, P), replace=False)) if ref_pairs > 0 else np.arange(P)
    t0 = time.perf_counter()
    ref = overlap_reference(list(fr.depth), [fr.K] * F, list(fr.poses), radius=params.radius, pairs=pairs[sub])
    t_ref = time.perf_counter() - t0
    fast_sub = ov[sub]
    keep_fast = np.nan_to_num(fast_sub, nan=-1) >= params.min_overlap
    keep_ref = ref >= params.min_overlap
    agree = float(np.mean(keep_fast == keep_ref))
    both = np.isfinite(fast_sub)
    err = np.abs(fast_sub[both] - ref[both])
    r = {
        "scene": label,
        "frames": F,
        "size": f"{W}x{H}",
        "pairs": P,
        "query_stride": qs,
        "load_s": t_load,
        "fast_s": t_fast,
        "fast_pairs_per_s": P / t_fast,
        "fast_pairs_per_s_by_threads": {th: P / t for th, t in fast_s.items()},
        "ref_pairs": len(sub),
        "ref_s": t_ref,
        "ref_pairs_per_s": len(sub) / t_ref,
        "speedup": (P / t_fast) / (len(sub) / t_ref),
        "agreement": agree,
        "max_abs_err": float(err.max()) if len(err) else 0.0,
        "mean_abs_err": float(err.mean()) if len(err) else 0.0,
        "kept_ref": int(keep_ref.sum()),
        "stats": st.to_dict(),
    }
    print(f"\n== {label}: {F} frames {W}x{H}, {P} pairs, query stride {qs}")
    print(f"  load (once)      {t_load:8.2f} s")
    for th, t in fast_s.items():
        print(f"  fast miner       {t:8.2f} s  -> {P / t:9.1f} pairs/s   ({th} thread{'s' if th > 1 else ''})")
    print(
        f"                   ({st.culled_box} pairs box-culled; {st.queries} query points projected, "
        f"{st.kd_queries} near a camera centre resolved by KD-tree)"
    )
    print(f"  exact reference  {t_ref:8.2f} s  -> {r['ref_pairs_per_s']:9.2f} pairs/s   (on {len(sub)} of the pairs)")
    print(f"  speed-up         {r['speedup']:8.1f} x  (1 thread each)")
    print(
        f"  agreement        {agree * 100:8.2f} % keep/drop at {params.min_overlap} on {len(sub)} pairs "
        f"({r['kept_ref']} kept by the reference); |overlap error| max {r['max_abs_err']:.4f} "
        f"mean {r['mean_abs_err']:.4f}"
    )
    return r


def peak_memory(dataset: Path, scenes: list[str]) -> float:
    """Peak RSS (MiB) of a fresh process running prepare() on ``scenes``."""
    code = (
        "import resource, sys, tempfile, pathlib\n"
        "from pri3d.pairs.mine import prepare\n"
        "split = pathlib.Path(tempfile.mkdtemp()) / 'split.txt'\n"
        f"split.write_text({chr(10).join(scenes)!r})\n"
        f"prepare({str(dataset)!r}, tempfile.mkdtemp(), split_file=split, progress=False)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", default=str(SHARED), help="7-Scenes sample folder (skipped when absent)")
    ap.add_argument("--frame-skip", type=int, default=1, help="frame skip on the real sample")
    ap.add_argument("--synth-dir", default=None, help="reuse/write the synthetic scans here (default: a temp dir)")
    ap.add_argument("--synth-frames", type=int, default=SCANNET_FRAMES)
    ap.add_argument("--ref-pairs", type=int, default=100, help="random pairs measured with the reference (0 = all)")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts for the fast miner")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()
    args.threads = [int(t) for t in args.threads.split(",")]
    torch.set_num_threads(1)  # per-core figures; parallelism only through --threads

    results = []
    real = Path(args.real)
    if real.exists():
        scene = open_dataset(real, "7scenes")[0]
        results.append(
            bench_scene(
                scene,
                frame_skip=args.frame_skip,
                ref_pairs=args.ref_pairs,
                threads=args.threads,
                seed=args.seed,
                label=f"7-Scenes {real.name}",
            )
        )
    else:
        print(f"(real sample {real} absent: skipped)")

    from pri3d.data.synth import generate

    synth = Path(args.synth_dir) if args.synth_dir else Path(tempfile.mkdtemp(prefix="bench_prepare_"))
    t0 = time.perf_counter()
    generate(synth, scenes=2, frames_per_scene=args.synth_frames, seed=7, resolution=(480, 640), progress=False)
    print(f"\n(synthetic scans ready in {time.perf_counter() - t0:.1f} s: {synth})")
    scenes = open_dataset(synth, "scannet")
    r = bench_scene(
        scenes[0],
        frame_skip=1,
        ref_pairs=args.ref_pairs,
        threads=args.threads,
        seed=args.seed,
        label="synthetic ScanNet-like scan",
    )
    results.append(r)

    per_scene = r["load_s"] + r["fast_s"]  # one thread: one worker process per core
    ref_scene = r["pairs"] / r["ref_pairs_per_s"]
    # Whole-command throughput (pairs only): both scans with 1 and with 2 worker processes.
    from pri3d.pairs.mine import prepare

    wall = {}
    for workers in (1, 2):
        t0 = time.perf_counter()
        prepare(synth, tempfile.mkdtemp(), params=PrepareParams(geometry=False), workers=workers, progress=False)
        wall[workers] = (time.perf_counter() - t0) / len(scenes)
    n_pairs = SCANNET_SCANS * SCANNET_FRAMES * (SCANNET_FRAMES - 1) // 2
    print(
        f"\n== pri3d prepare --no-geometry on the {len(scenes)} synthetic scans: {wall[1]:.1f} s/scan with 1 worker, "
        f"{wall[2]:.1f} s/scan with 2 workers (process start-up included)"
    )
    print(f"\n== ScanNet extrapolation ({SCANNET_SCANS} scans x ~{SCANNET_FRAMES} frames = {n_pairs} pairs):")
    print(
        f"  fast, from the miner alone: {per_scene:.1f} s/scan (load {r['load_s']:.1f} + mine {r['fast_s']:.1f}) -> "
        f"{SCANNET_SCANS * per_scene / 3600:.2f} h on 1 core"
    )
    print(
        f"  fast, from the command: {SCANNET_SCANS * wall[1] / 3600:.2f} h with 1 worker; with 2 worker processes "
        f"{SCANNET_SCANS * wall[1] / 2 / 3600:.2f} h if scans split evenly (the 2-worker run above has only one scan "
        f"per worker, so its spawn start-up of a few seconds dominates: {SCANNET_SCANS * wall[2] / 3600:.2f} h "
        f"taken literally)"
    )
    print(f"  exact reference: {ref_scene:.0f} s/scan -> {SCANNET_SCANS * ref_scene / 3600:.0f} h on 1 core")
    results.append({"command_s_per_scan": wall})

    if not args.no_memory:
        ids = [s.scene_id for s in scenes]
        m1 = peak_memory(synth, ids[:1])
        m2 = peak_memory(synth, ids[:2])
        print(f"\n== peak memory of prepare (pairs + geometry): 1 scene {m1:.0f} MiB, 2 scenes {m2:.0f} MiB")
        results.append({"peak_mib_1_scene": m1, "peak_mib_2_scenes": m2})
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
