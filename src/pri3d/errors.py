"""pri3d's errors: one base, one subclass per kind of failure.

Every error pri3d raises on purpose subclasses :class:`Pri3dError`. Its message is meant for the
user: it names the file, key or step and what is wrong. ``pri3d.cli.main`` catches ``Pri3dError``
once, prints ``pri3d COMMAND: error: MESSAGE`` and exits 1; anything else is a bug and keeps its
traceback. Each subclass also derives from the builtin it replaced (``ValueError`` /
``RuntimeError``), so callers that caught those still work.

This module imports nothing, so any layer may raise these.
"""

from __future__ import annotations


class Pri3dError(Exception):
    """Base of every error pri3d raises on purpose."""


class ConfigError(Pri3dError, ValueError):
    """A bad setting: unknown key, wrong type, invalid value, missing or invalid config file."""


class DataError(Pri3dError, ValueError):
    """Bad input data. The message names the file and the problem."""


class ExportError(DataError):
    """A checkpoint that cannot be exported, or a bad export request."""


class InitError(Pri3dError, RuntimeError):
    """Backbone initialisation failed (unknown init, weights unavailable offline, mismatched keys)."""


class CheckpointError(Pri3dError, RuntimeError):
    """A checkpoint that cannot be read, or that does not fit the run resuming from it."""


class TrainingError(Pri3dError, RuntimeError):
    """Training cannot continue (e.g. a non-finite loss); the message names the step."""
