"""The prepared folder as a whole, for ``pri3d prepare`` (:mod:`pri3d.pairs.mine` does the scenes): claiming
``OUT`` (``params.json``: a new run, a resumed one, or another run's folder refused), the text of the
``pairs.csv`` files, and rebuilding ``OUT/pairs.csv``, ``OUT/splits/`` and the summary from the per-scene
files. The layout is described in :mod:`pri3d.pairs.store` (the reader).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pri3d.data.scene import SkipCounter
from pri3d.engine.io import atomic_write_text
from pri3d.errors import DataError
from pri3d.pairs.store import PAIRS_HEADER, Pair, read_pairs_csv

__all__ = ["claim_output", "pairs_csv", "rebuild_outputs", "write_holdout_splits", "summary_message"]


def claim_output(out: Path, record: dict, overwrite: bool) -> None:
    """Make ``out`` the output of the run described by ``record`` (``OUT/params.json``): a new or empty
    directory, or one holding a run with the same parameters (resumed). Another run's directory is
    refused unless ``overwrite`` (its results are then removed); so is a non-empty directory that is
    no prepare output."""
    pfile = out / "params.json"
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a directory")
    if pfile.is_file():
        try:
            old = json.loads(pfile.read_text())
        except json.JSONDecodeError:
            old = None
        if old != record:
            if not overwrite:
                diff = sorted(k for k in set(record) | set(old or {}) if (old or {}).get(k) != record.get(k))
                raise DataError(
                    f"{out}: holds a prepare run with other parameters (differing: {', '.join(diff)}); "
                    "use another --output or pass --overwrite to replace it"
                )
            for sub in ("scenes", "geometry"):
                shutil.rmtree(out / sub, ignore_errors=True)
            for f in ("pairs.csv", "summary.json"):
                (out / f).unlink(missing_ok=True)
    elif out.is_dir() and any(out.iterdir()) and not overwrite:
        raise DataError(f"{out}: not empty and not a prepare output; choose an empty --output or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(pfile, json.dumps(record, indent=1))


def pairs_csv(pairs: list[Pair]) -> str:
    """The text of a ``pairs.csv`` (header, then one row per pair; overlap to 4 decimals)."""
    lines = [",".join(PAIRS_HEADER)]
    lines += [f"{p.scene},{p.frame_a},{p.frame_b},{p.overlap:.4f}" for p in pairs]
    return "\n".join(lines) + "\n"


def rebuild_outputs(out: Path, scene_ids: list[str], holdout: str = "", holdout_threshold: float = 0.0) -> dict:
    """Rebuild ``OUT/pairs.csv`` (and, with a held-out range ``holdout``, ``OUT/splits/``: see
    :func:`write_holdout_splits`) from the per-scene files and return the summary counts."""
    pairs: list[Pair] = []
    skips = SkipCounter()
    frames = tested = kept = skipped_scenes = 0
    per_scene = {}
    holdouts = {}
    for sid in sorted(scene_ids):
        f = out / "scenes" / sid / "frames.json"
        if not f.is_file():
            continue
        info = json.loads(f.read_text())
        sk = info.get("skips", {})
        for reason, n in sk.get("counts", {}).items():
            skips.counts[reason] = skips.counts.get(reason, 0) + n
            ex = skips.examples.setdefault(reason, [])
            ex.extend(sk.get("examples", {}).get(reason, [])[: max(0, skips.max_examples - len(ex))])
        if info.get("status") == "skipped":
            skipped_scenes += 1
            per_scene[sid] = {"status": "skipped", "reason": info.get("reason", "")}
            continue
        frames += len(info["frame_ids"])
        tested += int(info.get("pairs_tested", 0))
        scene_pairs = read_pairs_csv(out / "scenes" / sid / "pairs.csv")
        kept += len(scene_pairs)
        pairs.extend(scene_pairs)
        per_scene[sid] = {
            "frames": len(info["frame_ids"]),
            "pairs_tested": int(info.get("pairs_tested", 0)),
            "pairs_kept": len(scene_pairs),
        }
        if info.get("holdout"):
            holdouts[sid] = info["holdout"]
    atomic_write_text(out / "pairs.csv", pairs_csv(pairs))
    extra = {}
    if holdout:
        extra["holdout"] = write_holdout_splits(out, holdouts, holdout, holdout_threshold)
    return extra | {
        "scenes": len(per_scene),
        "scenes_skipped": skipped_scenes,
        "frames": frames,
        "pairs_tested": tested,
        "pairs_kept": kept,
        "skipped_frames": skips.to_dict(),
        "per_scene": per_scene,
    }


def write_holdout_splits(out: Path, infos: dict[str, dict], holdout: str, threshold: float) -> dict:
    """``OUT/splits/{train,val}.txt`` from the scenes' held-out splits (frames ``holdout`` held out,
    training frames overlapping one by ``>= threshold`` dropped); returns summary counts."""
    from pri3d.data.splits import Split, write_split

    train = {s: tuple(tuple(r) for r in h["train"]) for s, h in infos.items() if h["train"]}
    val = {s: tuple(tuple(r) for r in h["val"]) for s, h in infos.items() if h["val"]}
    th = threshold
    note = (
        f"written by pri3d prepare: frames {holdout} held out for validation; training drops "
        f"frames overlapping a held-out frame by >= {th:g}"
    )
    write_split(out / "splits" / "train.txt", Split(train), note)
    write_split(out / "splits" / "val.txt", Split(val), note)
    return {
        "holdout": holdout,
        "holdout_overlap": th,
        "train_frames": sum(h["train_count"] for h in infos.values()),
        "val_frames": sum(h["val_count"] for h in infos.values()),
        "gap_frames": sum(h["gap"] for h in infos.values()),
        "max_train_val_overlap": max((h["max_overlap"] for h in infos.values()), default=0.0),
    }


def summary_message(summary: dict, min_overlap: float, out: Path) -> str:
    """The one-line report of a run (printed by the command, stored in ``summary.json``)."""
    done_before = summary["scenes_done_before"]
    msg = (
        f"prepared {summary['scenes']} scenes ({summary['scenes_skipped']} skipped, {done_before} already done): "
        f"{summary['frames']} frames, {summary['pairs_kept']}/{summary['pairs_tested']} pairs kept "
        f"(overlap >= {min_overlap}), {summary['skipped_frames']['total']} frames skipped "
        f"in {summary['seconds']:.1f}s -> {out}"
    )
    if "holdout" in summary:
        h = summary["holdout"]
        msg += (
            f"; held out frames {h['holdout']}: {h['val_frames']} validation, {h['train_frames']} training frames, "
            f"{h['gap_frames']} dropped as near-duplicates (overlap >= {h['holdout_overlap']:g}) -> "
            f"{out / 'splits'}/{{train,val}}.txt"
        )
    return msg
