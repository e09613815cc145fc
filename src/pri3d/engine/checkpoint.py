"""Checkpoints: atomic writes, keep-last-k, exact resume.

A checkpoint is a ``torch.save`` dict. By convention it holds ``model``, ``optimizer``, ``scheduler``
(optional), ``step``, ``rng`` (see :func:`capture_rng`) and ``config`` (the resolved config dict),
plus anything the caller adds. Files are ``<dir>/ckpt_<step:08d>.pt``; ``<dir>/latest`` is not used:
the newest *loadable* file wins, so a truncated newest checkpoint falls back to the previous one with
a warning instead of losing the run.
"""

from __future__ import annotations

import random
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from pri3d.config import flatten
from pri3d.engine.io import atomic_save
from pri3d.errors import CheckpointError

__all__ = [
    "config_changes",
    "load_checkpoint",
    "CheckpointManager",
    "capture_rng",
    "restore_rng",
]

_NAME = re.compile(r"^ckpt_(\d{8})\.pt$")


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load a checkpoint; a truncated or corrupt file raises :class:`CheckpointError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # truncated zip, bad pickle, ...
        raise CheckpointError(f"{path}: unreadable or truncated checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: not a pri3d checkpoint (got {type(obj).__name__})")
    return obj


class CheckpointManager:
    """Writes ``ckpt_<step>.pt`` files into ``directory`` and keeps the newest ``keep``."""

    def __init__(self, directory, keep: int = 3):
        self.dir = Path(directory)
        self.keep = max(1, int(keep))

    def paths(self) -> list[Path]:
        if not self.dir.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.dir.iterdir() if (m := _NAME.match(p.name))]
        return [p for _, p in sorted(found)]

    def save(self, state: dict, step: int) -> Path:
        path = self.dir / f"ckpt_{step:08d}.pt"
        atomic_save(state, path)
        for old in self.paths()[: -self.keep]:
            old.unlink(missing_ok=True)
        return path

    def latest(self, map_location="cpu") -> tuple[dict, Path] | None:
        """The newest loadable checkpoint, skipping (with a warning) unreadable newer ones."""
        for p in reversed(self.paths()):
            try:
                return load_checkpoint(p, map_location), p
            except CheckpointError as e:
                warnings.warn(f"skipping {e}; trying the previous checkpoint", stacklevel=2)
        return None


def capture_rng() -> dict:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def config_changes(old: dict, new: dict, ignore=()) -> list[str]:
    """Dotted keys whose values differ between a checkpoint's config dict and the resuming run's,
    except those in ``ignore`` (settings free to change on resume). Sorted."""
    a, b = flatten(old), flatten(new)
    return sorted(k for k in set(a) | set(b) if k not in ignore and a.get(k) != b.get(k))
