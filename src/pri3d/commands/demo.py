"""``pri3d demo [--out DIR] [key=value ...]``: the whole pipeline on the embedded data, with a report."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("--out", default="pri3d-demo", help="output folder (default: ./pri3d-demo)")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="overrides of the demo's experiment config (pri3d/presets/experiment/demo.yaml)",
    )


def run(args) -> int:
    from pri3d.demo import run_demo

    report = run_demo(args.out, args.overrides)
    print(f"pri3d demo: done. Open {report}")
    return 0
