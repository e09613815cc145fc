"""Shared test setup. Tests run on CPU, on data they generate or the project ships.

Real-data samples: ``from realdata import shared_data`` (a module with a unique name: several
``conftest.py`` files exist, so ``from conftest import ...`` would pick whichever was imported first).
"""

from __future__ import annotations

import torch

torch.set_num_threads(min(2, torch.get_num_threads()))
