"""Downstream transfer: semantic segmentation and Mask R-CNN detection / instance segmentation.

``run_finetune(cfg) -> results`` and ``evaluate_finetuned(path) -> results`` are the entry points
for code that does not go through the CLI (see :mod:`pri3d.downstream.loop` and
:mod:`pri3d.downstream.evaluate`)."""

from __future__ import annotations

__all__ = ["run_finetune", "evaluate_finetuned", "FinetuneConfig", "finetune_config"]


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


def finetune_config(preset: str, overrides: list[str] | None = None, **data):
    """``FinetuneConfig`` from a preset name/path and ``key=value`` overrides; ``data`` keywords set
    ``cfg.data`` fields (e.g. ``path=...``)."""
    from pri3d.config import apply_overrides, build, load_preset
    from pri3d.downstream.config import FinetuneConfig

    d = apply_overrides(load_preset(preset, "finetune"), overrides or [])
    d.setdefault("data", {}).update(data)
    return build(FinetuneConfig, d)
