"""Downstream transfer: semantic segmentation and Mask R-CNN detection / instance segmentation.

``run_finetune(cfg) -> results`` and ``evaluate_finetuned(path) -> results`` are the entry points
for code that does not go through the CLI (see :mod:`pri3d.downstream.loop` and
:mod:`pri3d.downstream.evaluate`); a config comes from the one builder,
``pri3d.config.resolve(FinetuneConfig, preset, overrides, values={"data.path": ...})``."""

from __future__ import annotations

__all__ = ["run_finetune", "evaluate_finetuned", "FinetuneConfig"]


def __getattr__(name):
    if name == "run_finetune":
        from pri3d.downstream.loop import run_finetune

        return run_finetune
    if name == "evaluate_finetuned":
        from pri3d.downstream.evaluate import evaluate_finetuned

        return evaluate_finetuned
    if name == "FinetuneConfig":
        from pri3d.downstream.config import FinetuneConfig

        return FinetuneConfig
    raise AttributeError(name)
