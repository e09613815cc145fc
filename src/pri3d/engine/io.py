"""Crash-safe file writing: every file pri3d could leave half-written goes through :func:`atomic_open`.

One module for all atomic writers (text, JSON, ``.npz``, ``torch.save``), so a crash or a kill leaves
either the old file or the new one, never a truncated one. numpy and torch are imported only by the
writers that need them, so the data layer can use this module cheaply.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text", "write_json", "atomic_savez", "atomic_save"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path, mode: str = "wb"):
    """Open a temp file beside ``path``; on clean exit fsync it and rename it over ``path``.

    A crash or exception leaves ``path`` untouched (the old file, or nothing) and no temp file. The
    result gets the usual permissions (0666 minus the umask), not mkstemp's 0600. An ``OSError`` that
    names no file (a full disk while writing) or the temp file is raised again naming ``path``.
    """
    if mode not in ("wb", "w"):
        raise ValueError("atomic_open supports modes 'wb' and 'w'")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:  # name the file asked for, not the temp file beside it
        raise OSError(e.errno, e.strerror or str(e), str(path)) from e
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename in (None, tmp):  # a failed write (ENOSPC, EIO): name the file
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
        raise


def atomic_write_bytes(path, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _json_default(o):
    """numpy scalars and arrays as JSON numbers and lists; anything else (paths, ...) as its str."""
    if hasattr(o, "tolist") and type(o).__module__ == "numpy":
        return o.tolist()
    return str(o)


def write_json(path, obj, *, sort_keys: bool = False) -> None:
    """``obj`` as indented JSON (numpy values converted), written atomically, with a final newline."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=sort_keys, default=_json_default) + "\n")


def atomic_savez(path, **arrays) -> None:
    """``np.savez`` (uncompressed) written atomically."""
    import numpy as np

    with atomic_open(path, "wb") as f:
        np.savez(f, **arrays)


def atomic_save(obj, path) -> None:
    """``torch.save`` to a temp file in the same folder, fsync, then rename over ``path``."""
    import torch

    with atomic_open(path, "wb") as f:
        torch.save(obj, f)
