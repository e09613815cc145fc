"""``pri3d probe {semseg,depth,normals} --checkpoint C --fit DATA --test DATA [--json] [--out DIR]``."""

from __future__ import annotations

from pri3d.commands._shared import add_network_arguments


def add_arguments(p) -> None:
    p.add_argument("task", choices=["semseg", "depth", "normals"], help="what the linear head reads out")
    p.add_argument(
        "--checkpoint",
        required=True,
        help="a pri3d pre-training checkpoint, an exported backbone.pth or a fine-tuning checkpoint; or "
        "'scratch' / 'imagenet' for an untrained network (then --arch, --feature-dim, --seed)",
    )
    p.add_argument(
        "--fit",
        required=True,
        help="dataset the head is fitted on (any format 'pri3d info' reads, or a prepared folder)",
    )
    p.add_argument("--test", required=True, help="dataset the head is scored on (same kinds as --fit)")
    p.add_argument(
        "--fit-split", default=None, help="split of --fit: a name (train, val) or a split file (default: all frames)"
    )
    p.add_argument("--test-split", default=None, help="split of --test: a name or a split file (default: all frames)")
    p.add_argument(
        "--max-frames", type=int, default=None, help="at most N frames of each of fit and test, evenly spaced"
    )
    p.add_argument("--pixels-per-frame", type=int, default=512, help="fit pixels drawn per fit frame (default 512)")
    add_network_arguments(p, resolution="input size", feature_dim="decoder output width")
    p.add_argument("--seed", type=int, default=0, help="seed of the fit pixels (and of a 'scratch' network)")
    p.add_argument("--label-set", default="scannet20", help="semseg classes: scannet20 (default), nyu40, nyu13")
    p.add_argument("--normal-step", type=int, default=2, help="normals: neighbour distance, depth pixels (default 2)")
    p.add_argument(
        "--normal-smooth", type=int, default=3, help="normals: radius of the averaging window, depth pixels (default 3)"
    )
    p.add_argument(
        "--normal-max-jump",
        type=float,
        default=0.1,
        help="normals: relative depth jump that marks an edge (default 0.1)",
    )
    p.add_argument("--device", default="cpu", help="cpu (default) | cuda | auto")
    p.add_argument("--out", default=None, help="folder for probe.json and a picture (<task>.png)")
    p.add_argument("--force", action="store_true", help="overwrite an existing OUT/probe.json")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")


def run(args) -> int:
    import json
    import sys

    from pri3d.probe.run import format_probe, run_probe

    report = run_probe(
        args.task,
        args.checkpoint,
        args.fit,
        args.test,
        arch=args.arch,
        feature_dim=args.feature_dim,
        resolution=args.resolution,
        seed=args.seed,
        fit_split=args.fit_split,
        test_split=args.test_split,
        max_frames=args.max_frames,
        pixels_per_frame=args.pixels_per_frame,
        label_set=args.label_set,
        normal_step=args.normal_step,
        normal_smooth=args.normal_smooth,
        normal_max_jump=args.normal_max_jump,
        device=args.device,
        out=args.out,
        force=args.force,
        progress=sys.stderr.isatty(),
    )
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_probe(report))
        if args.out:
            print(f"probe: wrote {args.out}/probe.json and {report['picture']}")
    return 0
