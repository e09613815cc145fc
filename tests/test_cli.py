"""The pri3d command line: help, `pri3d info` end to end, clean errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pri3d.cli import COMMANDS, main
from pri3d.data.io import write_color, write_depth, write_matrix


def _sequence(folder, n=4):
    """A tiny 7-Scenes sequence: 16x12 images, depth 1.5 m with one invalid pixel; frame 2 has a
    -inf pose."""
    folder.mkdir()
    write_matrix(folder / "camera-intrinsics.txt", [[20.0, 0, 7.5], [0, 20.0, 5.5], [0, 0, 1]])
    for i in range(n):
        depth = np.full((12, 16), 1.5, dtype=np.float32)
        depth[0, 0] = 0
        write_color(folder / f"frame-{i:06d}.color.png", np.full((12, 16, 3), 40 * i, dtype=np.uint8))
        write_depth(folder / f"frame-{i:06d}.depth.png", depth)
        pose = np.eye(4)
        pose[0, 3] = 0.1 * i
        write_matrix(folder / f"frame-{i:06d}.pose.txt", np.full((4, 4), -np.inf) if i == 2 else pose)
    return folder


def test_help_lists_all_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out
    assert {"info", "synth", "prepare", "pretrain", "finetune", "evaluate", "export", "demo"} <= set(COMMANDS)


def test_info_text(tmp_path, capsys):
    seq = _sequence(tmp_path / "kitchen")
    assert main(["info", str(seq), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "format:    7scenes" in out
    assert "frames:    4 total" in out
    assert "colour 16x12 fx=20.00 fy=20.00 cx=7.50 cy=5.50" in out
    assert "median 1.50" in out and "invalid 0.5 % of pixels" in out
    assert "1 invalid" in out and "kitchen: 2" in out
    assert out.strip().splitlines()[-1] == (
        "7scenes: 1 scenes, 4 frames, 1 invalid poses, 0 all-zero depth frames, 1 skips"
    )


def test_info_json_and_options(tmp_path, capsys):
    seq = _sequence(tmp_path / "kitchen")
    assert main(["info", str(tmp_path), "--json", "--max-frames", "2", "--format", "7scenes", "--no-progress"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["num_frames"] == 4 and info["depth"]["sampled_frames"] == 2
    assert info["poses"]["invalid_frames"] == {"kitchen": [2]}
    assert info["depth"]["median_m"] == pytest.approx(1.5, abs=1e-3)
    split = tmp_path / "split.txt"
    split.write_text("kitchen\n")
    assert main(["info", str(seq), "--json", "--split-file", str(split), "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["num_scenes"] == 1


def test_info_bad_input_exits_1_with_clear_message(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert main(["info", str(missing)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pri3d info: error:") and str(missing) in err and "no such file" in err
    (tmp_path / "readme.txt").write_text("x")
    assert main(["info", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "unknown dataset format" in err and "7scenes" in err and "--format" in err
    assert len(err.strip().splitlines()) == 1
    seq = _sequence(tmp_path / "kitchen")
    assert main(["info", str(seq), "--format", "tum"]) == 1
    assert "no TUM sequence" in capsys.readouterr().err


def test_info_flags_intrinsics_for_another_resolution(tmp_path, capsys):
    seq = _sequence(tmp_path / "kitchen")
    write_matrix(seq / "camera-intrinsics.txt", [[585.0, 0, 320], [0, 585.0, 240], [0, 0, 1]])  # for 640x480
    assert main(["info", str(seq), "--no-progress"]) == 0
    out = capsys.readouterr().out  # every frame is refused by the reader: counted skips, with the reason
    assert "4 unreadable frame" in out and "does not fit the intrinsics" in out
    assert main(["info", str(seq), "--no-progress", "--strict"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "frame-000000.color.png: the 16x12 colour image does not fit the intrinsics" in err[0]


def test_prepare_counts_refused_frames_and_strict_makes_them_an_error(tmp_path, capsys):
    """Issue 24: a half-size depth PNG in a 7-Scenes sequence went through prepare with 0 skips."""
    import cv2

    seq = _sequence(tmp_path / "kitchen", n=5)
    f = seq / "frame-000003.depth.png"
    cv2.imwrite(str(f), cv2.resize(cv2.imread(str(f), cv2.IMREAD_UNCHANGED), (8, 6), interpolation=cv2.INTER_NEAREST))
    args = ["prepare", "--input", str(seq), "--no-progress", "--no-geometry", "--min-overlap", "0"]
    assert main([*args, "--output", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    assert "1 unreadable frame" in out
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert summary["skipped_frames"]["counts"]["unreadable frame"] == 1
    assert main([*args, "--output", str(tmp_path / "q"), "--strict"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "frame-000003.depth.png: the 8x6 depth image does not fit the intrinsics" in err[-1]
