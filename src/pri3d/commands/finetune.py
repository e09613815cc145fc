"""``pri3d finetune {semseg,detect}``: fine-tune semantic segmentation or Mask R-CNN detection."""

from __future__ import annotations

import argparse

from pri3d.config import preset_names

GROUP = "finetune"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = (
        f"presets: {', '.join(preset_names(GROUP))}\n"
        "examples:\n"
        "  pri3d finetune semseg --config cpu-small-semseg --data synth/ --out runs/seg\n"
        "  pri3d finetune detect --config paper-detect --data scannet_frames_25k/ "
        "--init runs/pretrain/ckpt.pt data.train_split=scannetv2_train.txt data.val_split=scannetv2_val.txt\n"
        "  torchrun --nproc_per_node=8 -m pri3d.cli finetune semseg --config paper-semseg --data ..."
    )
    p.add_argument(
        "task", choices=["semseg", "detect"], help="semantic segmentation or detection/instance segmentation"
    )
    p.add_argument("--config", default=None, help="preset name or YAML file (default: paper-<task>)")
    p.add_argument("--data", required=True, help="dataset folder (ScanNet 25k layout, NYUv2, pri3d synth output)")
    p.add_argument("--format", default=None, help="dataset reader (default: autodetect)")
    p.add_argument("--init", default=None, help="scratch | imagenet | PATH to a pri3d/torchvision/MoCo checkpoint")
    p.add_argument("--fraction", type=float, default=None, help="train on this fraction of the training set, in (0, 1]")
    p.add_argument(
        "--fraction-by", choices=["scene", "image"], default=None, help="choose the subset by scene or image"
    )
    p.add_argument("--seed", type=int, default=None, help="seed for the subset, init and data order")
    p.add_argument("--out", default=None, help="output folder (default: runs/finetune-<task>)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace what --out holds (a finished run, checkpoints, or files of something else); "
        "without it such a folder is refused",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides, e.g. optim.lr=0.02 train.epochs=10"
    )
    # let key=value overrides come after options too (pri3d finetune semseg --data D train.epochs=5)
    p.parse_args = p.parse_intermixed_args


def resolve_config(args):
    """The run's config from the parsed arguments (:func:`pri3d.downstream.config.resolve_finetune_config`)."""
    from pri3d.downstream.config import resolve_finetune_config

    return resolve_finetune_config(
        args.task,
        args.config,
        args.overrides,
        data=args.data,
        format=args.format,
        fraction=args.fraction,
        fraction_by=args.fraction_by,
        init=args.init,
        seed=args.seed,
        out=args.out,
    )


def run(args) -> int:
    import os

    from pri3d.downstream.loop import run_finetune

    cfg = resolve_config(args)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks
        print(
            f"pri3d finetune {args.task}: config {args.config or 'paper-' + args.task}, data {cfg.data.path}, "
            f"init {cfg.init}, out {cfg.out}"
        )
    run_finetune(cfg, resume=args.resume, progress=not args.no_progress, overwrite=args.overwrite)
    return 0
