"""Metric logging: JSONL always (one JSON object per line), TensorBoard when installed.

No experiment-tracking login is ever required.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

__all__ = ["MetricLogger", "read_jsonl"]


class MetricLogger:
    """Appends ``{"step": s, "time": t, **metrics}`` to ``<dir>/metrics.jsonl``.

    On resume, lines with ``step >= resume_step`` are dropped first, so a resumed run's log matches an
    uninterrupted one. Only rank 0 should create a logger (pass ``enabled=False`` elsewhere).
    """

    def __init__(self, directory, *, enabled: bool = True, tensorboard: bool = True, resume_step: int | None = None):
        self.enabled = enabled
        self.path = Path(directory) / "metrics.jsonl"
        self._tb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            kept = [r for r in read_jsonl(self.path) if r.get("step", -1) < resume_step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(directory) / "tb"))
            except Exception:  # tensorboard not installed: JSONL only
                self._tb = None

    def log(self, step: int, **metrics) -> None:
        if not self.enabled:
            return
        rec = {"step": int(step), "time": time.time()}
        for k, v in metrics.items():
            v = float(v) if hasattr(v, "__float__") and not isinstance(v, (int, str)) else v
            rec[k] = None if isinstance(v, float) and not math.isfinite(v) else v
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        if self._tb is not None:
            for k, v in rec.items():
                if k not in ("step", "time") and isinstance(v, (int, float)):
                    self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_jsonl(path) -> list[dict]:
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut by a kill mid-write
                    continue
    return out
