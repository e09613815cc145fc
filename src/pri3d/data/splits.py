"""Split files: which scenes, and optionally which frames of each scene, belong to a split.

A split file lists one scene per line, like ScanNet's ``scannetv2_train.txt``. A line may add frame
ranges after the scene id, so that one long capture can be split by time::

    # scene id                     frames (inclusive ranges of source frame ids; optional)
    scene0000_00
    7scenes-redkitchen  0-58,162-248
    7scenes-redkitchen  120-158

Blank lines and ``#`` comments are ignored. A scene listed without ranges keeps all its frames; a
scene listed twice keeps the union of its lines (a line without ranges wins).

:func:`resolve_split` is the one rule by which every phase turns a split name or path into a split
(pre-training: :func:`pri3d.pretrain.data.split_pairs`; fine-tuning:
:func:`pri3d.downstream.datasets.open_split`).

:func:`holdout_split` makes a train / validation pair of splits from a held-out time range of each
sequence, leaving a gap: training frames that overlap a held-out frame by at least a threshold
(near-duplicates) are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pri3d.errors import DataError

__all__ = [
    "Split",
    "parse_ranges",
    "format_ranges",
    "read_split",
    "write_split",
    "SPLIT_ALIASES",
    "split_names",
    "find_split_file",
    "resolve_split",
    "holdout_split",
]

Ranges = tuple[tuple[int, int], ...]


def parse_ranges(text: str, where: str = "") -> Ranges:
    """``"0-58,100,162-248"`` -> ``((0, 58), (100, 100), (162, 248))`` (inclusive, sorted)."""
    out = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise DataError(f"{where}bad frame range {part!r} (expected e.g. 0-58,100,162-248)") from None
        if a < 0 or b < a:
            raise DataError(f"{where}bad frame range {part!r} (need 0 <= start <= end)")
        out.append((a, b))
    if not out:
        raise DataError(f"{where}empty frame range {text!r}")
    return tuple(sorted(out))


def format_ranges(frames: Iterable[int], all_frames: Iterable[int] | None = None) -> str:
    """Compress frame ids into ranges. With ``all_frames`` (the scene's kept frames, sorted), a range
    runs over consecutive entries of ``all_frames`` that are all selected, e.g. every 2nd frame
    ``0, 2, 4`` -> ``"0-4"``."""
    sel = sorted({int(f) for f in frames})
    if not sel:
        return ""
    order = sorted({int(f) for f in all_frames}) if all_frames is not None else None
    if order is None:
        order = list(range(sel[0], sel[-1] + 1))
    chosen = set(sel)
    parts, start, prev = [], None, None
    for f in order:
        if f in chosen:
            if start is None:
                start = f
            prev = f
        elif start is not None:
            parts.append(f"{start}-{prev}" if prev != start else f"{start}")
            start = None
    if start is not None:
        parts.append(f"{start}-{prev}" if prev != start else f"{start}")
    return ",".join(parts)


@dataclass(frozen=True)
class Split:
    """Scenes of a split, each with its frame ranges (``None`` = every frame)."""

    scenes: dict[str, Ranges | None] = field(default_factory=dict)
    source: str = ""

    def scene_ids(self) -> list[str]:
        return list(self.scenes)

    def has_scene(self, scene: str) -> bool:
        return scene in self.scenes

    def contains(self, scene: str, frame: int) -> bool:
        """Whether ``frame`` of ``scene`` is in the split."""
        if scene not in self.scenes:
            return False
        ranges = self.scenes[scene]
        return ranges is None or any(lo <= int(frame) <= hi for lo, hi in ranges)

    @property
    def has_frame_ranges(self) -> bool:
        return any(r is not None for r in self.scenes.values())

    def __len__(self) -> int:
        return len(self.scenes)


def read_split(path) -> Split:
    """Read a split file (see the module docstring). :class:`DataError` naming the file and line when
    it is missing, malformed or empty."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: split file not found")
    scenes: dict[str, Ranges | None] = {}
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 1)
        sid = parts[0]
        ranges = parse_ranges(parts[1], f"{path}:{n}: ") if len(parts) > 1 else None
        if sid in scenes:
            old = scenes[sid]
            ranges = None if old is None or ranges is None else tuple(sorted(old + ranges))
        scenes[sid] = ranges
    if not scenes:
        raise DataError(f"{path}: split file lists no scene ids")
    return Split(scenes, str(path))


# A split name also finds the files of these names, tried in order: some datasets call their evaluation
# split "test" (NYUv2's official split is train/test).
SPLIT_ALIASES = {"val": ("val", "test")}


def split_names(name: str) -> tuple[str, ...]:
    """The names a split name is looked up under: ``"val"`` -> ``("val", "test")``, else ``(name,)``."""
    return SPLIT_ALIASES.get(name, (name,))


def find_split_file(name: str, roots) -> Path | None:
    """The split file of split ``name``: for each of :func:`split_names` in turn, the first of ``roots``
    that has ``<root>/splits/<name>.txt`` (pri3d synth, pri3d prepare --holdout) or
    ``<root>/scannetv2_<name>.txt`` (ScanNet), that one first. None when no root has one."""
    for n in split_names(name):
        for root in roots:
            root = Path(root)
            for cand in (root / "splits" / f"{n}.txt", root / f"scannetv2_{n}.txt"):
                if cand.is_file():
                    return cand
    return None


def resolve_split(spec: str | None, roots, *, missing_ok: bool = False) -> Split | None:
    """The split ``spec`` names, for every phase (pre-training pairs and fine-tuning scenes alike).

    The rule:

    * ``None``, ``""`` or ``"all"``: no split (``None``: everything).
    * A path (it has a suffix or a directory part, or is an existing file): that split file, e.g.
      ``scannetv2_train.txt`` or ``/data/splits/train.txt``.
    * Otherwise a split name (``"train"``, ``"val"``): its file under ``roots``, in order, found by
      :func:`find_split_file`: ``splits/<name>.txt`` then ``scannetv2_<name>.txt``, so ScanNet's
      ``scannetv2_train.txt`` / ``scannetv2_val.txt`` are honoured; ``"val"`` falls back to the
      ``test`` files (:data:`SPLIT_ALIASES`). A name that no root has is a :class:`DataError` naming
      where it was looked for, never "everything"; ``missing_ok`` (for a caller's default name, whose
      absence it handles and reports) returns ``None`` instead.

    Frame ranges in the file (``scene 0-98,180-248``) are kept in the returned :class:`Split`; a phase
    that selects whole scenes uses :meth:`Split.scene_ids`.
    """
    if not spec or spec == "all":
        return None
    p = Path(spec)
    if p.suffix or p.is_file() or len(p.parts) > 1:
        return read_split(p)
    f = find_split_file(spec, roots)
    if f is not None:
        return read_split(f)
    if missing_ok:
        return None
    looked = ", ".join(f"{Path(r) / 'splits' / (n + '.txt')}" for n in split_names(spec) for r in roots)
    raise DataError(f"split {spec!r} not found (looked for {looked} and scannetv2_{spec}.txt there)")


def write_split(path, split: Split, header: str = "", all_frames: dict[str, list[int]] | None = None) -> Path:
    """Write ``split`` as a split file (atomically). ``header`` becomes ``#`` comment lines."""
    from pri3d.engine.io import atomic_write_text

    lines = [f"# {h}" for h in header.splitlines()] if header else []
    for sid, ranges in split.scenes.items():
        if ranges is None:
            lines.append(sid)
        else:
            lines.append(f"{sid} {','.join(f'{a}-{b}' if a != b else str(a) for a, b in ranges)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def holdout_split(frames: dict[str, list[int]], pairs, holdout: Ranges, max_overlap: float):
    """Train / validation splits from a held-out frame range of every scene, with an overlap gap.

    Args:
        frames: scene id -> its kept frame ids.
        pairs: mined pairs (``scene, frame_a, frame_b, overlap``) of those scenes.
        holdout: frame ranges held out for validation (the same ranges in every scene).
        max_overlap: a frame outside ``holdout`` that overlaps some held-out frame by ``>= max_overlap``
            is a near-duplicate of it and is dropped from training (the gap).

    Returns:
        ``(train, val, stats)``: two :class:`Split` with frame ranges, and per-scene counts
        ``{scene: {"val_count", "train_count", "gap" (frames dropped as near-duplicates),
        "max_overlap" (the largest training-validation overlap left; 0 when below the mining threshold)}}``.
    """
    hold = Split({s: holdout for s in frames})
    val_f: dict[str, set[int]] = {s: {f for f in fs if hold.contains(s, f)} for s, fs in frames.items()}
    near: dict[str, set[int]] = {s: set() for s in frames}
    largest: dict[str, float] = {s: 0.0 for s in frames}
    for p in pairs:
        if p.scene not in frames:
            continue
        a_val, b_val = p.frame_a in val_f[p.scene], p.frame_b in val_f[p.scene]
        if a_val == b_val:
            continue
        other = p.frame_b if a_val else p.frame_a
        if p.overlap >= max_overlap:
            near[p.scene].add(other)
    for p in pairs:  # the largest train-val overlap that survives the gap (reported)
        if p.scene not in frames:
            continue
        fa, fb, vs, ns = p.frame_a, p.frame_b, val_f[p.scene], near[p.scene]
        if (fa in vs) != (fb in vs):
            other = fb if fa in vs else fa
            if other not in ns:
                largest[p.scene] = max(largest[p.scene], float(p.overlap))
    train, val, stats = {}, {}, {}
    for s, fs in frames.items():
        tr = [f for f in fs if f not in val_f[s] and f not in near[s]]
        if val_f[s]:
            val[s] = parse_ranges(format_ranges(val_f[s], fs))
        if tr:
            train[s] = parse_ranges(format_ranges(tr, fs))
        stats[s] = {
            "val_count": len(val_f[s]),
            "train_count": len(tr),
            "gap": len(near[s]),
            "max_overlap": round(largest[s], 4),
        }
    return Split(train, "holdout:train"), Split(val, "holdout:val"), stats
