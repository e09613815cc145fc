"""``pri3d pretrain --config PRESET [--data DIR] [--out DIR] [--resume | --overwrite] [key=value ...]``."""

from __future__ import annotations

from pri3d.config import preset_names


def add_arguments(p) -> None:
    p.add_argument(
        "--config",
        default="paper",
        help=f"preset name ({', '.join(preset_names('pretrain'))}) or a YAML file (default: paper)",
    )
    p.add_argument("--data", help="prepared directory written by 'pri3d prepare' (alias of data.path=...)")
    p.add_argument("--out", help="run directory (alias of out=...)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest loadable checkpoint in OUT/checkpoints at its exact step",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace what OUT holds (a finished run, checkpoints, or files of something else); "
        "without it such a folder is refused",
    )
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides, e.g. mode=view model.arch=resnet18 train.steps=1000 optim.lr=0.05",
    )


def run(args) -> int:
    import yaml

    from pri3d.config import resolve, to_dict
    from pri3d.pretrain.config import PretrainConfig
    from pri3d.pretrain.loop import train

    values = {k: v for k, v in (("data.path", args.data), ("out", args.out)) if v}
    cfg = resolve(PretrainConfig, args.config, args.overrides, values=values)
    if args.print_config:
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
        return 0
    train(cfg, resume=args.resume, overwrite=args.overwrite)
    return 0
