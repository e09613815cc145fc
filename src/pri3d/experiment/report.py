"""The experiment's report: tables (Table-1 shape summary, paired deltas, fine-tuning epochs,
pre-training), the data-efficiency curve (Figure-5 shape), and ``results.json`` / ``table.md`` /
``curve.png`` (:func:`write_results`).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from pri3d.config import to_dict
from pri3d.engine.io import atomic_write_text, write_json
from pri3d.experiment.cells import metric_value
from pri3d.experiment.config import PRETRAIN_METHODS, ExperimentConfig

__all__ = [
    "METHOD_LABELS",
    "method_label",
    "mean_std",
    "summarize",
    "paired_deltas",
    "paired_table",
    "markdown_table",
    "epoch_table",
    "pretrain_table",
    "floors_markdown",
    "curve_plot",
    "table_markdown",
    "write_results",
]

METHOD_LABELS = {
    "scratch": "Scratch",
    "imagenet": "ImageNet",
    "trivial": "Trivial corr.",
    "mocov2": "MoCoV2 (scans)",
    "view": "Pri3D (view)",
    "geo": "Pri3D (geo)",
    "view+geo": "Pri3D (view+geo)",
}


def mean_std(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return m, sd


def summarize(cells: list[dict], cfg: ExperimentConfig, which: str = "final", metric: str | None = None) -> dict:
    """``{method: {fraction: {"mean", "std", "n", "values"}}}`` for ``metric`` (default: the table
    metric, ``finetune.metric``; any score key of the results, e.g. ``pixel_acc``)."""
    out: dict = {}
    for c in cells:
        v = metric_value(c["results"], metric or cfg.finetune.metric, which)
        if v is None:
            continue
        out.setdefault(c["method"], {}).setdefault(c["fraction"], []).append(v)
    return {
        m: {f: dict(zip(("mean", "std"), mean_std(vs))) | {"n": len(vs), "values": vs} for f, vs in fr.items()}
        for m, fr in out.items()
    }


def method_label(cfg: ExperimentConfig, m: str) -> str:
    """A method's row label; with a Stage-I init, the Stage-I method and the methods built on it say so."""
    label = METHOD_LABELS.get(m, m)
    st = cfg.pretrain.stage1
    if st and m == st:
        return f"{label}: Stage I alone"
    if st and m in PRETRAIN_METHODS:
        return f"{label} on Stage I"
    return label


def paired_deltas(cells: list[dict], cfg: ExperimentConfig, which: str = "final", reference: str | None = None) -> dict:
    """``{method: {fraction: {"deltas": [per seed], "mean", "std", "wins"}}}``: each seed's score minus the
    reference method's score (``reference``, default ``cfg.reference``) with the same seed (the same label
    subset), the paired comparison."""
    reference = reference or cfg.reference
    by = {}
    for c in cells:
        v = metric_value(c["results"], cfg.finetune.metric, which)
        if v is not None:
            by[(c["method"], c["fraction"], c["seed"])] = v
    out: dict = {}
    for (m, f, sd), v in sorted(by.items()):
        ref = by.get((reference, f, sd))
        if m == reference or ref is None:
            continue
        out.setdefault(m, {}).setdefault(f, []).append(v - ref)
    return {
        m: {
            f: {"deltas": d, **dict(zip(("mean", "std"), mean_std(d))), "wins": sum(x > 0 for x in d)}
            for f, d in fr.items()
        }
        for m, fr in out.items()
    }


def paired_table(deltas: dict, cfg: ExperimentConfig, scale: float = 100.0, reference: str | None = None) -> str:
    """Markdown: per method and fraction, the paired deltas against the reference (per seed, mean ± std,
    how many seeds are above)."""
    lines = [
        f"| Method | fraction | paired delta vs {method_label(cfg, reference or cfg.reference)} per seed {cfg.seeds} | "
        "mean ± std | seeds above |",
        "|---|---|---|---|---|",
    ]
    for m in cfg.methods:
        for f, d in sorted(deltas.get(m, {}).items()):
            per = ", ".join(f"{x * scale:+.1f}" for x in d["deltas"])
            lines.append(
                f"| {method_label(cfg, m)} | {f * 100:g}% | {per} | {d['mean'] * scale:+.1f} ± "
                f"{d['std'] * scale:.1f} | {d['wins']}/{len(d['deltas'])} |"
            )
    return "\n".join(lines)


def markdown_table(summary: dict, cfg: ExperimentConfig, scale: float = 100.0) -> str:
    """Table-1 shape: rows = methods, columns = fractions; mean +- std over seeds and the delta of the
    mean against the reference method."""
    fracs = sorted({f for fr in summary.values() for f in fr})
    head = "| Method | " + " | ".join(f"{f * 100:g}%" for f in fracs) + " |"
    sep = "|---|" + "---|" * len(fracs)
    lines = [head, sep]
    ref = summary.get(cfg.reference, {})
    for m in cfg.methods:
        if m not in summary:
            continue
        cells = []
        for f in fracs:
            s = summary[m].get(f)
            if s is None:
                cells.append("–")
                continue
            txt = f"{s['mean'] * scale:.1f} ± {s['std'] * scale:.1f}"
            if m != cfg.reference and f in ref:
                txt += f" ({(s['mean'] - ref[f]['mean']) * scale:+.1f})"
            cells.append(txt)
        lines.append(f"| {method_label(cfg, m)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def epoch_table(cells: list[dict], cfg: ExperimentConfig, scale: float = 100.0) -> str:
    """The validation metric at every evaluation of fine-tuning (mean over seeds, lowest label
    fraction): whether every method's fine-tuning had plateaued by the final epoch."""
    f = min(cfg.fractions)
    by: dict = {}
    for c in cells:
        if c["fraction"] != f:
            continue
        for h in c["results"].get("history", []):
            if h.get("value") is not None:
                by.setdefault(c["method"], {}).setdefault(h["epoch"], []).append(h["value"])
    epochs = sorted({e for d in by.values() for e in d})
    if not epochs:
        return ""
    lines = ["| Method | " + " | ".join(f"ep {e:g}" for e in epochs) + " |", "|---|" + "---|" * len(epochs)]
    for m in cfg.methods:
        if m in by:
            vals = [by[m].get(e) for e in epochs]
            lines.append(
                f"| {method_label(cfg, m)} | "
                + " | ".join("-" if v is None else f"{scale * sum(v) / len(v):.1f}" for v in vals)
                + " |"
            )
    return "\n".join(lines)


def curve_plot(path, summary: dict, cfg: ExperimentConfig, scale: float = 100.0) -> Path:
    from pri3d.viz import plot_curves

    series = {}
    for m in cfg.methods:
        if m in summary:
            fr = sorted(summary[m])
            series[method_label(cfg, m)] = (
                [f * 100 for f in fr],
                [summary[m][f]["mean"] * scale for f in fr],
                [summary[m][f]["std"] * scale for f in fr],
            )
    return plot_curves(
        path,
        series,
        xlabel="% of training labels",
        ylabel=f"{cfg.finetune.metric} (x{scale:g})",
        title=f"{cfg.name}: data efficiency",
    )


def pretrain_table(pretrained: dict[str, dict], radius: str = "recall@4px") -> str:
    """Markdown table of pre-training runs (method -> pretrain cell result): steps, time, final loss
    and the held-out feature-matching recall of the same network at initialisation and after."""
    lines = [f"| method | steps | time | final loss | held-out {radius} at init | after |", "|---|---|---|---|---|---|"]

    def fmt(x):
        return "-" if x is None else f"{x:.3f}"

    cut = []
    rows = []  # (label, result): one row per method and pre-training seed
    for m, res in pretrained.items():
        runs = res if isinstance(res, list) else [res]
        for r in runs:
            rows.append((m if len(runs) == 1 else f"{m} (seed {r.get('seed')})", r))
    for m, res in rows:
        sm = res.get("summary", {})
        init = (sm.get("recall_init") or {}).get(radius)
        after = (sm.get("recall") or {}).get(radius)
        secs = res.get("seconds")
        steps = str(sm.get("steps"))
        if sm.get("stopped_early"):
            cut.append(m)
            planned = sm.get("steps_planned")
            steps += f"{f' of {planned}' if planned else ''} (**cut short**)"
        lines.append(
            f"| {m} | {steps} | {'-' if secs is None else f'{secs / 60:.1f} min'} | {fmt(sm.get('final_loss'))} | "
            f"{fmt(init)} | {fmt(after)} |"
        )
    if cut:
        lines += [
            "",
            f"**Cut short: {', '.join(cut)}.** The wall-clock guard (`train.max_minutes`) stopped "
            f"{'this cell' if len(cut) == 1 else 'these cells'} before the planned steps, so "
            "every row that starts from them depends on this machine's speed. Re-run with a larger guard.",
        ]
    return "\n".join(lines)


def table_markdown(cfg: ExperimentConfig, summary: dict, deltas: dict, cells: list[dict]) -> str:
    """``table.md`` without the test section: the validation table (final epoch), paired by seed,
    best-on-val, the fine-tuning epochs and the pre-training table."""
    table = markdown_table(summary["final"], cfg)
    best = markdown_table(summary["best"], cfg)
    text = (
        f"## {cfg.name}: {cfg.finetune.metric} on the validation scenes (final epoch; mean ± std over seeds "
        f"{cfg.seeds}, delta vs {cfg.reference})\n\n{table}\n\n### Paired by seed (same label subset)\n\n"
        f"{paired_table(deltas, cfg)}\n\n### Best-on-val (as the official numbers; optimistic)\n\n{best}\n"
    )
    epochs = epoch_table(cells, cfg)
    if epochs:
        text += (
            f"\n### Validation {cfg.finetune.metric} during fine-tuning ({min(cfg.fractions) * 100:g} % of the "
            f"labels, mean over seeds): plateaued?\n\n{epochs}\n"
        )
    return text


def _test_markdown(cfg: ExperimentConfig, summary: dict, deltas: dict) -> str:
    seed = cfg.data.test_synth.seed if cfg.data.test_synth.scenes else "-"
    return (
        f"\n## Test scenes (generator seed {seed}; final models, scored once)\n\n{markdown_table(summary, cfg)}\n\n"
        f"### Test, paired by seed\n\n{paired_table(deltas, cfg)}\n"
    )


def _json_dirs(dirs: dict) -> dict:
    """The cells' folders with (method, fraction, seed) keys as ``method/fraction/seed`` strings."""
    return {
        k: (
            {"/".join(map(str, kk)) if isinstance(kk, tuple) else kk: vv for kk, vv in v.items()}
            if isinstance(v, dict)
            else v
        )
        for k, v in dirs.items()
    }


def write_results(
    cfg: ExperimentConfig,
    out: Path,
    cells: list[dict],
    test_cells: list[dict],
    pretrained: dict[str, dict],
    skipped: dict,
    dirs: dict,
    t0: float,
    log=print,
    floors: dict | None = None,
    probes: dict | None = None,
    scaling: dict | None = None,
) -> dict:
    """Aggregate the cells and write ``out/results.json``, ``out/table.md`` and ``out/curve.png``; returns
    the results (``dirs``: the cells' folders; ``seconds`` since ``t0``; ``floors``: the floor cells,
    ``{"val": [...], "test": [...]}``; ``scaling``: the scaling series' block, also drawn as
    ``out/scaling.png``)."""
    summary = {w: summarize(cells, cfg, w) for w in ("final", "best")}
    deltas = paired_deltas(cells, cfg, "final")
    results = {
        "name": cfg.name,
        "config": to_dict(cfg),
        "metric": cfg.finetune.metric,
        "cells": cells,
        "summary_final": summary["final"],
        "summary_best": summary["best"],
        "paired_final": deltas,
        "skipped": skipped,
        "pretrain": {
            m: [{"seed": r.get("seed"), "seconds": r.get("seconds"), "summary": r.get("summary")} for r in runs]
            for m, runs in pretrained.items()
        },
        "seconds": time.time() - t0,
    }
    text = (
        table_markdown(cfg, summary, deltas, cells)
        if cells
        else f"## {cfg.name}\n\nNo fine-tuning cells (`finetune.enabled: false`): the probe below is the readout.\n"
    )
    if probes and probes.get("val"):
        results["probe"] = {}
        for where, pcells in probes.items():
            block, ptext = _probe_markdown(cfg, pcells, where)
            results["probe"][where] = block
            text += ptext
    if floors and floors.get("val"):
        results["floors"] = {k: [_floor_entry(e) for e in v] for k, v in floors.items()}
        text += f"\n### The floor on the same splits, and class coverage\n\n{floors_markdown(floors)}\n"
    if scaling:
        results["scaling"] = scaling
        text += scaling_markdown(cfg, scaling)
    if test_cells:
        summary["test"] = summarize(test_cells, cfg, "final")
        tdeltas = paired_deltas(test_cells, cfg, "final")
        results.update(test_cells=test_cells, summary_test=summary["test"], paired_test=tdeltas)
        text += _test_markdown(cfg, summary["test"], tdeltas)
    if pretrained:
        text += (
            f"\n### Pre-training (label-free check: feature-matching recall on held-out pairs)\n\n"
            f"{pretrain_table(pretrained)}\n"
        )
    results["dirs"] = _json_dirs(dirs)
    write_json(out / "results.json", results, sort_keys=True)
    atomic_write_text(out / "table.md", text)
    wrote = [out / "results.json", out / "table.md"]
    if scaling:
        wrote.append(scaling_plot(out / "scaling.png", cfg, scaling))
    if cells:
        wrote.append(curve_plot(out / "curve.png", summary["final"], cfg))
        log(markdown_table(summary["final"], cfg))
    log(f"[experiment] wrote {', '.join(map(str, wrote))}")
    return results


def _floor_entry(e: dict) -> dict:
    """A floor cell as kept in results.json (without the per-class score blocks)."""
    return {
        "fraction": e["fraction"],
        "seed": e["seed"],
        "majority": e["majority"]["miou"],
        "majority_class": e["majority"]["class"],
        "lookup": e["lookup"]["miou"],
        "gaps": e["gaps"],
    }


def floors_markdown(floors: dict) -> str:
    """The floor rows (majority class, position + colour lookup: mean ± std over seeds, per seed) for the
    validation scenes and, when scored, the test scenes; then the class-coverage line per seed."""
    lines = [
        "| floor (no learning) | split | fraction | mIoU (mean ± std over seeds) | per seed |",
        "|---|---|---|---|---|",
    ]
    cover = []
    for split in ("val", "test"):
        entries = floors.get(split) or []
        for f in sorted({e["fraction"] for e in entries}):
            es = sorted((e for e in entries if e["fraction"] == f), key=lambda e: e["seed"])
            for name, get in (
                (f"Majority class ({es[0]['majority']['class']})", lambda e: e["majority"]["miou"]),
                ("Position + colour lookup", lambda e: e["lookup"]["miou"]),
            ):
                vals = [100 * get(e) for e in es]
                m, sd = mean_std(vals)
                per = ", ".join(f"{v:.1f}" for v in vals)
                lines.append(f"| {name} | {split} | {f:g} | {m:.1f} ± {sd:.1f} | {per} |")
            gaps = "; ".join(f"seed {e['seed']}: {', '.join(e['gaps']) or 'none'}" for e in es)
            cover.append(f"- {split}, fraction {f:g}: {gaps}")
    lines += ["", "Classes present in the scored frames with no labelled pixel, per seed:", "", *cover]
    return "\n".join(lines)


def _probe_markdown(cfg: ExperimentConfig, pcells: list[dict], where: str) -> tuple[dict, str]:
    """The probe readout of one split: ``(results block, markdown)``: mean ± std over seeds, paired deltas
    against the reference and, with a Stage-I init, against Stage I alone."""
    summary = summarize(pcells, cfg, "final")
    deltas = paired_deltas(pcells, cfg, "final")
    block = {"cells": pcells, "summary": summary, "paired": deltas}
    split = "test" if where == "test" else "validation"
    text = (
        f"\n## Frozen-feature probe (linear semseg on frozen features) on the {split} scenes "
        f"(mean ± std over seeds {cfg.seeds}, delta vs {cfg.reference})\n\n{markdown_table(summary, cfg)}\n\n"
        f"### Probe, paired by seed\n\n{paired_table(deltas, cfg)}\n"
    )
    st = cfg.pretrain.stage1
    if st and any(c["method"] == st for c in pcells):
        vs_stage1 = paired_deltas(pcells, cfg, "final", reference=st)
        block["paired_stage1"] = vs_stage1
        text += f"\n### Probe, paired by seed against Stage I alone\n\n{paired_table(vs_stage1, cfg, reference=st)}\n"
    return block, text


# ----------------------------------------------------------------------------- the scaling series


def _series(block: dict) -> dict:
    """``{method: {steps: [gain per seed]}}`` (in points of mIoU)."""
    out: dict = {}
    for r in block["rows"]:
        out.setdefault(r["method"], {}).setdefault(r["steps"], []).append(100 * r["gain_vs_stage1"])
    return out


def scaling_markdown(cfg: ExperimentConfig, block: dict) -> str:
    """The series as a markdown section: probe mIoU and the paired gain over Stage I per step count."""
    st = method_label(cfg, cfg.pretrain.stage1)
    seeds = block["seeds"]
    ref = block["reference"]
    s1 = mean_std([100 * ref["stage1"][str(sd)] for sd in seeds])
    lines = [
        f"\n### Scaling series: gain over {st} on the probe (validation; probe seeds {seeds})\n",
        f"{st}: {s1[0]:.1f} ± {s1[1]:.1f} mIoU.",
    ]
    if ref["scratch"]:
        d = mean_std([100 * (ref["scratch"][str(sd)] - ref["stage1"][str(sd)]) for sd in seeds])
        lines[-1] += f" Random init vs {st}: {d[0]:+.1f} ± {d[1]:.1f}."
    lines += [
        "",
        "| Method | pre-training steps | probe mIoU | paired gain over Stage I per seed | mean ± std | seeds above |",
        "|---|---|---|---|---|---|",
    ]
    series = _series(block)
    for m, by_steps in series.items():
        for n, gains in sorted(by_steps.items()):
            vals = [100 * r["miou"] for r in block["rows"] if r["method"] == m and r["steps"] == n]
            v, g = mean_std(vals), mean_std(gains)
            per = ", ".join(f"{x:+.1f}" for x in gains)
            above = sum(x > 0 for x in gains)
            lines.append(
                f"| {method_label(cfg, m)} | {n} | {v[0]:.1f} ± {v[1]:.1f} | {per} | {g[0]:+.1f} ± {g[1]:.1f} | "
                f"{above}/{len(gains)} |"
            )
    return "\n".join(lines) + "\n"


def scaling_plot(path, cfg: ExperimentConfig, block: dict) -> Path:
    """``scaling.png``: the paired gain over Stage I (mean ± std over probe seeds) against the
    pre-training steps, log scale; the random init's paired delta as a dashed line."""
    from pri3d.viz import plot_curves

    series = {}
    for m, by_steps in _series(block).items():
        ns = sorted(by_steps)
        stats = [mean_std(by_steps[n]) for n in ns]
        series[method_label(cfg, m)] = (ns, [s[0] for s in stats], [s[1] for s in stats])
    ref = block["reference"]
    hlines = {f"{method_label(cfg, cfg.pretrain.stage1)} (0)": 0.0}
    if ref["scratch"]:
        d = [100 * (ref["scratch"][k] - ref["stage1"][k]) for k in ref["scratch"]]
        hlines["random init"] = sum(d) / len(d)
    return plot_curves(
        path,
        series,
        xlabel="pre-training steps (log scale)",
        ylabel="probe mIoU gain over Stage I (points)",
        title=f"{cfg.name}: gain over Stage I vs pre-training steps",
        logx=True,
        hlines=hlines,
    )
