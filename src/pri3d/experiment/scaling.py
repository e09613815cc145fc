"""The scaling series: does the gain of a Pri3D mode over Stage I alone grow with pre-training compute?

Each method of ``scaling.methods`` is pre-trained again from the same Stage-I weights for every step count
of ``scaling.steps`` (one ordinary pre-training cell each; the config's own step count is the table's
cell, reused, because its overrides are left as they are), then read out by the frozen-feature probe on
the validation scenes with the same labelled frames and probe seeds as the table. The gain is paired by
probe seed against Stage I alone's probe cell (the same cell as the table's row). Only probe seeds whose
pre-training seed is in ``scaling.pretrain_seeds`` are used (default: the first pre-training seed).

Returns the block that :func:`pri3d.experiment.report.write_results` puts into ``results.json``, ``table.md``
(:func:`~pri3d.experiment.report.scaling_markdown`) and ``scaling.png`` (the paired gain over Stage I per step
count, mean and std over the probe seeds; the random init's paired delta as a reference line).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pri3d.experiment.cells import build_pretrain_config, pretrain_cell, probe_cell, weights_ref
from pri3d.experiment.config import ExperimentConfig, pretrain_seed
from pri3d.experiment.pool import run_cells

__all__ = ["run_scaling", "scaling_config"]


def scaling_config(cfg: ExperimentConfig, method: str, steps: int) -> ExperimentConfig:
    """``cfg`` with ``method`` pre-trained for ``steps`` steps: ``train.steps=N`` appended to the method's
    own overrides, except at the config's own step count (so that cell is the table's, unchanged)."""
    if build_pretrain_config(cfg, method).train.steps == steps:
        return cfg
    per = dict(cfg.pretrain.per_method)
    per[method] = [*per.get(method, []), f"train.steps={steps}"]
    return dataclasses.replace(cfg, pretrain=dataclasses.replace(cfg.pretrain, per_method=per))


def run_scaling(
    cfg: ExperimentConfig,
    out: Path,
    prepared: tuple[Path, str],
    inits: dict,
    probes_val: list[dict],
    ft_data: tuple,
    log=print,
) -> dict:
    """Run (or resume) the series' pre-training and probe cells; returns ``{"steps", "rows", "reference"}``
    (``rows``: one per method, step count and probe seed with its probe mIoU and paired gain over Stage I;
    ``reference``: Stage I's and the random init's probe values per seed, from ``probes_val``, the
    table's probe cells)."""
    sc, st = cfg.scaling, cfg.pretrain.stage1
    pseeds = sc.pretrain_seeds or cfg.pretrain.seeds[:1]
    fraction = cfg.fractions[0]
    seeds = [sd for sd in cfg.seeds if pretrain_seed(cfg, sd) in pseeds]
    grid = [(m, n, p) for m in sc.methods for n in sorted(sc.steps) for p in pseeds]
    calls = [((scaling_config(cfg, m, n), out, m, *prepared), {"init": inits[(st, p)], "seed": p}) for m, n, p in grid]
    log(f"[scaling] {len(grid)} pre-training cells: {sc.methods} x steps {sorted(sc.steps)} x seeds {pseeds}")
    trained = dict(zip(grid, run_cells(cfg.jobs, pretrain_cell, calls, log)))
    pgrid = [(m, n, sd) for m in sc.methods for n in sorted(sc.steps) for sd in seeds]
    pcalls = [
        (
            (
                scaling_config(cfg, m, n),
                out,
                m,
                *weights_ref(trained[(m, n, pretrain_seed(cfg, sd))]["backbone"]),
                *ft_data,
                fraction,
                sd,
            ),
            {},
        )
        for m, n, sd in pgrid
    ]
    log(f"[scaling] {len(pgrid)} probe cells on val ({cfg.jobs} at a time)")
    probed = run_cells(cfg.jobs, probe_cell, pcalls, log)
    ref = {
        (c["method"], c["seed"]): c["results"]["final"]["value"]
        for c in probes_val
        if c["fraction"] == fraction and c["method"] in (st, "scratch")
    }
    rows = []
    for (m, n, sd), r in zip(pgrid, probed):
        v = r["results"]["final"]["value"]
        t = trained[(m, n, pretrain_seed(cfg, sd))]
        rows.append(
            {
                "method": m,
                "steps": n,
                "seed": sd,
                "pretrain_seed": pretrain_seed(cfg, sd),
                "miou": v,
                "gain_vs_stage1": v - ref[(st, sd)],
                "pretrain_seconds": t.get("seconds"),
                "pretrain_dir": t["dir"],
            }
        )
    reference = {
        "stage1": {str(sd): ref[(st, sd)] for sd in seeds},
        "scratch": {str(sd): ref[("scratch", sd)] for sd in seeds if ("scratch", sd) in ref},
    }
    return {
        "steps": sorted(sc.steps),
        "methods": list(sc.methods),
        "seeds": seeds,
        "rows": rows,
        "reference": reference,
    }
