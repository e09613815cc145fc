"""``pri3d synth``: generate the embedded synthetic indoor RGB-D dataset."""

from __future__ import annotations

import argparse

PROMISE = (
    "Reproducible on any machine: the same --seed and settings give the same scenes on any x86-64 or ARM "
    "machine (room types, object classes, instance ids, placements, material choices) and, in every frame, "
    "the same label and instance id per pixel and the same depth. Values computed through exp, log, pow, "
    "sin or cos may differ in their last bits between CPUs (numpy has CPU-specific kernels for them): poses, "
    "boxes and mesh coordinates agree to about 1e-15 relative, and colour within 1/255 on a few pixels per "
    "frame, so the JPEGs are byte-identical only on the same kind of CPU. On one machine the output is "
    "byte-identical whatever --workers is."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = PROMISE
    parser.add_argument(
        "--out", required=True, help="dataset folder to write (created; finished scenes there are kept)"
    )
    parser.add_argument("--scenes", type=int, required=True, help="number of scenes (rooms)")
    parser.add_argument("--frames-per-scene", type=int, required=True, help="frames per scene")
    parser.add_argument(
        "--seed", type=int, default=0, help="dataset seed (default 0): the same seed gives the same scenes (see below)"
    )
    parser.add_argument("--resolution", default="240x320", help="HEIGHTxWIDTH of colour and depth (default 240x320)")
    parser.add_argument("--workers", type=int, default=1, help="processes to render with (default 1)")
    parser.add_argument(
        "--materials",
        choices=["shared", "class"],
        default="shared",
        help="object colours/textures: one palette shared by every class (default), or class-typical "
        "(the generator before 1.1; the class is then readable from colour)",
    )
    parser.add_argument("--preview", action="store_true", help="also write DIR/preview.png (colour | depth | labels)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from pri3d.data.synth import generate

    summary = generate(
        args.out,
        scenes=args.scenes,
        frames_per_scene=args.frames_per_scene,
        seed=args.seed,
        resolution=args.resolution,
        workers=args.workers,
        materials=args.materials,
        preview=args.preview,
        progress=not args.no_progress,
    )
    print(summary["message"])
    if summary["preview"]:
        print(f"preview: {summary['preview']}")
    return 0
