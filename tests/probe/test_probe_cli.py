"""``pri3d probe`` end to end on a tiny synthetic dataset (2 scenes x 3 frames at 48x64): parseable JSON,
the report folder, a checkpoint file against the same network built as ``scratch``, the frozen-feature
extractor's contract, and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pri3d.cli import main
from pri3d.data.io import write_depth
from pri3d.data.synth import generate
from pri3d.engine.seed import seed_everything
from pri3d.errors import DataError
from pri3d.models.resnet_unet import ResNetUNet
from pri3d.probe import FeatureExtractor, open_frames, run_probe

RES = ["--resolution", "48", "64"]
SCRATCH = ["--checkpoint", "scratch", "--arch", "resnet18", "--seed", "0", *RES]


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("probe") / "synth"
    generate(out, scenes=2, frames_per_scene=3, seed=3, resolution=(48, 64), workers=1, progress=False)
    return out


def probe_json(capsys, *argv) -> dict:
    capsys.readouterr()
    assert main(["probe", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_semseg_cli_prints_parseable_json(synth, capsys):
    r = probe_json(
        capsys,
        "semseg",
        *SCRATCH,
        "--fit",
        str(synth),
        "--test",
        str(synth),
        "--fit-split",
        "train",
        "--test-split",
        "val",
    )
    assert r["task"] == "semseg" and 0 <= r["miou"] <= 1 and 0 <= r["pixel_acc"] <= 1
    assert set(r["per_class_iou"]) == set(r["per_class"]) and len(r["per_class_iou"]) == 20
    assert r["majority"]["class"] and r["majority"]["pixel_acc"] > 0
    assert r["fit_frames"] == 3 and r["test_frames"] == 3 and r["fit_pixels"] == 3 * 512
    assert r["test_pixels"] > 0 and "992 channels" in r["features"] and r["resolution"] == [48, 64]
    assert "scratch" in r["checkpoint"] and "split 'train'" in r["fit"]


def test_depth_and_normals_reports_with_pictures_and_no_silent_overwrite(synth, tmp_path, capsys):
    out = tmp_path / "report"
    r = probe_json(
        capsys, "depth", *SCRATCH, "--fit", str(synth), "--test", str(synth), "--max-frames", "4", "--out", str(out)
    )
    for k in ("abs_rel", "rmse", "delta1", "abs_rel_median", "rmse_median", "delta1_median"):
        assert np.isfinite(r[k]) and np.isfinite(r["constant"][k])
    assert r["fit_frames"] == 4 and 0 <= r["delta1"] <= 1
    assert json.loads((out / "probe.json").read_text())["abs_rel"] == r["abs_rel"]
    assert (out / "depth.png").stat().st_size > 500
    capsys.readouterr()
    assert main(["probe", "normals", *SCRATCH, "--fit", str(synth), "--test", str(synth), "--out", str(out)]) == 1
    assert "probe.json exists; pass --force" in capsys.readouterr().err
    assert (
        main(["probe", "normals", *SCRATCH, "--fit", str(synth), "--test", str(synth), "--out", str(out), "--force"])
        == 0
    )
    text = capsys.readouterr().out
    assert "probe normals: median" in text and "normals.png" in text
    r = json.loads((out / "probe.json").read_text())
    assert r["task"] == "normals" and 0 <= r["within_11_25"] <= r["within_22_5"] <= r["within_30"] <= 1
    assert r["median_deg"] < r["constant"]["median_deg"]


def test_a_checkpoint_file_is_the_same_network_as_scratch_with_its_seed(synth, tmp_path, capsys):
    seed_everything(0)
    model = ResNetUNet("resnet18", 32)
    path = tmp_path / "backbone.pth"
    torch.save(
        {
            "format": "pri3d-unet",
            "arch": "resnet18",
            "feature_dim": 32,
            "resolution": [48, 64],
            "backbone": model.state_dict(),
        },
        path,
    )
    args = ["--fit", str(synth), "--test", str(synth), "--max-frames", "2", "--pixels-per-frame", "100"]
    from_file = probe_json(capsys, "semseg", "--checkpoint", str(path), *args)  # resolution from the file
    scratch = probe_json(capsys, "semseg", *SCRATCH, *args)
    assert from_file["resolution"] == [48, 64]
    assert from_file["miou"] == scratch["miou"] and from_file["per_class_iou"] == scratch["per_class_iou"]


def test_the_extractor_is_frozen_deterministic_and_normalised_per_block(synth):
    seed_everything(0)
    model = ResNetUNet("resnet18", 16).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ex = FeatureExtractor(model, (48, 64))
    color = open_frames(synth).load(0).color
    f1, f2 = ex(color), ex(color)
    assert f1.shape == (16 + 64 + 128 + 256 + 512, 24, 32) and ex.channels == f1.shape[0]
    assert torch.equal(f1, f2) and not f1.requires_grad
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN stats untouched
    # the decoder block is at the output grid already: unit norm at every pixel
    assert torch.allclose(f1[:16].norm(dim=0), torch.ones(24, 32), atol=1e-5)
    only = FeatureExtractor(model, (48, 64), layers=("layer4",))(color)
    assert only.shape == (512, 24, 32)


def test_frames_split_and_max_frames(synth):
    assert len(open_frames(synth)) == 6
    assert [s.scene_id for s, _ in open_frames(synth, split="val").refs] == ["scene0001_00"] * 3
    few = open_frames(synth, max_frames=2)
    assert len(few) == 2 and {s.scene_id for s, _ in few.refs} == {"scene0000_00", "scene0001_00"}
    with pytest.raises(DataError, match="split 'test2' not found"):
        open_frames(synth, split="test2")


def test_a_prepared_folder_gives_its_kept_frames_and_finds_the_dataset_splits(synth, tmp_path, capsys):
    prepared = tmp_path / "prepared"
    args = ["--input", str(synth), "--output", str(prepared), "--no-geometry", "--no-progress", "--frame-skip", "2"]
    assert main(["prepare", *args]) == 0
    frames = open_frames(prepared)
    assert frames.names() == ["scene0000_00/0", "scene0000_00/2", "scene0001_00/0", "scene0001_00/2"]
    assert open_frames(prepared, split="val").names() == ["scene0001_00/0", "scene0001_00/2"]
    assert frames.description.startswith(f"prepared {prepared}")


def test_bad_input_is_one_line(synth, tmp_path, capsys):
    def err(*argv) -> str:
        capsys.readouterr()
        assert main(["probe", *argv]) == 1
        e = capsys.readouterr().err.strip()
        assert e.startswith("pri3d probe: error: ") and "\n" not in e and "Traceback" not in e
        return e

    missing = tmp_path / "nowhere"
    assert f"{missing}: no such file or directory" in err(
        "semseg", *SCRATCH, "--fit", str(missing), "--test", str(synth)
    )
    nockpt = tmp_path / "none.pth"
    assert f"{nockpt}: checkpoint not found" in err(
        "depth", "--checkpoint", str(nockpt), "--fit", str(synth), "--test", str(synth)
    )
    # test data without depth: every depth map of a copy of the dataset zeroed
    import shutil

    nodepth = tmp_path / "nodepth"
    shutil.copytree(synth, nodepth)  # the whole finished dataset (a lone scene folder is an unfinished one)
    for p in nodepth.glob("scene*/depth/*.png"):
        write_depth(p, np.zeros((48, 64), np.float32))
    e = err("depth", *SCRATCH, "--fit", str(synth), "--test", str(nodepth))
    assert f"{nodepth}: no valid sensor depth" in e
    assert "unknown arch" in err(
        "semseg", "--checkpoint", "scratch", "--arch", "resnet7", "--fit", str(synth), "--test", str(synth)
    )
    assert "multiples of 4" in err(
        "semseg", *SCRATCH[:-3], "--resolution", "50", "64", "--fit", str(synth), "--test", str(synth)
    )


def test_run_probe_from_python(synth):
    r = run_probe(
        "semseg", "scratch", synth, synth, arch="resnet18", resolution=(48, 64), max_frames=2, pixels_per_frame=64
    )
    assert r["task"] == "semseg" and "examples" not in r and r["fit_pixels"] == 128
    with pytest.raises(Exception, match="unknown probe"):
        run_probe("pose", "scratch", synth, synth)
