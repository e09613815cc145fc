"""Shared test fixtures. Tests run on CPU, on data they generate or the project ships."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data(name: str) -> Path:
    """Path to a real-data sample in ../shared/data; skips the test when it is absent."""
    p = SHARED_DATA / name
    if not p.exists():
        pytest.skip(f"real-data sample {p} not present")
    return p
