"""``pri3d info PATH``: print what an RGB-D dataset holds (see :mod:`pri3d.data.info`)."""

from __future__ import annotations

import json
from pathlib import Path

from pri3d.data.formats import supported_formats


def add_arguments(p) -> None:
    p.add_argument("path", help="dataset root, scene/sequence folder, .sens file or NYUv2 .mat")
    p.add_argument("--format", choices=supported_formats(), help="dataset format (default: autodetect)")
    p.add_argument(
        "--split-file",
        help="keep only the scenes listed in this file (one scene id per line); for NYUv2 a splits.mat "
        "(trainNdxs/testNdxs) instead, giving scenes nyuv2_train and nyuv2_test",
    )
    p.add_argument(
        "--max-frames", type=int, default=100, help="load at most this many frames for image and depth statistics"
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="a frame or pose that cannot be read (corrupt, truncated, wrong size for the intrinsics, "
        "8-bit depth) is an error instead of a counted skip",
    )
    p.add_argument("--json", action="store_true", help="print machine-readable JSON instead of text")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def run(args) -> int:
    from pri3d.data.info import dataset_info, format_info, summary_line

    if args.max_frames < 1:
        from pri3d.errors import DataError

        raise DataError(f"--max-frames must be >= 1, got {args.max_frames}")
    split, reader_kwargs = args.split_file, {}
    if split is not None and Path(split).suffix == ".mat":  # NYUv2's splits.mat: a frame split
        split, reader_kwargs = None, {"split_file": args.split_file}
    info = dataset_info(
        args.path,
        format=args.format,
        split=split,
        max_frames=args.max_frames,
        reader_kwargs=reader_kwargs,
        progress=not args.no_progress,
        strict=args.strict,
    )
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(format_info(info))
        print(summary_line(info))
    return 0
