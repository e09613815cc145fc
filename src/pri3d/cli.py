"""The ``pri3d`` command line: one entry point, thin subcommands.

Each subcommand lives in ``pri3d.commands.<module>`` with ``add_arguments(parser)`` and
``run(args) -> int``; it parses arguments and calls the library. Modules are imported only when their
subcommand runs, so ``pri3d --help`` and 2D-only commands never import the 3D engine.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pri3d import __version__
from pri3d.errors import Pri3dError

# name -> (module, one-line help). Order is the order shown by --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("pri3d.commands.info", "print what an RGB-D dataset holds (scenes, frames, cameras, depth, poses)"),
    "synth": ("pri3d.commands.synth", "generate the embedded synthetic indoor RGB-D dataset"),
    "prepare": ("pri3d.commands.prepare", "mine overlapping frame pairs and voxel geometry for pre-training"),
    "pretrain": ("pri3d.commands.pretrain", "pre-train a 2D backbone with Pri3D (view / geo / view+geo) or a baseline"),
    "eval-matching": (
        "pri3d.commands.eval_matching",
        "matching recall by viewpoint change and relative-pose AUC (prepared pairs or a ScanNet pair list)",
    ),
    "probe": (
        "pri3d.commands.probe",
        "frozen-feature probes of a backbone: linear semseg, depth and surface normals",
    ),
    "export": ("pri3d.commands.export", "export a checkpoint to torchvision, timm or detectron2 weights"),
    "finetune": ("pri3d.commands.finetune", "fine-tune semantic segmentation or Mask R-CNN detection"),
    "evaluate": ("pri3d.commands.evaluate", "evaluate a fine-tuned checkpoint"),
    "demo": ("pri3d.commands.demo", "run the whole pipeline on the embedded data and write a report"),
    "experiment": ("pri3d.commands.experiment", "run the paper's protocol (methods x fractions x seeds)"),
}


def _top_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pri3d",
        description="Pri3D: pre-train 2D image backbones with 3D priors from RGB-D scans.",
        epilog="Run 'pri3d COMMAND --help' for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"pri3d {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, (_, help_) in COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    return p


def os_error_line(e: OSError) -> str:
    """``PATH: cause`` for an :class:`OSError` (``PermissionError``, ``ENOSPC``, ``IsADirectoryError``, ...)."""
    cause = e.strerror or one_line(e) or type(e).__name__
    if e.filename is None:
        return f"{cause} ({type(e).__name__})"
    return f"{e.filename}: {cause}" + (f" (-> {e.filename2})" if e.filename2 is not None else "")


def one_line(e: BaseException) -> str:
    """The message of ``e`` on one line. An error raised in a DataLoader worker arrives as "Caught X in
    DataLoader worker process N. Original Traceback ... X: message": keep its last line's message."""
    text = str(e)
    if "Original Traceback" in text:
        last = text.strip().splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last and last.split(": ", 1)[0].endswith("Error") else last
    return text


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    top = _top_parser()
    if not argv or argv[0] not in COMMANDS:
        top.parse_args(argv or ["--help"])  # prints help / errors on unknown commands
        return 2
    name = argv[0]
    module_name, help_ = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name == module_name:
            print(f"pri3d {name}: not available in this version yet", file=sys.stderr)
            return 2
        raise
    parser = argparse.ArgumentParser(prog=f"pri3d {name}", description=help_)
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except Pri3dError as e:  # every error pri3d raises on purpose; anything else is a bug (traceback)
        print(f"pri3d {name}: error: {one_line(e)}", file=sys.stderr)
        return 1
    except OSError as e:  # the machine's answer (permissions, a full disk, a path of the wrong type)
        print(f"pri3d {name}: error: {os_error_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"pri3d {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
