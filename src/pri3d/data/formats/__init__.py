"""Format readers: turn on-disk RGB-D datasets into :class:`~pri3d.data.scene.Scene` lists.

Each reader module defines ``NAME``, ``DESCRIPTION``, ``detect(path) -> bool`` and
``open_scenes(path) -> list[Scene]``. :func:`open_dataset` autodetects the format (first match in
:data:`FORMAT_MODULES` order) unless one is named explicitly, and applies split filtering.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from pri3d.data.scene import Scene
from pri3d.errors import DataError

__all__ = ["FORMAT_MODULES", "supported_formats", "detect_format", "open_dataset", "read_split_file"]

# name -> module. Order matters for autodetection: the most specific layouts first.
FORMAT_MODULES: dict[str, str] = {
    "scannet-sens": "pri3d.data.formats.sens",
    "scannet": "pri3d.data.formats.scannet",
    "7scenes": "pri3d.data.formats.sevenscenes",
    "tum": "pri3d.data.formats.tum",
    "nyuv2": "pri3d.data.formats.nyuv2",
}


def _module(name: str):
    return importlib.import_module(FORMAT_MODULES[name])


def supported_formats() -> list[str]:
    return list(FORMAT_MODULES)


def detect_format(path) -> str:
    """Name of the format of ``path``; :class:`DataError` listing the supported ones otherwise."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    for name in FORMAT_MODULES:
        try:
            mod = _module(name)
        except ImportError:  # a reader still missing from this checkout
            continue
        if mod.detect(path):
            return name
    raise DataError(
        f"{path}: unknown dataset format; supported formats: {', '.join(FORMAT_MODULES)} "
        "(pass --format to choose one explicitly)"
    )


def read_split_file(path) -> list[str]:
    """Scene ids of a split file: one scene id per line (blank lines and ``#`` comments are ignored),
    like ScanNet's ``scannetv2_train.txt``; frame ranges after an id are allowed (see
    :mod:`pri3d.data.splits`) and ignored here."""
    from pri3d.data.splits import read_split

    return read_split(path).scene_ids()


def open_dataset(path, format: str | None = None, split=None, **kwargs) -> list[Scene]:
    """Open a dataset (a single scene or a folder of scenes) as a list of Scenes sorted by id.

    Args:
        path: dataset root, scene folder or file.
        format: one of :func:`supported_formats`; autodetected when None.
        split: optional split file path or iterable of scene ids; only those scenes are returned.
            Use it to keep ScanNet val/test scenes out of pre-training.
        kwargs: passed to the reader (for example ``split_file="splits.mat"`` for NYUv2's .mat).
    """
    if format is None:
        format = detect_format(path)
    elif format not in FORMAT_MODULES:
        raise DataError(f"unknown format {format!r}; supported formats: {', '.join(FORMAT_MODULES)}")
    scenes = _module(format).open_scenes(Path(path), **kwargs)
    if split is not None:
        wanted = read_split_file(split) if isinstance(split, (str, Path)) else list(split)
        wanted_set = set(wanted)
        scenes = [s for s in scenes if s.scene_id in wanted_set]
        if not scenes:
            raise DataError(f"{path}: none of the {len(wanted_set)} scenes in the split were found")
    return sorted(scenes, key=lambda s: s.scene_id)
