"""Downstream transfer: semantic segmentation and Mask R-CNN detection / instance segmentation.

``run_finetune(cfg) -> results`` and ``evaluate_checkpoint(path) -> results`` are the entry points
for code that does not go through the CLI (see :mod:`pri3d.downstream.loop`)."""

from __future__ import annotations

__all__ = ["run_finetune", "evaluate_checkpoint", "FinetuneConfig", "finetune_config"]


def __getattr__(name):
    if name in ("run_finetune", "evaluate_checkpoint"):
        from pri3d.downstream import loop

        return getattr(loop, name)
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
