"""``pri3d experiment --config configs/<name>.yaml [key=value ...]``: the paper's protocol."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("--config", required=True, help="experiment YAML (see configs/)")
    p.add_argument("--out", help="output folder (overrides the config's 'out')")
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="cells run in this many parallel processes (one torch thread each; overrides 'jobs')",
    )
    p.add_argument(
        "--check", action="store_true", help="only load and validate the config (paths, presets, options), run nothing"
    )
    p.add_argument(
        "--require-data",
        action="store_true",
        help="with --check: a dataset path that does not exist on this machine is an error",
    )
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. seeds=[0,1,2]")


def run(args) -> int:
    from pri3d.experiment import check_experiment, load_experiment, run_experiment

    overrides = (
        list(args.overrides)
        + ([f"out={args.out}"] if args.out else [])
        + ([f"jobs={args.jobs}"] if args.jobs is not None else [])
    )
    cfg = load_experiment(args.config, overrides)
    if args.check:
        for line in check_experiment(cfg, require_data=args.require_data):
            print(line)
        return 0
    run_experiment(cfg)
    return 0
