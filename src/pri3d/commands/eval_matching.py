"""``pri3d eval-matching --checkpoint C --data PREPARED_DIR [--pairs F] [--max-pairs N]``."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument(
        "--checkpoint",
        required=True,
        help="a pri3d pre-training checkpoint or backbone.pth; or 'scratch' / 'imagenet' for a baseline (needs --arch)",
    )
    p.add_argument("--data", required=True, help="prepared directory written by 'pri3d prepare'")
    p.add_argument(
        "--pairs",
        help="CSV of pairs to evaluate (scene,frame_a,frame_b,overlap); default: the held-out "
        "split's pairs, or every pair when the dataset has no such split",
    )
    p.add_argument("--split", default="val", help="held-out split used when --pairs is not given (default: val)")
    p.add_argument("--max-pairs", type=int, default=None, help="evaluate at most N pairs")
    p.add_argument("--points", type=int, default=1024, help="sampled pixels of view A per pair (default 1024)")
    p.add_argument(
        "--resolution",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="image size (default: the checkpoint's training resolution, else 240 320)",
    )
    p.add_argument("--arch", default=None, help="backbone for 'scratch'/'imagenet' (default resnet50)")
    p.add_argument("--feature-dim", type=int, default=None, help="feature width for 'scratch'/'imagenet'")
    p.add_argument("--depth-threshold", type=float, default=0.05, help="metres, correspondence depth test")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument(
        "--baseline",
        choices=["scratch", "imagenet"],
        default=None,
        help="also evaluate an untrained network of the same arch and feature width (seeded by --seed) at "
        "the same resolution on the same points, and print both recalls and the difference",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the sampled points (and of the --baseline network's initialisation)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args) -> int:
    import json

    from pri3d.pretrain.matching_eval import evaluate_checkpoint, format_recall

    res = evaluate_checkpoint(
        args.checkpoint,
        args.data,
        pairs_csv=args.pairs,
        split=args.split,
        max_pairs=args.max_pairs,
        points=args.points,
        resolution=args.resolution,
        arch=args.arch,
        feature_dim=args.feature_dim,
        depth_threshold=args.depth_threshold,
        device=args.device,
        seed=args.seed,
        progress=True,
        baseline=args.baseline,
    )
    if args.json:
        print(json.dumps(res, indent=2))
    elif "baseline" in res:
        b = res["baseline"]
        print(
            f"eval-matching: {res['checkpoint']} vs {b['checkpoint']} on {res['data']}: {res['pairs_source']}, "
            f"{res['resolution'][0]}x{res['resolution'][1]}"
        )
        print(f"  {'':<11s} {'checkpoint':>10s} {'baseline':>10s} {'difference':>10s}")
        for k in ("recall@1px", "recall@2px", "recall@4px", "recall@8px", "median_px"):
            print(f"  {k:<11s} {res[k]:10.4f} {b[k]:10.4f} {res['delta'][k]:+10.4f}")
        print(
            f"eval-matching: recall@4px {res['recall@4px']:.4f} vs {b['recall@4px']:.4f} untrained "
            f"({res['delta']['recall@4px']:+.4f}), {res['points']} points, {res['pairs']} pairs"
        )
    else:
        print(
            f"eval-matching: {res['checkpoint']} on {res['data']}: {res['pairs_source']}, "
            f"{res['resolution'][0]}x{res['resolution'][1]}"
        )
        for k in ("recall@1px", "recall@2px", "recall@4px", "recall@8px"):
            print(f"  {k:<11s} {res[k]:.4f}")
        print(f"eval-matching: {format_recall(res)}, median error {res['median_px']:.2f} px at feature resolution")
    return 0
