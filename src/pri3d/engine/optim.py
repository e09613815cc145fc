"""The optimizer and learning-rate schedule of both training phases: one config, one builder, one schedule.

Pre-training and fine-tuning share :class:`OptimConfig`; each phase only sets other defaults (see
``PretrainConfig.optim`` and ``FinetuneConfig.optim``). The schedule is a pure function of the step, so
a resumed run recomputes it instead of storing a scheduler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from pri3d.errors import ConfigError

__all__ = ["OptimConfig", "SCHEDULES", "build_optimizer", "lr_at", "set_lr"]

SCHEDULES = ("step", "poly", "cosine", "constant")


@dataclass
class OptimConfig:
    name: str = "sgd"  # sgd | adamw
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    # step: lr * gamma ** (number of milestones passed), or, without milestones, lr * gamma ** (step //
    # step_size) (the paper's pre-training: x0.99 every 1000 steps); poly: lr * (1 - step / total) **
    # poly_power; cosine: lr * 0.5 * (1 + cos(pi * step / total)); constant
    schedule: str = "poly"
    gamma: float = 0.1
    step_size: int = 1000
    milestones: list[float] = field(default_factory=list)  # step: steps (>= 1) or fractions of the run (< 1)
    poly_power: float = 0.9
    warmup_steps: int = 0  # linear warm-up from lr * warmup_factor (0 = none)
    warmup_factor: float = 0.001
    clip_grad: float = 0.0  # max gradient norm; 0 = off

    ALIASES: ClassVar[dict[str, str]] = {"power": "poly_power", "warmup_iters": "warmup_steps"}

    def validate(self) -> None:
        if self.name not in ("sgd", "adamw"):
            raise ConfigError(f"optim.name must be sgd or adamw, got {self.name!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"optim.schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.lr <= 0 or self.step_size <= 0:
            raise ConfigError(f"optim.lr and optim.step_size must be > 0, got {self.lr} and {self.step_size}")
        if self.warmup_steps < 0 or self.clip_grad < 0:
            raise ConfigError("optim.warmup_steps and optim.clip_grad must be >= 0")


def build_optimizer(params, optim: OptimConfig) -> torch.optim.Optimizer:
    """SGD (with momentum) or AdamW over the parameters that require gradients."""
    params = [p for p in params if p.requires_grad]
    if optim.name == "adamw":
        return torch.optim.AdamW(params, lr=optim.lr, weight_decay=optim.weight_decay)
    return torch.optim.SGD(params, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay)


def lr_at(step: int, total: int, optim: OptimConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based) of ``total``: a pure function of the step.

    The schedule (see :class:`OptimConfig`), times a linear warm-up over the first ``warmup_steps``
    steps from ``warmup_factor`` to 1 (``warmup_factor * (1 - a) + a`` with ``a = step / warmup_steps``).
    """
    lr = optim.lr
    if optim.schedule == "step":
        if optim.milestones:
            marks = [int(round(m * total)) if m < 1 else int(m) for m in optim.milestones]
            lr *= optim.gamma ** sum(step >= m for m in marks)
        else:
            lr *= optim.gamma ** (step // optim.step_size)
    elif optim.schedule == "poly":
        lr *= max(0.0, 1.0 - step / max(1, total)) ** optim.poly_power
    elif optim.schedule == "cosine":
        lr *= 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(1, total)))
    if optim.warmup_steps > 0 and step < optim.warmup_steps:
        a = step / optim.warmup_steps
        lr *= optim.warmup_factor * (1 - a) + a
    return lr


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = lr
