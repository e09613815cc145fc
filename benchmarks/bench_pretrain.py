"""Pre-training step cost against its physical minimum, per mode (prints figures; asserts nothing).

For each mode, on one batch that is already loaded (data ready), in the same process and run:

* ``backbone``: the 2D backbone's forward + backward alone on the batch's images (2B images);
* ``step``: the full training step: backbone, correspondence gathering, PointInfoNCE, the 3D branch
  (geo modes), backward and the optimizer update;
* ``ratio`` = step / backbone (everything the method adds is overhead on the minimum); target <= 1.15
  for ``view``;
* ``3d share`` (geo modes): the 3D sparse UNet's forward + backward as a share of the step;
* ``loader``: DataLoader throughput with ``--workers`` workers (pairs/s), against the step's pairs/s;
* ``images/s`` (2 per pair) and, with ``--flops``, the step's FLOPs (``torch.utils.flop_counter`` on
  one step: convolutions and matmuls, forward + backward) and the MFU against ``--peak-tflops``
  (default: the dense bf16 peak of a known GPU, e.g. 989 TFLOP/s for an H100/H200 SXM).

Timings are medians over ``--iters`` rounds after a warm-up, measured round-robin (backbone, step,
3D branch, backbone, ...) so that load changes on a shared machine hit all of them alike. Examples::

    # CPU
    python benchmarks/bench_pretrain.py --arch resnet18 --resolution 96 128 --batch 8 --workers 2
    # GPU (the issue's setting): ResNet-50 UNet, 240x320, 64 pairs, bf16, channels_last; then --compile
    python benchmarks/bench_pretrain.py --config paper --data PREPARED --arch resnet50 --resolution 240 320 \
        --batch 64 --matches 1024 --amp bf16 --channels-last --modes view view+geo --workers 8

Without ``--data`` a small synthetic dataset is generated and prepared in a temporary folder.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _interleaved_medians(fns: dict, iters: int, warmup: int = 1) -> dict:
    """Median time of each function, measured round-robin so that load changes on a shared machine
    hit every measurement alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    _sync()
    ts = {k: [] for k in fns}
    for _ in range(iters):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            _sync()
            ts[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in ts.items()}


# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) of GPUs the project is benchmarked on.
_PEAK_BF16 = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.1, "A10": 125.0}


def _peak_tflops(dev: torch.device) -> float | None:
    if dev.type != "cuda":
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in _PEAK_BF16.items() if k in name), None)


def _make_data(tmp: Path, scenes: int, frames: int, res, voxel_size: float) -> Path:
    from pri3d.cli import main
    from pri3d.data.synth import generate

    generate(tmp / "synth", scenes=scenes, frames_per_scene=frames, seed=0, resolution=res, progress=False)
    if main(
        [
            "prepare",
            "--input",
            str(tmp / "synth"),
            "--output",
            str(tmp / "prepared"),
            "--frame-skip",
            "1",
            "--voxel-size",
            str(voxel_size),
            "--no-progress",
        ]
    ):
        raise SystemExit("prepare failed")
    return tmp / "prepared"


def bench_mode(mode: str, data: Path, args) -> dict:
    from torch.utils.data import DataLoader

    from pri3d.config import resolve
    from pri3d.engine.sampling import StepBatchSampler
    from pri3d.engine.seed import worker_init_fn
    from pri3d.pairs.store import PreparedData
    from pri3d.pretrain.config import PretrainConfig
    from pri3d.pretrain.data import split_pairs
    from pri3d.pretrain.modes import MODES

    H, W = args.resolution
    cfg = resolve(
        PretrainConfig,
        args.config,
        [
            f"mode={mode}",
            f"data.path={data}",
            f"model.arch={args.arch}",
            f"data.resolution=[{H},{W}]",
            f"loss.num_matches={args.matches}",
            "model.init=scratch",
            *args.overrides,
        ],
    )
    spec = MODES[mode]
    prepared = PreparedData(data)
    pairs, _, _ = split_pairs(prepared, "all", "")
    ds = spec.build_dataset(cfg, prepared, pairs, True)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    method = spec.build_method(cfg).to(dev)
    if args.channels_last:
        method.backbone.to(memory_format=torch.channels_last)
    if args.compile:
        method.compile_backbone()
    opt = torch.optim.SGD(method.parameters(), lr=1e-3, momentum=0.9)
    batch = spec.collate([ds[(i % len(ds), i)] for i in range(args.batch)])
    batch = {k: (v.to(dev) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
    if args.channels_last:
        batch["images"] = batch["images"].contiguous(memory_format=torch.channels_last)
    amp = {"bf16": torch.bfloat16}.get(args.amp)

    def autocast():
        return torch.autocast(device_type=dev.type, dtype=amp or torch.bfloat16, enabled=amp is not None)

    def backbone_only():
        with autocast():
            f = method.features(batch["images"])
        f.float().square().mean().backward()
        method.zero_grad(set_to_none=True)

    def full_step():
        with autocast():
            losses = method(batch)
        sum(losses.values()).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    fns = {"backbone": backbone_only, "step": full_step}
    if spec.uses_3d:

        def branch3d():
            f3 = method.net3d(batch["vox_feats"].float(), batch["vox_coords"], 2 * args.batch)
            f3.square().mean().backward()
            method.zero_grad(set_to_none=True)

        fns["3d"] = branch3d
    flops = None
    if args.flops:
        from torch.utils.flop_counter import FlopCounterMode

        full_step()  # compiled graphs are built outside the count
        with FlopCounterMode(display=False) as fc:
            full_step()
        flops = fc.get_total_flops()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t = _interleaved_medians(fns, args.iters)
    t_bb, t_step = t["backbone"], t["step"]
    out = {
        "mode": mode,
        "backbone_s": t_bb,
        "step_s": t_step,
        "ratio": t_step / t_bb,
        "step_pairs_s": args.batch / t_step,
        "images_s": 2 * args.batch / t_step,
    }
    if flops is not None:
        out["tflop_step"] = flops / 1e12
        peak = args.peak_tflops or _peak_tflops(dev)
        if peak:
            out["mfu"] = flops / t_step / (peak * 1e12)
    if dev.type == "cuda":
        out["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    if spec.uses_3d:
        out["t3d_s"] = t["3d"]
        out["share3d"] = t["3d"] / t_step
        out["voxels"] = int(batch["vox_coords"].shape[0])
    # loader throughput
    sampler = StepBatchSampler(len(ds), batch_size=args.batch, seed=0, steps=args.loader_batches + 1)
    loader = DataLoader(
        ds,
        batch_sampler=sampler,
        num_workers=args.workers,
        collate_fn=spec.collate,
        worker_init_fn=worker_init_fn if args.workers else None,
    )
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
    p.add_argument("--amp", choices=["off", "bf16"], default="off", help="autocast (GPU: bf16)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile the 2D backbone")
    p.add_argument("--flops", action="store_true", help="count one step's FLOPs and print the MFU")
    p.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="the device's peak TFLOP/s for the MFU (default: known GPUs' dense bf16 peak)",
    )
    p.add_argument("--voxel-size", type=float, default=0.04, help="voxel size when generating data (m)")
    p.add_argument("overrides", nargs="*", help="extra config overrides (key=value)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data) if args.data else _make_data(Path(tmp), 3, 10, (120, 160), args.voxel_size)
        dev = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
        print(
            f"bench_pretrain: {args.arch} at {args.resolution[0]}x{args.resolution[1]}, batch {args.batch} pairs, "
            f"K={args.matches}, {torch.get_num_threads()} threads, device {dev}, amp {args.amp}, channels_last "
            f"{args.channels_last}, compile {args.compile}, data {data}"
        )
        print(
            f"{'mode':<9} {'backbone s':>10} {'step s':>8} {'ratio':>6} {'3d share':>8} {'voxels':>8} "
            f"{'step pairs/s':>12} {'images/s':>9} {'loader pairs/s':>14}"
        )
        for mode in args.modes:
            r = bench_mode(mode, data, args)
            share = f"{r['share3d']:.2f}" if "share3d" in r else "-"
            vox = str(r.get("voxels", "-"))
            mem = f"  peak {r['peak_gib']:.1f} GiB" if "peak_gib" in r else ""
            if "tflop_step" in r:
                mem += f"  {r['tflop_step']:.2f} TFLOP/step"
            if "mfu" in r:
                mem += f"  MFU {100 * r['mfu']:.1f} %"
            print(
                f"{r['mode']:<9} {r['backbone_s']:>10.3f} {r['step_s']:>8.3f} {r['ratio']:>6.2f} {share:>8} "
                f"{vox:>8} {r['step_pairs_s']:>12.1f} {r['images_s']:>9.1f} {r['loader_pairs_s']:>14.1f}{mem}"
            )


if __name__ == "__main__":
    main()
