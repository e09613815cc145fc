"""Evaluation throughput of the downstream tasks (images/s), CPU and GPU when available.

For each task (semantic segmentation, Mask R-CNN detection) it measures, in the same run:

* **forward only** (the baseline): the model on random input tensors of the evaluation size;
* **full evaluation**: :func:`pri3d.downstream.evaluate.evaluate_model` on real files (reading, resizing,
  the forward pass, and the metric: confusion matrix or mask RLE encoding + pycocotools COCOeval),

and prints images/s and the ratio full / forward-only (the share of the time spent outside the network).
Models are untrained (scratch): Mask R-CNN then returns up to ``box_detections_per_img`` low-score
detections per image, which is the slow end for mask pasting and COCO evaluation.

    python benchmarks/bench_eval.py                          # synthetic data, generated into a temp dir
    python benchmarks/bench_eval.py --data DIR --image-size 240x320 --device cuda
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from pri3d.config import resolve
from pri3d.downstream.config import FinetuneConfig
from pri3d.downstream.evaluate import evaluate_model, make_task


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def forward_only(model, dev, n_images, batch, size, detection: bool) -> float:
    model.eval()
    x = torch.rand(batch, 3, *size, device=dev)
    with torch.no_grad():
        for _ in range(2):  # warm-up
            model(list(x) if detection else x)
        _sync(dev)
        t = time.perf_counter()
        done = 0
        while done < n_images:
            model(list(x) if detection else x)
            done += batch
        _sync(dev)
    return done / (time.perf_counter() - t)


def bench(task_name, root, args, dev) -> dict:
    h, w = args.image_size
    over = [
        f"model.arch={args.arch}",
        f"data.resolution=[{h},{w}]",
        f"data.workers={args.workers}",
        "data.min_mask_area=100",
        f"data.max_val_images={args.max_images}",
    ]
    cfg = resolve(FinetuneConfig, f"cpu-small-{task_name}", over, values={"data.path": str(root)})
    task = make_task(cfg)
    ds = task.dataset(
        "val", split=[s.name for s in sorted(Path(root).iterdir()) if s.is_dir() and s.name != "splits"], progress=False
    )
    n = len(ds)
    model, _ = task.build_model("scratch")
    model.to(dev)
    fwd = forward_only(model, dev, n, args.batch_size, (h, w), task_name == "detect")
    evaluate_model(
        task,
        model,
        torch.utils.data.Subset(ds, range(min(len(ds), args.batch_size))),
        dev,
        batch_size=args.batch_size,
        progress=False,
    )  # warm-up
    _sync(dev)
    t = time.perf_counter()
    scores = evaluate_model(task, model, ds, dev, batch_size=args.batch_size, workers=args.workers, progress=False)
    _sync(dev)
    full = n / (time.perf_counter() - t)
    extra = f"{scores['num_dets']} detections" if task_name == "detect" else f"{scores['num_pixels']} labelled px"
    return {"task": task_name, "images": n, "forward": fwd, "full": full, "extra": extra}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="ScanNet-layout dataset (default: generate a synthetic one)")
    p.add_argument("--image-size", default="240x320", help="HxW (default 240x320, the paper's evaluation size)")
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-images", type=int, default=16)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | both")
    p.add_argument("--tasks", default="semseg,detect")
    args = p.parse_args()
    args.image_size = tuple(int(v) for v in args.image_size.lower().split("x"))
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = {"auto": ["cuda" if torch.cuda.is_available() else "cpu"], "both": ["cpu", "cuda"]}.get(
        args.device, [args.device]
    )
    tmp = None
    root = args.data
    if root is None:
        from pri3d.data.synth import generate

        tmp = tempfile.TemporaryDirectory(prefix="bench_eval_")
        root = Path(tmp.name) / "synth"
        generate(
            root,
            scenes=2,
            frames_per_scene=max(4, args.max_images // 2),
            seed=0,
            resolution=args.image_size,
            progress=False,
        )
    print(
        f"data {root}, {args.arch}, {args.image_size[0]}x{args.image_size[1]}, batch {args.batch_size}, "
        f"threads {torch.get_num_threads()}"
    )
    print(
        f"{'device':<6} {'task':<7} {'images':>6} {'forward img/s':>14} {'eval img/s':>11} {'eval/forward':>13}  notes"
    )
    for d in devices:
        dev = torch.device(d)
        for t in args.tasks.split(","):
            r = bench(t, root, args, dev)
            print(
                f"{d:<6} {r['task']:<7} {r['images']:>6} {r['forward']:>14.2f} {r['full']:>11.2f} "
                f"{r['full'] / r['forward']:>13.2f}  {r['extra']}"
            )
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
