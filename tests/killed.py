"""Run a ``pri3d`` command in a child process that kills itself with SIGKILL right after a chosen event
(a checkpoint of a given step written, an experiment cell finished): the same death as ``kill -9``, at
a point that does not depend on how fast the machine is or how loaded it is (no polling, no deadline)."""

from __future__ import annotations

import signal
import subprocess
import sys

_CHILD = """
import os, signal, sys
{patch}
from pri3d.cli import main
sys.exit(main(sys.argv[1:]))
"""

# after CheckpointManager.save(state, step) has written ckpt_<step>.pt (atomic rename included)
AFTER_CHECKPOINT = """
from pri3d.engine.checkpoint import CheckpointManager
_save = CheckpointManager.save
def _save_then_die(self, state, step):
    path = _save(self, state, step)
    if step == {arg}:
        os.kill(os.getpid(), signal.SIGKILL)
    return path
CheckpointManager.save = _save_then_die
"""

# after an experiment cell of kind {arg!r} ("pretrain", "finetune", ...) has written its done.json
AFTER_CELL = """
from pri3d.experiment.cells import Cell
_finish = Cell.finish
def _finish_then_die(self, result):
    out = _finish(self, result)
    if self.dir.parent.name == {arg!r}:
        os.kill(os.getpid(), signal.SIGKILL)
    return out
Cell.finish = _finish_then_die
"""


def run_killed(args: list[str], patch: str, arg, env=None) -> subprocess.CompletedProcess:
    """``pri3d ARGS`` in a child that dies by SIGKILL right after the event ``patch`` (``AFTER_CHECKPOINT``
    with the step, or ``AFTER_CELL`` with the cell kind). Asserts that it did die that way."""
    code = _CHILD.format(patch=patch.format(arg=arg))
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    assert r.returncode == -signal.SIGKILL, f"expected a SIGKILL death, got {r.returncode}: {r.stderr[-2000:]}"
    return r
