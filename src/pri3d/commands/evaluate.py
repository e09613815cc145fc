"""``pri3d evaluate``: evaluate a fine-tuned checkpoint (semantic segmentation or detection)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="a pri3d-finetune checkpoint, or a run folder (uses best.pt)")
    p.add_argument("--data", default=None, help="dataset folder (default: the one it was trained on)")
    p.add_argument("--format", default=None, help="dataset reader (default: autodetect)")
    p.add_argument("--split", default="val", help="val | train | a split file (one scene id per line)")
    p.add_argument("--max-images", type=int, default=None, help="evaluate at most this many images (evenly spaced)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument(
        "--out", default=None, help="JSON file for the scores (default: eval-<split>.json beside the checkpoint)"
    )
    p.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    from pri3d.downstream.evaluate import evaluate_finetuned, load_finetuned, make_task
    from pri3d.engine.io import write_json

    res = evaluate_finetuned(
        args.checkpoint,
        data=args.data,
        format=args.format,
        split=args.split,
        max_images=args.max_images,
        batch_size=args.batch_size,
        device=args.device,
        progress=not args.no_progress,
    )
    ck = Path(args.checkpoint)
    out = Path(args.out) if args.out else (ck if ck.is_dir() else ck.parent) / f"eval-{Path(args.split).stem}.json"
    write_json(out, res)
    _, cfg = load_finetuned(args.checkpoint)
    task = make_task(cfg)
    print(task.format_scores(res["scores"]))
    print(
        f"pri3d evaluate: {res['task']} on {res['split']} ({res['images']} images, {res['seconds']:.1f} s, "
        f"{res['images'] / max(res['seconds'], 1e-9):.1f} images/s): {task.headline(res['scores'])}; scores in {out}"
    )
    return 0
