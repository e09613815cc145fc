"""The run folder: what a training run may do with its ``--out`` folder, for both loops.

Before a run writes anything, :func:`check_run_dir` classifies the folder from what it holds:

* ``new``: absent, empty, or what a run left when it died before its first checkpoint (a config and a
  log, no weights);
* ``resumable``: ``checkpoints/ckpt_*.pt`` of a run that did not finish;
* ``finished``: the ``done`` marker, or an end product (``backbone.pth``, ``best.pt``, ``results.json``,
  ``report.md``) left by a run of a version that wrote no marker;
* ``foreign``: anything that is not one of the run's own outputs (a dataset, a prepared folder, another
  kind of run); dot-files are ignored.

A fresh start into a finished or foreign folder, or into one with checkpoints, is refused with one
line unless ``overwrite`` is given; ``overwrite`` then removes the run's own outputs (never the foreign
files). ``--resume`` needs a readable checkpoint (the loops check that) and the same data as the run
(:func:`check_resume_data`). Completion is marked last: the loops write their end products atomically,
then :func:`mark_done`; every start (:func:`start_run`, after all checks) removes the marker first, so
a run that dies never leaves a folder that looks finished. Readers of a run's end products call
:func:`require_finished`.

Both loops go through :func:`open_run` and :class:`RunDir`, in this order: ``open_run`` (refuse or
resume: the folder check, and on ``--resume`` the newest loadable checkpoint, its format and kind
(pre-training mode, fine-tuning task) and its data checked) before anything is built; then the loop
builds data, model and optimizer and restores the checkpoint's state, reporting the config keys that
changed (:meth:`RunDir.config_changes`, less the keys free to change on resume: :data:`RESUME_FREE` and
the loop's own); then :meth:`RunDir.start` (:func:`start_run`, ``config.yaml``, the metric logger).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from pri3d.config import saved_as_current, to_dict
from pri3d.engine.checkpoint import CheckpointManager, config_changes
from pri3d.engine.io import atomic_write_text
from pri3d.engine.logging import MetricLogger
from pri3d.errors import CheckpointError, ConfigError

__all__ = [
    "DONE",
    "END_PRODUCTS",
    "classify",
    "check_run_dir",
    "start_run",
    "prepare_run_dir",
    "mark_done",
    "is_finished",
    "require_finished",
    "check_resume_data",
    "RESUME_FREE",
    "RunDir",
    "open_run",
]

DONE = "done"
# What a finished run leaves (pretrain: backbone.pth, report.md; finetune: best.pt, results.json).
END_PRODUCTS = ("backbone.pth", "report.md", "best.pt", "results.json")
# Everything either loop writes into its folder besides the end products.
_WORKING = ("config.yaml", "metrics.jsonl", "checkpoints", "tb", "curves.png")


def _checkpoints(out: Path) -> list[str]:
    d = out / "checkpoints"
    return sorted(p.name for p in d.iterdir() if p.name.startswith("ckpt_")) if d.is_dir() else []


def classify(out, outputs=END_PRODUCTS + _WORKING) -> tuple[str, str]:
    """``(state, detail)`` of the folder ``out``: state is ``new``, ``resumable``, ``finished`` or
    ``foreign`` (see the module docstring); ``detail`` names what decided it."""
    out = Path(out)
    if not out.exists():
        return "new", "absent"
    if not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder; choose another --out")
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    foreign = [n for n in names if n not in outputs and n != DONE]
    if foreign:
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        return "foreign", f"holds files that are not a run's outputs ({', '.join(foreign[:3])}{more})"
    if DONE in names:
        return "finished", "holds a finished run (its 'done' marker)"
    ckpts = _checkpoints(out)
    if ckpts:
        return "resumable", f"holds checkpoints of an unfinished run (newest {ckpts[-1]})"
    ends = [n for n in END_PRODUCTS if n in names]
    if ends:
        return "finished", f"holds the results of an earlier run ({', '.join(ends)})"
    return "new", "no results" if names else "empty"


def check_run_dir(out, *, resume: bool, overwrite: bool = False, outputs=END_PRODUCTS + _WORKING) -> str:
    """Decide whether a run may write into ``out``; returns its state and changes nothing.

    Refuses (:class:`ConfigError`, one line) a fresh start into a finished, foreign or resumable folder,
    and ``--resume`` in a foreign one, unless ``overwrite``."""
    out = Path(out)
    state, detail = classify(out, outputs)
    if resume:
        if state == "foreign" and not overwrite:
            raise ConfigError(f"{out} {detail}; --resume continues only a run's own folder")
    elif state != "new" and not overwrite:
        hint = "pass --resume to continue it, " if _checkpoints(out) and state != "foreign" else ""
        what = "to write into it anyway (its files are kept)" if state == "foreign" else "to replace it"
        raise ConfigError(f"{out} {detail}; {hint}choose another --out, or pass --overwrite {what}")
    return state


def start_run(out, *, resume: bool, is_main: bool = True, outputs=END_PRODUCTS + _WORKING) -> None:
    """Make ``out`` ready, after :func:`check_run_dir` and the resume checks, before the run writes: on
    rank 0 (``is_main``) remove the ``done`` marker and, on a fresh start, the run's earlier outputs (a
    dead run's log, or what ``overwrite`` replaces), so that a run that dies leaves nothing that looks
    finished or that a later ``--resume`` would pick up."""
    out = Path(out)
    if not is_main:
        return
    (out / DONE).unlink(missing_ok=True)
    if not resume:  # a fresh start: nothing of an earlier run stays beside the new one
        _remove_outputs(out, outputs)


def prepare_run_dir(out, *, resume: bool, overwrite: bool = False, is_main: bool = True) -> str:
    """:func:`check_run_dir` then :func:`start_run` (for callers with nothing to check in between)."""
    state = check_run_dir(out, resume=resume, overwrite=overwrite)
    start_run(out, resume=resume, is_main=is_main)
    return state


def _remove_outputs(out: Path, outputs) -> None:
    for name in outputs:  # the run's own outputs only; foreign files stay
        p = out / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def mark_done(out, record: dict | None = None) -> None:
    """Write ``out/done`` (atomically), after every end product: the run is finished."""
    from pri3d.engine.io import write_json

    write_json(Path(out) / DONE, record or {}, sort_keys=True)


def is_finished(out) -> bool:
    return (Path(out) / DONE).is_file()


def _is_run_dir(d: Path) -> bool:
    return (d / "config.yaml").is_file() and ((d / "metrics.jsonl").exists() or (d / "checkpoints").is_dir())


def require_finished(path) -> None:
    """Refuse an end product (``backbone.pth``, ``best.pt``, ...) of a run folder whose run has not
    finished: it may be an earlier run's, beside a newer run that died. Other files pass."""
    path = Path(path)
    d = path if path.is_dir() else path.parent
    if (path.is_dir() or path.name in END_PRODUCTS) and _is_run_dir(d) and not is_finished(d):
        what = "results" if path.is_dir() else path.name
        raise CheckpointError(
            f"{path}: the run in {d} has not finished (no '{DONE}' marker), so its {what} "
            f"may be an earlier run's or incomplete; finish it with --resume, or use a file from {d / 'checkpoints'}"
        )


def check_resume_data(saved_config: dict | None, data_path, where) -> None:
    """Refuse ``--resume`` with other data than the run's (``saved_config['data']['path']``, from its
    checkpoint). A saved folder that no longer exists (moved data) is accepted."""
    saved = ((saved_config or {}).get("data") or {}).get("path")
    if not saved or not data_path:
        return
    if os.path.realpath(str(saved)) != os.path.realpath(str(data_path)) and Path(saved).exists():
        raise ConfigError(
            f"{where}: the run was trained on {saved}, not {data_path}; resume it with --data {saved}, "
            "or start a new run (another --out)"
        )


# Config keys that may change on resume in both phases: they change where the run reads and writes, or
# how often it logs and checkpoints, never the weights it computes. Each loop adds its own (among them its
# evaluation period: train.eval_every in pre-training, train.eval_every_epochs in fine-tuning).
RESUME_FREE = frozenset(
    {
        "out",
        "data.path",
        "data.workers",
        "train.log_every",
        "train.ckpt_every",
        "train.keep_checkpoints",
    }
)


@dataclass
class RunDir:
    """A run's output folder, checked by :func:`open_run`; ``state`` is the checkpoint to resume from
    (``path`` its file), None on a fresh start."""

    out: Path
    checkpoints: CheckpointManager
    resume: bool
    is_main: bool = True
    state: dict | None = None
    path: Path | None = None

    def config_changes(self, cls, cfg, free=RESUME_FREE) -> list[str]:
        """The dotted keys in which ``cfg`` differs from the config saved in the checkpoint (read under
        today's key names and defaults with ``cls``), except the keys in ``free``."""
        saved = saved_as_current(cls, (self.state or {}).get("config") or {})
        return config_changes(saved, to_dict(cfg), free)

    def resume_warning(self, cls, cfg, free=RESUME_FREE) -> str | None:
        """One line naming the changed keys (:meth:`config_changes`), or None when none changed."""
        changed = self.config_changes(cls, cfg, free)
        if not changed:
            return None
        return (
            f"warning: the config differs from the checkpoint's in {', '.join(changed)}; "
            "the resumed run will not reproduce an uninterrupted one exactly"
        )

    def start(self, cfg, *, start_step: int, tensorboard: bool = False) -> MetricLogger:
        """After every check and the restore: make the folder ready (:func:`start_run`), write
        ``config.yaml`` (the resolved ``cfg``) and open the metric logger (on resume, log lines from step
        ``start_step + 1`` on are dropped: the resumed run writes them again). Only rank 0 writes."""
        start_run(self.out, resume=self.resume, is_main=self.is_main)
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.out / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
        resume_step = start_step + 1 if self.resume else None
        return MetricLogger(self.out, enabled=self.is_main, tensorboard=tensorboard, resume_step=resume_step)


def open_run(
    out,
    *,
    resume: bool,
    overwrite: bool = False,
    keep: int,
    checkpoint_format: str,
    kind: tuple[str, str],
    data_path,
    is_main: bool = True,
) -> RunDir:
    """Refuse or resume, before the run builds or writes anything: :func:`check_run_dir`, then on
    ``resume`` the newest loadable checkpoint of ``out/checkpoints`` (none is a :class:`CheckpointError`),
    which must be of ``checkpoint_format`` and of the same ``kind`` (``(key, value)``: ``("mode", "view")``,
    ``("task", "semseg")``; another is a :class:`CheckpointError`) and trained on ``data_path``
    (:func:`check_resume_data`). ``keep``: checkpoints the run keeps."""
    out = Path(out)
    manager = CheckpointManager(out / "checkpoints", keep=keep)
    check_run_dir(out, resume=resume, overwrite=overwrite)
    run = RunDir(out, manager, resume, is_main)
    if not resume:
        return run
    found = manager.latest()
    if found is None:
        raise CheckpointError(
            f"--resume: {manager.dir} holds no readable checkpoint; start without --resume "
            "(with --overwrite if the folder holds an earlier run)"
        )
    state, path = found
    key, value = kind
    if state.get("format") != checkpoint_format or state.get(key) != value:
        raise CheckpointError(
            f"{path}: a {state.get('format')} checkpoint ({key} {state.get(key)!r}) cannot resume a "
            f"{checkpoint_format} run ({key} {value!r})"
        )
    check_resume_data(state.get("config"), data_path, path)
    run.state, run.path = state, path
    return run
