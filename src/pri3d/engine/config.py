"""The training settings both loops share: one :class:`TrainConfig`, one meaning and one unit per key.

Pre-training's ``train`` section (:class:`pri3d.pretrain.config.TrainConfig`) and fine-tuning's
(:class:`pri3d.downstream.config.TrainConfig`) subclass it and add only what is their own (pre-training:
steps, accumulation, threads, the matching-recall evaluation every ``eval_every`` steps; fine-tuning:
epochs, the evaluation every ``eval_every_epochs`` epochs, the metric that picks ``best.pt``). Each phase
may give a key another default, never another meaning. Every count of these keys is in optimizer steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pri3d.engine.amp import AMP_MODES
from pri3d.engine.distributed import check_device
from pri3d.errors import ConfigError

__all__ = ["TrainConfig"]


@dataclass
class TrainConfig:
    batch_size: int = 64  # samples (pairs, images) per optimizer step, over all processes
    log_every: int = 20  # optimizer steps between log lines
    # Checkpoints are written at every evaluation and at the end of the run, and also every ckpt_every
    # optimizer steps; 0 = none in between (only at evaluations and at the end).
    ckpt_every: int = 0
    keep_checkpoints: int = 3  # the newest k checkpoints kept
    amp: str = "off"  # autocast: off | bf16 | fp16 (CUDA, with loss scaling) | auto (bf16 on CUDA, off on CPU)
    device: str = "auto"  # auto | cpu | cuda | cuda:N

    AMP_CHOICES: ClassVar[tuple[str, ...]] = AMP_MODES  # a phase may allow fewer

    def validate(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"train.batch_size must be >= 1, got {self.batch_size}")
        if self.log_every < 1 or self.keep_checkpoints < 1 or self.ckpt_every < 0:
            raise ConfigError(
                "train.log_every and train.keep_checkpoints must be >= 1, train.ckpt_every >= 0 (0 = checkpoints "
                f"only at evaluations and at the end); got {self.log_every}, {self.keep_checkpoints}, "
                f"{self.ckpt_every}"
            )
        if self.amp not in self.AMP_CHOICES:
            raise ConfigError(f"train.amp must be one of {', '.join(self.AMP_CHOICES)}, got {self.amp!r}")
        check_device(self.device, "train.device")

    def checkpoint_due(self, step: int, *, evaluated: bool, last: bool) -> bool:
        """Whether optimizer step ``step`` (counted from 1) ends with a checkpoint: at an evaluation
        (``evaluated``), at the end of the run (``last``) and every ``ckpt_every`` steps (when > 0)."""
        return last or evaluated or (self.ckpt_every > 0 and step % self.ckpt_every == 0)
