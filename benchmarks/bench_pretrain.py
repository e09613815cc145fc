"""Pre-training step cost against its physical minimum, per mode (prints figures; asserts nothing).

For each mode, on one batch that is already loaded (data ready), in the same process and run:

* ``backbone``: the 2D backbone's forward + backward alone on the batch's images (2B images);
* ``step``: the full training step: backbone, correspondence gathering, PointInfoNCE, the 3D branch
  (geo modes), backward and the optimizer update;
* ``ratio`` = step / backbone (everything the method adds is overhead on the minimum); target <= 1.15
  for ``view``;
* ``3d share`` (geo modes): the 3D sparse UNet's forward + backward as a share of the step;
* ``loader``: DataLoader throughput with ``--workers`` workers (pairs/s), against the step's pairs/s.

Timings are medians over ``--iters`` repeats after a warm-up. Example::

    python benchmarks/bench_pretrain.py --arch resnet18 --resolution 96 128 --batch 8 --workers 2

Without ``--data`` a small synthetic dataset is generated and prepared in a temporary folder.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def _median_time(fn, iters: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def _make_data(tmp: Path, scenes: int, frames: int, res) -> Path:
    from pri3d.cli import main
    from pri3d.data.synth import generate

    generate(tmp / "synth", scenes=scenes, frames_per_scene=frames, seed=0, resolution=res, progress=False)
    if main(["prepare", "--input", str(tmp / "synth"), "--output", str(tmp / "prepared"), "--frame-skip", "1"]):
        raise SystemExit("prepare failed")
    return tmp / "prepared"


def bench_mode(mode: str, data: Path, args) -> dict:
    from torch.utils.data import DataLoader

    from pri3d.data.prepared import PreparedData
    from pri3d.pretrain.data import StepBatchSampler, split_pairs, worker_init
    from pri3d.pretrain.loop import load_config
    from pri3d.pretrain.method import MODES

    H, W = args.resolution
    cfg = load_config(args.config, [f"mode={mode}", f"data.path={data}", f"model.arch={args.arch}",
                                     f"data.resolution=[{H},{W}]", f"loss.num_matches={args.matches}"])
    spec = MODES[mode]
    prepared = PreparedData(data)
    pairs, _, _ = split_pairs(prepared, "all", "")
    ds = spec.build_dataset(cfg, prepared, pairs, True)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    method = spec.build_method(cfg).to(dev)
    opt = torch.optim.SGD(method.parameters(), lr=1e-3, momentum=0.9)
    batch = spec.collate([ds[(i % len(ds), i)] for i in range(args.batch)])
    batch = {k: (v.to(dev) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}

    def backbone_only():
        f = method.backbone(batch["images"])
        f.float().square().mean().backward()
        method.zero_grad(set_to_none=True)

    def full_step():
        losses = method(batch)
        sum(losses.values()).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    t_bb = _median_time(backbone_only, args.iters)
    t_step = _median_time(full_step, args.iters)
    out = {"mode": mode, "backbone_s": t_bb, "step_s": t_step, "ratio": t_step / t_bb,
           "step_pairs_s": args.batch / t_step}
    if spec.uses_3d:
        def branch3d():
            f3 = method.net3d(batch["vox_feats"].float(), batch["vox_coords"], 2 * args.batch)
            f3.square().mean().backward()
            method.zero_grad(set_to_none=True)

        out["t3d_s"] = _median_time(branch3d, args.iters)
        out["share3d"] = out["t3d_s"] / t_step
        out["voxels"] = int(batch["vox_coords"].shape[0])
    # loader throughput
    sampler = StepBatchSampler(len(ds), batch_size=args.batch, seed=0, steps=args.loader_batches + 1)
    loader = DataLoader(ds, batch_sampler=sampler, num_workers=args.workers, collate_fn=spec.collate,
                        worker_init_fn=worker_init if args.workers else None)
    it = iter(loader)
    next(it)  # workers started
    t0 = time.perf_counter()
    n = sum(1 for _ in it)
    out["loader_pairs_s"] = n * args.batch / (time.perf_counter() - t0)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="prepared directory (default: generate a small synthetic one)")
    p.add_argument("--config", default="cpu-small")
    p.add_argument("--modes", nargs="+", default=["view", "geo", "view+geo"])
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--resolution", type=int, nargs=2, default=[96, 128])
    p.add_argument("--batch", type=int, default=8, help="pairs per step")
    p.add_argument("--matches", type=int, default=256)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--loader-batches", type=int, default=8)
    p.add_argument("--threads", type=int, default=0, help="torch threads in the main process (0 = default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data) if args.data else _make_data(Path(tmp), 3, 10, (120, 160))
        print(f"bench_pretrain: {args.arch} at {args.resolution[0]}x{args.resolution[1]}, batch {args.batch} pairs, "
              f"K={args.matches}, {torch.get_num_threads()} threads, device "
              f"{'cuda' if torch.cuda.is_available() else 'cpu'}, data {data}")
        print(f"{'mode':<9} {'backbone s':>10} {'step s':>8} {'ratio':>6} {'3d share':>8} {'voxels':>8} "
              f"{'step pairs/s':>12} {'loader pairs/s':>14}")
        for mode in args.modes:
            r = bench_mode(mode, data, args)
            share = f"{r['share3d']:.2f}" if "share3d" in r else "-"
            vox = str(r.get("voxels", "-"))
            print(f"{r['mode']:<9} {r['backbone_s']:>10.3f} {r['step_s']:>8.3f} {r['ratio']:>6.2f} {share:>8} "
                  f"{vox:>8} {r['step_pairs_s']:>12.1f} {r['loader_pairs_s']:>14.1f}")


if __name__ == "__main__":
    main()
