"""``pri3d eval-matching --checkpoint C --data PREPARED_DIR [--pairs F] [--max-pairs N]``: matching recall,
per viewpoint-change and overlap bin, and relative-pose AUC on a prepared directory; or
``pri3d eval-matching --checkpoint C --pairs FILE --images DIR``: relative-pose AUC on a pair list in the
ScanNet test-pair format of SuperGlue / LoFTR."""

from __future__ import annotations

from pri3d.commands._shared import add_network_arguments


def add_arguments(p) -> None:
    p.add_argument(
        "--checkpoint",
        required=True,
        help="a pri3d pre-training checkpoint or backbone.pth; or 'scratch' / 'imagenet' for a baseline (needs --arch)",
    )
    p.add_argument("--data", help="prepared directory written by 'pri3d prepare' (recall, bins and pose AUC)")
    p.add_argument(
        "--pairs",
        help="with --data: CSV of pairs to evaluate (scene,frame_a,frame_b,overlap; default: the held-out "
        "split's pairs, or every pair when the dataset has no such split); with --images: a pair list in "
        "the ScanNet test-pair format of SuperGlue/LoFTR (name0 name1 rot0 rot1 K0 K1 T_0to1, 38 fields "
        "a line; K for the images as stored), scored by relative-pose AUC",
    )
    p.add_argument("--images", help="folder holding the images named in a --pairs pair list (no depth needed)")
    p.add_argument("--split", default="val", help="held-out split used when --pairs is not given (default: val)")
    p.add_argument(
        "--max-pairs",
        type=int,
        default=None,
        help="evaluate at most N pairs (--data: a fixed random sample; --images: the first N)",
    )
    p.add_argument("--points", type=int, default=1024, help="sampled pixels of view A per pair (default 1024)")
    add_network_arguments(p, resolution="image size", feature_dim="feature width")
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
    p.add_argument(
        "--no-pose",
        action="store_true",
        help="with --data: skip the relative-pose estimation (recall and bins only)",
    )
    p.add_argument(
        "--grid-stride",
        type=int,
        default=2,
        help="relative pose: mutual nearest neighbours between grids of every N-th feature pixel "
        "(default 2 = every 4th input pixel)",
    )
    p.add_argument(
        "--ransac-px",
        type=float,
        default=1.0,
        help="relative pose: RANSAC threshold in input pixels at the evaluated resolution (default 1, SuperGlue's)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _fmt(v, spec: str = ".4f") -> str:
    return "-" if v is None else format(v, spec)


def _print_bins(res: dict, keys: list[str]) -> None:
    for name, title in (("by_rotation", "relative rotation (deg)"), ("by_overlap", "overlap")):
        if name not in res:
            continue
        cols = ["pairs", *(["points"] if "points" in next(iter(res[name].values())) else []), *keys]
        print(f"  by {title}:")
        print("    " + f"{'bin':<9s}" + "".join(f"{c:>15s}" for c in cols))
        for label, b in res[name].items():
            cells = [f"{b['pairs']:>15d}"] + ([f"{b['points']:>15d}"] if "points" in b else [])
            cells += [f"{_fmt(b.get(k)):>15s}" for k in keys]
            print("    " + f"{label:<9s}" + "".join(cells))


def _print_pose(res: dict) -> None:
    print(
        f"  pose AUC@5/10/20 deg {res['pose_auc@5']:.4f} / {res['pose_auc@10']:.4f} / {res['pose_auc@20']:.4f} "
        f"({res['pose_pairs']} pairs, {res['pose_failures']} failed solves, median error "
        f"{res['pose_median_err']:.2f} deg, median {res['median_matches']:.0f} mutual matches; grid stride "
        f"{res['grid_stride']}, RANSAC {res['ransac_px']:g} px)"
    )


def _with_counts(res: dict, d: dict, names) -> dict:
    """The per-bin differences with the bins' pair (and point) counts, for :func:`_print_bins`."""
    keep = ("pairs", "points")
    return {n: {lb: {k: v for k, v in res[n][lb].items() if k in keep} | dv for lb, dv in d[n].items()} for n in names}


POSE_KEYS = ["pose_auc@5", "pose_auc@10", "pose_auc@20"]
IMG_KEYS = ["recall@2px_img", "recall@4px_img", "recall@8px_img", "recall@16px_img"]


def run(args) -> int:
    _check_inputs(args)
    if args.images:
        return _run_pose_pairs(args)
    return _run_prepared(args)


def _check_inputs(args) -> None:
    """A prepared directory (``--data``) or a pair list with its images (``--pairs`` and ``--images``)."""
    from pri3d.errors import ConfigError

    if args.images and args.data:
        raise ConfigError("eval-matching: give --data (a prepared directory) or --pairs with --images, not both")
    if args.images and not args.pairs:
        raise ConfigError("eval-matching: --images needs --pairs (a pair list in the ScanNet test-pair format)")
    if not args.images and not args.data:
        raise ConfigError("eval-matching: give --data PREPARED_DIR, or --pairs FILE --images DIR")


def _shared_keywords(args) -> dict:
    """The keywords both evaluations (a pair list, a prepared directory) take from the same arguments."""
    return {
        "resolution": args.resolution,
        "arch": args.arch,
        "feature_dim": args.feature_dim,
        "device": args.device,
        "seed": args.seed,
        "max_pairs": args.max_pairs,
        "stride": args.grid_stride,
        "threshold_px": args.ransac_px,
        "progress": True,
        "baseline": args.baseline,
    }


def _run_pose_pairs(args) -> int:
    """Relative-pose AUC on a pair list in the ScanNet test-pair format (``--pairs`` + ``--images``)."""
    import json

    from pri3d.pretrain.matching_eval import evaluate_pose_pairs

    res = evaluate_pose_pairs(
        args.checkpoint,
        args.pairs,
        args.images,
        **_shared_keywords(args),
    )
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(
        f"eval-matching: {res['checkpoint']} on {res['pairs_file']} (images {res['images']}), "
        f"{res['resolution'][0]}x{res['resolution'][1]}"
    )
    _print_pose(res)
    _print_bins(res, POSE_KEYS)
    if "baseline" in res:
        b, d = res["baseline"], res["delta"]
        print(f"  baseline {b['checkpoint']}:")
        _print_pose({**b, "grid_stride": res["grid_stride"], "ransac_px": res["ransac_px"]})
        print("  difference (checkpoint - baseline): " + "  ".join(f"{k} {_fmt(d[k], '+.4f')}" for k in POSE_KEYS))
        _print_bins(_with_counts(res, d, ("by_rotation",)), POSE_KEYS)
    print(
        f"eval-matching: pose AUC@5/10/20 {res['pose_auc@5']:.4f} / {res['pose_auc@10']:.4f} / "
        f"{res['pose_auc@20']:.4f} on {res['pose_pairs']} pairs"
    )
    return 0


def _run_prepared(args) -> int:
    """Matching recall (and pose AUC unless ``--no-pose``) on the held-out pairs of a prepared directory."""
    import json

    from pri3d.pretrain.matching_eval import evaluate_matching

    res = evaluate_matching(
        args.checkpoint,
        args.data,
        pairs_csv=args.pairs,
        split=args.split,
        points=args.points,
        depth_threshold=args.depth_threshold,
        pose=not args.no_pose,
        **_shared_keywords(args),
    )
    pose = "pose_auc@5" in res
    bin_keys = ["recall@4px_img", "recall@8px_img", *(POSE_KEYS if pose else [])]
    if args.json:
        print(json.dumps(res, indent=2))
    elif "baseline" in res:
        _print_comparison(res, pose, bin_keys)
    else:
        _print_recall(res, pose, bin_keys)
    return 0


def _print_comparison(res: dict, pose: bool, bin_keys: list[str]) -> None:
    """The checkpoint's recall beside its baseline's, and their difference per bin."""
    b = res["baseline"]
    print(
        f"eval-matching: {res['checkpoint']} vs {b['checkpoint']} on {res['data']}: {res['pairs_source']}, "
        f"{res['resolution'][0]}x{res['resolution'][1]}"
    )
    rows = ["recall@1px", "recall@2px", "recall@4px", "recall@8px", "median_px", "recall@16px_img"]
    rows += POSE_KEYS if pose else []
    print(f"  {'':<15s} {'checkpoint':>10s} {'baseline':>10s} {'difference':>10s}")
    for k in rows:
        print(f"  {k:<15s} {res[k]:10.4f} {b[k]:10.4f} {_fmt(res['delta'][k], '+10.4f')}")
    print("  (recall@Npx: feature pixels; recall@Npx_img: input pixels)")
    print("  difference (checkpoint - baseline) per bin:")
    _print_bins(_with_counts(res, res["delta"], ("by_rotation", "by_overlap")), bin_keys)
    print(
        f"eval-matching: recall@4px {res['recall@4px']:.4f} vs {b['recall@4px']:.4f} untrained "
        f"({res['delta']['recall@4px']:+.4f}), {res['points']} points, {res['pairs']} pairs"
    )


def _print_recall(res: dict, pose: bool, bin_keys: list[str]) -> None:
    """One checkpoint's recall (feature and input pixels), pose AUC and bins."""
    from pri3d.pretrain.matching_eval import format_recall

    print(
        f"eval-matching: {res['checkpoint']} on {res['data']}: {res['pairs_source']}, "
        f"{res['resolution'][0]}x{res['resolution'][1]}"
    )
    for k in ("recall@1px", "recall@2px", "recall@4px", "recall@8px"):
        print(f"  {k:<11s} {res[k]:.4f}   (feature pixels)")
    for k in IMG_KEYS:
        print(f"  {k:<15s} {res[k]:.4f}   (input pixels)")
    if pose:
        _print_pose(res)
    _print_bins(res, bin_keys)
    print(f"eval-matching: {format_recall(res)}, median error {res['median_px']:.2f} px at feature resolution")
