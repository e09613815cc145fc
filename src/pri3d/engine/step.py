"""One training step, for both loops: the only place that calls ``.backward()`` on a training loss.

:class:`TrainStep` runs one optimizer step over ``accumulate`` micro-batches: each one's forward pass
under autocast (``train.amp``), the cross-rank finite check of its loss (every rank stops together,
before any weight changes), the backward pass of ``loss / accumulate`` (through a ``GradScaler``, which
is a no-op unless the autocast dtype is fp16; under DDP, gradients are synchronised on the last
micro-batch only), then gradient clipping (``optim.clip_grad``), the optimizer step and ``zero_grad``.
What differs between the loops is the ``loss_fn(batch) -> {name: loss}`` they pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch

from pri3d.engine.checkpoint import CheckpointManager
from pri3d.engine.distributed import all_ranks_finite
from pri3d.engine.optim import set_lr
from pri3d.errors import TrainingError

__all__ = ["TrainStep"]


class TrainStep:
    """The optimizer step of a run (see the module docstring).

    ``model``: the module whose forward ``loss_fn`` calls (the DDP wrapper under torchrun: set
    :attr:`model` after wrapping); ``amp``: the autocast dtype or None; ``checkpoints``: named in the error
    on a non-finite loss (the newest one is where a run can go back to)."""

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        device: torch.device,
        amp: torch.dtype | None,
        clip_grad: float = 0.0,
        accumulate: int = 1,
        distributed: bool = False,
        checkpoints: CheckpointManager | None = None,
    ):
        self.model, self.optimizer, self.device, self.amp = model, optimizer, device, amp
        self.clip_grad, self.accumulate, self.distributed = clip_grad, accumulate, distributed
        self.checkpoints = checkpoints
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp is torch.float16)  # fp16 needs loss scaling

    def __call__(
        self,
        step: int,
        lr: float,
        batches: Iterator,
        loss_fn: Callable[[object], dict[str, torch.Tensor]],
        describe: Callable[[object], str] | None = None,
    ) -> list[dict[str, torch.Tensor]]:
        """Optimizer step ``step`` (0-based; errors name ``step + 1``, the count the log and the
        checkpoints use) at learning rate ``lr``, over the next ``accumulate`` items of ``batches``.
        Returns each micro-batch's losses, detached. ``describe(batch)``: what to name of a batch whose
        loss is not finite."""
        set_lr(self.optimizer, lr)
        out = []
        for micro in range(self.accumulate):
            batch = next(batches)
            no_sync = self.distributed and micro < self.accumulate - 1
            with self.model.no_sync() if no_sync else contextlib.nullcontext():
                with torch.autocast(self.device.type, dtype=self.amp or torch.bfloat16, enabled=self.amp is not None):
                    losses = loss_fn(batch)
                loss = sum(losses.values())
                if not all_ranks_finite(loss):
                    raise TrainingError(self._non_finite(step, micro, losses, describe(batch) if describe else ""))
                self.scaler.scale(loss / self.accumulate).backward()
            out.append({k: v.detach() for k, v in losses.items()})
        if self.clip_grad > 0:
            self.scaler.unscale_(self.optimizer)
            params = [p for p in self.model.parameters() if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, self.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return out

    def _non_finite(self, step: int, micro: int, losses: dict, what: str) -> str:
        detail = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in losses.items())
        paths = self.checkpoints.paths() if self.checkpoints is not None else []
        return (
            f"non-finite loss at step {step + 1} (micro-batch {micro}; {detail}{'; ' + what if what else ''}). "
            f"Stopped before updating the weights; last checkpoint: {paths[-1].name if paths else 'none'}"
        )
