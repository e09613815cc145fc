"""Arguments more than one subcommand takes (not a subcommand itself)."""

from __future__ import annotations


def add_network_arguments(p, *, resolution: str, feature_dim: str) -> None:
    """``--resolution``, ``--arch`` and ``--feature-dim``: the input size, and the network a ``scratch`` /
    ``imagenet`` baseline builds (``pri3d eval-matching``, ``pri3d probe``). ``resolution`` and
    ``feature_dim`` start the two help lines (each command names them its own way)."""
    p.add_argument(
        "--resolution",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help=f"{resolution} (default: the checkpoint's training resolution, else 240 320)",
    )
    p.add_argument("--arch", default=None, help="backbone for 'scratch'/'imagenet' (default resnet50)")
    p.add_argument("--feature-dim", type=int, default=None, help=f"{feature_dim} for 'scratch'/'imagenet'")
