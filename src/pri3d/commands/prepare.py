"""``pri3d prepare``: mine overlapping frame pairs and voxel geometry for pre-training.

Thin wrapper over :func:`pri3d.pairs.mine.prepare`; see that module for the method and
:mod:`pri3d.pairs.store` for the output layout.
"""

from __future__ import annotations

import argparse

from pri3d.data.formats import supported_formats


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    p.description = (
        "Mine overlapping frame pairs (overlap = matched points of both frames / all their points, "
        "a point matching when the other frame has a point within --radius) and voxelize each scene's "
        "surface. Writes OUT/pairs.csv, OUT/summary.json, OUT/params.json, OUT/scenes/<scene>/ and "
        "OUT/geometry/<scene>.npz; a re-run skips finished scenes. Keep ScanNet val/test scenes out of "
        "pre-training with --split-file scannetv2_train.txt."
    )
    p.add_argument("--input", required=True, help="dataset root, or one scene folder")
    p.add_argument("--format", choices=supported_formats(), default=None, help="dataset format (autodetected)")
    p.add_argument("--output", required=True, help="output directory")
    p.add_argument("--frame-skip", type=int, default=1, help="take every N-th frame (ScanNet: 25 on full sequences)")
    p.add_argument("--min-overlap", type=float, default=0.30, help="keep pairs with at least this overlap")
    p.add_argument("--radius", type=float, default=0.02, help="matching radius in metres (paper: 2 cm)")
    p.add_argument(
        "--mode",
        choices=["paper", "official"],
        default="paper",
        help="'official': the official code's 5 cm voxels, 7.5 cm radius and max-of-both-directions "
        "overlap (ignores --radius)",
    )
    p.add_argument(
        "--split-file",
        default=None,
        help="file listing the scene ids to prepare (one per line, optionally followed by frame ranges "
        "such as 0-98,180-248)",
    )
    p.add_argument(
        "--holdout",
        default="",
        metavar="RANGES",
        help="frame ranges (e.g. 120-158) of every sequence held out for validation; writes "
        "OUT/splits/{train,val}.txt, which pretrain uses by default",
    )
    p.add_argument(
        "--holdout-overlap",
        type=float,
        default=0.0,
        help="with --holdout: training drops frames overlapping a held-out frame by at least this "
        "(the gap); 0 = --min-overlap, i.e. no kept pair links training and held-out frames",
    )
    p.add_argument("--workers", type=int, default=1, help="scenes processed in parallel")
    p.add_argument("--overwrite", action="store_true", help="replace an output made with other parameters")
    p.add_argument("--strict", action="store_true", help="a frame the reader refuses is an error, not a skip")
    g = p.add_argument_group("speed/accuracy (defaults are faithful to the exact definition)")
    g.add_argument(
        "--query-stride",
        type=int,
        default=0,
        help="pixel stride of the query points; 0 = auto (about 3000 per frame, 10 at 640x480)",
    )
    g.add_argument(
        "--no-exact",
        dest="exact",
        action="store_false",
        help="search only a small window around each reprojection (faster; overlaps biased low)",
    )
    g.add_argument("--window", type=int, default=1, help="with --no-exact: half-size of that window (pixels)")
    g = p.add_argument_group("geometry")
    g.add_argument("--voxel-size", type=float, default=0.02, help="voxel edge in metres")
    g.add_argument(
        "--surface",
        choices=["auto", "mesh", "fuse"],
        default="auto",
        help="auto: the scene's mesh/point cloud when present, else fused depth",
    )
    g.add_argument("--fuse-stride", type=int, default=4, help="pixel stride of depth fusion")
    g.add_argument("--fuse-min-views", type=int, default=1, help="keep fused voxels seen by at least this many frames")
    g.add_argument(
        "--crop-far",
        type=float,
        default=0.0,
        help="cap (metres) on the far side of each frame's crop box; 0 = its max valid depth",
    )
    g.add_argument("--no-geometry", dest="geometry", action="store_false", help="mine pairs only")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from pri3d.pairs.mine import PrepareParams, prepare

    params = PrepareParams(
        frame_skip=args.frame_skip,
        min_overlap=args.min_overlap,
        radius=args.radius,
        mode=args.mode,
        query_stride=args.query_stride,
        window=args.window,
        exact=args.exact,
        voxel_size=args.voxel_size,
        surface=args.surface,
        fuse_stride=args.fuse_stride,
        fuse_min_views=args.fuse_min_views,
        crop_far=args.crop_far,
        geometry=args.geometry,
        holdout=args.holdout,
        holdout_overlap=args.holdout_overlap,
    )
    if args.workers < 1:
        from pri3d.errors import ConfigError

        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    summary = prepare(
        args.input,
        args.output,
        format=args.format,
        params=params,
        split_file=args.split_file,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        strict=args.strict,
    )
    skipped = summary["skipped_frames"]
    if skipped["total"]:
        print("skipped frames: " + ", ".join(f"{n} {r}" for r, n in sorted(skipped["counts"].items())))
    print(summary["message"])
    return 0
