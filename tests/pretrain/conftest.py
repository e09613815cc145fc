"""Session fixture: a tiny synthetic dataset (2 scenes x 6 frames at 60x80) prepared for pre-training
(8 cm voxels to keep the CPU 3D branch fast)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def prepared_dir(tmp_path_factory):
    from pri3d.cli import main
    from pri3d.data.synth import generate

    root = tmp_path_factory.mktemp("pretrain-data")
    generate(root / "synth", scenes=2, frames_per_scene=6, seed=0, resolution=(60, 80), progress=False)
    rc = main(
        [
            "prepare",
            "--input",
            str(root / "synth"),
            "--output",
            str(root / "prepared"),
            "--frame-skip",
            "1",
            "--voxel-size",
            "0.08",
            "--no-progress",
        ]
    )  # coarse voxels: small chunks for CPU tests
    assert rc == 0
    return root / "prepared"


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread, as the CPU presets: on a shared machine OpenMP barriers stall small ops."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny(prepared_dir):
    """``tiny(out, *overrides)``: cpu-tiny overrides on the prepared data at 32x48 (fractions of a second
    per step)."""

    def make(out, *extra: str) -> list[str]:
        return [f"data.path={prepared_dir}", f"out={out}", "data.resolution=[32,48]", *extra]

    return make
