"""The experiment's tables: summary, paired deltas, epochs, pre-training."""

from __future__ import annotations

import pytest

from pri3d.experiment import ExperimentConfig
from pri3d.experiment.report import epoch_table, markdown_table, paired_deltas, paired_table, pretrain_table, summarize


def test_summary_and_table():
    cfg = ExperimentConfig(methods=["scratch", "view"], fractions=[0.2], seeds=[0, 1])

    def cell(m, s, v):
        return {
            "method": m,
            "fraction": 0.2,
            "seed": s,
            "results": {
                "metric": "miou",
                "final": {"value": v, "scores": {"miou": v, "pixel_acc": 2 * v}},
                "best": {"value": v + 0.1},
            },
        }

    cells = [cell("scratch", 0, 0.10), cell("scratch", 1, 0.20), cell("view", 0, 0.30), cell("view", 1, 0.40)]
    s = summarize(cells, cfg)
    assert s["scratch"][0.2]["mean"] == pytest.approx(0.15)
    assert s["scratch"][0.2]["std"] == pytest.approx(0.0707107, rel=1e-5)  # sample std over seeds
    table = markdown_table(s, cfg)
    assert "| Scratch | 15.0 ± 7.1 |" in table
    assert "| Pri3D (view) | 35.0 ± 7.1 (+20.0) |" in table
    assert summarize(cells, cfg, "best")["view"][0.2]["mean"] == pytest.approx(0.45)
    assert summarize(cells, cfg, metric="pixel_acc")["view"][0.2]["mean"] == pytest.approx(0.70)


def test_pretrain_table_reports_recall_at_init_and_after():
    view = {
        "steps": 400,
        "final_loss": 3.9,
        "stopped_early": False,
        "recall_init": {"recall@4px": 0.357},
        "recall": {"recall@4px": 0.434},
    }
    res = {
        "view": {"seconds": 90.0, "summary": view},
        "geo": {
            "seconds": 30.0,
            "summary": {"steps": 120, "steps_planned": 400, "final_loss": 8.5, "stopped_early": True},
        },
    }
    lines = pretrain_table(res).splitlines()
    assert lines[2] == "| view | 400 | 1.5 min | 3.900 | 0.357 | 0.434 |"
    assert lines[3] == "| geo | 120 of 400 (**cut short**) | 0.5 min | 8.500 | - | - |"
    assert lines[-1].startswith("**Cut short: geo.**")  # said below the table too, naming the cell
    del res["geo"]
    assert "Cut short" not in pretrain_table(res)


def test_paired_deltas_per_seed():
    cfg = ExperimentConfig(methods=["scratch", "view"], fractions=[0.2], seeds=[0, 1, 2])

    def cell(m, s, v):
        return {"method": m, "fraction": 0.2, "seed": s, "results": {"metric": "miou", "final": {"value": v}}}

    cells = [
        cell("scratch", 0, 0.10),
        cell("scratch", 1, 0.30),
        cell("scratch", 2, 0.20),
        cell("view", 0, 0.15),
        cell("view", 1, 0.28),
        cell("view", 2, 0.30),
    ]
    d = paired_deltas(cells, cfg)["view"][0.2]
    assert d["deltas"] == pytest.approx([0.05, -0.02, 0.10]) and d["wins"] == 2
    assert d["mean"] == pytest.approx(0.13 / 3)
    assert "| Pri3D (view) | 20% | +5.0, -2.0, +10.0 | +4.3 ± 6.0 | 2/3 |" in paired_table(
        paired_deltas(cells, cfg), cfg
    )


def test_epoch_table_means_each_evaluation_over_seeds():
    cfg = ExperimentConfig(methods=["scratch", "view"], fractions=[0.2, 1.0], seeds=[0, 1])

    def cell(m, s, f, vals):
        hist = [{"epoch": 10 * (i + 1), "value": v} for i, v in enumerate(vals)]
        return {"method": m, "fraction": f, "seed": s, "results": {"metric": "miou", "history": hist}}

    cells = [
        cell("scratch", 0, 0.2, [0.1, 0.2]),
        cell("scratch", 1, 0.2, [0.3, 0.4]),
        cell("view", 0, 0.2, [0.5, 0.6]),
        cell("view", 1, 0.2, [0.5, None]),
        cell("view", 0, 1.0, [0.9, 0.9]),
    ]  # another fraction: not in the table
    lines = epoch_table(cells, cfg).splitlines()
    assert lines[0] == "| Method | ep 10 | ep 20 |"
    assert lines[2] == "| Scratch | 20.0 | 30.0 |"
    assert lines[3] == "| Pri3D (view) | 50.0 | 60.0 |"
    assert epoch_table([], cfg) == ""
