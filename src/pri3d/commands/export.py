"""``pri3d export CKPT --to {torchvision,timm,detectron2,unet} OUT``: convert a checkpoint's backbone."""

from __future__ import annotations

import argparse

from pri3d.export import TARGETS, export_weights, usage_hint


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Convert a pri3d pre-training checkpoint (or a pri3d-unet, torchvision or MoCo ResNet file) into "
        "weights for torchvision, timm or detectron2 (encoder only), or a pri3d-unet file (encoder + "
        "decoder, for semantic segmentation)."
    )
    parser.add_argument("ckpt", metavar="CKPT", help="checkpoint or weights file to convert")
    # Validated by the library (not argparse choices) so a bad target is a clean one-line error.
    parser.add_argument("--to", required=True, metavar="{" + ",".join(TARGETS) + "}", help="output format")
    parser.add_argument("out", metavar="OUT", help="output file (detectron2: *.pkl; others: *.pth)")


def run(args: argparse.Namespace) -> int:
    result = export_weights(args.ckpt, args.to, args.out)
    print(result.summary())
    print(usage_hint(result))
    return 0
