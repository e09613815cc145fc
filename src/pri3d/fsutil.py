"""Crash-safe file writing: everything that could be left half-written goes through :func:`atomic_open`."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_open"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path, mode: str = "wb"):
    """Open a temp file beside ``path``; on clean exit fsync it and rename it over ``path``.

    A crash or exception leaves ``path`` untouched (the old file, or nothing) and no temp file. The
    result gets the usual permissions (0666 minus the umask), not mkstemp's 0600.
    """
    if mode not in ("wb", "w"):
        raise ValueError("atomic_open supports modes 'wb' and 'w'")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
