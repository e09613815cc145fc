"""A pre-training run's report: learning curves of the feature-matching recall, and a short summary.

Written into the run folder by the loop (rank 0):

* ``curves.png``: recall@r against the step on the held-out pairs (``val/``) and on a fixed sample of
  training pairs (``train/``), both without augmentation. Memorisation shows as the two curves parting:
  the training pairs keep improving while the held-out ones stall or fall.
* ``report.md``: the run's summary (steps, time, loss) and a table of both curves.
"""

from __future__ import annotations

from pathlib import Path

from pri3d.engine.io import atomic_write_text
from pri3d.engine.logging import read_jsonl

__all__ = ["recall_curves", "write_curves", "write_report"]


def recall_curves(metrics_path, radius: float = 4.0) -> dict[str, tuple[list[int], list[float]]]:
    """``{"val": (steps, recalls), "train": (steps, recalls)}`` of recall@``radius`` px from a run's
    ``metrics.jsonl`` (only the splits that were logged; the last value of a step wins)."""
    key = f"recall@{radius:g}px"
    out: dict[str, dict[int, float]] = {}
    p = Path(metrics_path)
    if not p.is_file():
        return {}
    for rec in read_jsonl(p):
        for split in ("val", "train"):
            v = rec.get(f"{split}/{key}")
            if v is not None:
                out.setdefault(split, {})[int(rec["step"])] = float(v)
    return {s: (sorted(d), [d[k] for k in sorted(d)]) for s, d in out.items()}


def write_curves(run_dir, radius: float = 4.0) -> Path | None:
    """Plot the learning curves to ``run_dir/curves.png``; None when nothing was evaluated yet."""
    from pri3d.viz import plot_curves

    run_dir = Path(run_dir)
    curves = recall_curves(run_dir / "metrics.jsonl", radius)
    if not curves:
        return None
    names = {"val": "held-out pairs", "train": "training pairs (fixed sample)"}
    series = {names[s]: (x, y, None) for s, (x, y) in curves.items()}
    return plot_curves(
        run_dir / "curves.png",
        series,
        xlabel="step",
        ylabel=f"recall@{radius:g}px",
        title="feature-matching recall (no augmentation)",
    )


def _cut_short(summary: dict) -> str:
    """The loud note of a run that the wall-clock guard (``train.max_minutes``) stopped early."""
    if not summary.get("stopped_early"):
        return ""
    planned = summary.get("steps_planned")
    of = f" of {planned} planned steps" if planned else ""
    return f" (**cut short** by the wall-clock guard train.max_minutes{of})"


def write_report(run_dir, summary: dict, radius: float = 4.0) -> Path:
    """``run_dir/report.md``: summary and the curves' values."""
    run_dir = Path(run_dir)
    curves = recall_curves(run_dir / "metrics.jsonl", radius)
    lines = [
        f"# Pre-training run: mode {summary.get('mode')}",
        "",
        f"- steps {summary.get('start_step', 0)} -> {summary.get('steps')}"
        f"{_cut_short(summary)}, "
        f"{summary.get('seconds', 0.0):.0f} s, final loss {summary.get('final_loss', float('nan')):.4f}",
        f"- weights: `{run_dir / 'backbone.pth'}`",
        "",
    ]
    if curves:
        steps = sorted({s for x, _ in curves.values() for s in x})
        val = dict(zip(*curves["val"])) if "val" in curves else {}
        tr = dict(zip(*curves["train"])) if "train" in curves else {}
        lines += [
            f"## Feature-matching recall@{radius:g}px",
            "",
            "![learning curves](curves.png)",
            "",
            "| step | held-out pairs | training pairs | gap |",
            "|---|---|---|---|",
        ]

        def fmt(v):
            return "-" if v is None else f"{v:.3f}"

        for s in steps:
            a, b = val.get(s), tr.get(s)
            gap = None if a is None or b is None else b - a
            lines.append(f"| {s} | {fmt(a)} | {fmt(b)} | {'-' if gap is None else f'{gap:+.3f}'} |")
        lines += [
            "",
            "Both are measured without augmentation. A growing gap (training pairs improving while the "
            "held-out ones stall or fall) means the network memorises its training views.",
        ]
    path = run_dir / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
