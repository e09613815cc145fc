"""Split files with frame ranges, and the held-out time range of ``pri3d prepare --holdout``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pri3d.data.prepare import PrepareParams
from pri3d.data.prepared import Pair, PreparedData
from pri3d.data.splits import format_ranges, holdout_split, parse_ranges, read_split, write_split
from pri3d.errors import ConfigError, DataError


def test_ranges_parse_format_and_round_trip(tmp_path):
    assert parse_ranges("162-248, 0-58,100") == ((0, 58), (100, 100), (162, 248))
    # every 2nd frame kept: consecutive kept frames make one range; a skipped kept frame breaks it
    kept = list(range(0, 20, 2))
    assert format_ranges([0, 2, 4, 8, 10], kept) == "0-4,8-10"
    assert format_ranges([6], kept) == "6"
    for bad in ("5-2", "a-3", "", "-4"):
        with pytest.raises(DataError):
            parse_ranges(bad)
    f = tmp_path / "s.txt"
    f.write_text("# a comment\nsceneA\nseq 0-58,162-248  # two ranges\nseq 100\n\n")
    s = read_split(f)
    assert s.scene_ids() == ["sceneA", "seq"] and s.has_frame_ranges
    assert s.scenes["seq"] == ((0, 58), (100, 100), (162, 248))  # lines of one scene are merged
    assert s.contains("sceneA", 12345) and s.contains("seq", 58) and s.contains("seq", 100)
    assert not s.contains("seq", 59) and not s.contains("other", 0)
    back = read_split(write_split(tmp_path / "w.txt", s, "header"))
    assert back.scenes == s.scenes
    f.write_text("seq 3-1\n")
    with pytest.raises(DataError, match=r"s\.txt:1: bad frame range"):
        read_split(f)


def test_holdout_split_leaves_an_overlap_gap():
    frames = {"seq": list(range(0, 20, 2))}
    pairs = [
        Pair("seq", 0, 2, 0.9),
        Pair("seq", 6, 8, 0.8),
        Pair("seq", 8, 10, 0.9),
        Pair("seq", 4, 10, 0.35),
        Pair("seq", 10, 12, 0.95),
        Pair("seq", 12, 14, 0.5),
        Pair("seq", 14, 18, 0.3),
        Pair("seq", 16, 18, 0.9),
    ]
    train, val, stats = holdout_split(frames, pairs, parse_ranges("10-12"), max_overlap=0.4)
    assert val.scenes == {"seq": ((10, 12),)}
    # 8 (0.9 with 10) and 14 (0.5 with 12) are near-duplicates; 4 (0.35 with 10) is kept
    assert [f for f in frames["seq"] if train.contains("seq", f)] == [0, 2, 4, 6, 16, 18]
    assert stats["seq"] == {"val_count": 2, "train_count": 6, "gap": 2, "max_overlap": 0.35}
    strict, _, st = holdout_split(frames, pairs, parse_ranges("10-12"), max_overlap=0.3)
    assert not strict.contains("seq", 4) and st["seq"]["max_overlap"] == 0.0


def test_prepare_holdout_writes_splits_and_pretrain_never_trains_on_held_out_frames(tmp_path):
    from boxroom import trajectory, write_scene
    from pri3d.cli import main
    from pri3d.pretrain.data import split_pairs

    root = tmp_path / "data"
    write_scene(root, "seq", trajectory(10, step=0.3))  # frames 0, 10, ..., 90; no mesh: geometry is fused
    out = tmp_path / "prep"
    assert (
        main(
            [
                "prepare",
                "--input",
                str(root),
                "--output",
                str(out),
                "--holdout",
                "40-50",
                "--no-progress",
                "--voxel-size",
                "0.1",
            ]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    h = summary["holdout"]
    assert h["val_frames"] == 2 and h["train_frames"] + h["gap_frames"] == 8 and h["gap_frames"] >= 1
    data = PreparedData(out)
    val_split = read_split(out / "splits" / "val.txt")
    train_split = read_split(out / "splits" / "train.txt")
    assert val_split.scenes == {"seq": ((40, 50),)}
    train, val, note = split_pairs(data)  # the prepared splits are the defaults
    assert train and val and "used for neither" in note
    assert all(val_split.contains("seq", p.frame_a) and val_split.contains("seq", p.frame_b) for p in val)
    held = {40, 50}
    gap = set(range(0, 100, 10)) - held - {f for f in range(0, 100, 10) if train_split.contains("seq", f)}
    assert len(gap) == h["gap_frames"]
    for p in train:  # no training pair touches a held-out frame or a near-duplicate of one
        assert not {p.frame_a, p.frame_b} & (held | gap)
    # no mined pair (overlap >= 0.3) links a training frame and a held-out frame
    assert not any((p.frame_a in held) != (p.frame_b in held) and not {p.frame_a, p.frame_b} & gap for p in data.pairs)
    assert h["max_train_val_overlap"] == 0.0
    # the fused training geometry is made of the training frames' depth alone
    info = json.loads((out / "scenes" / "seq" / "frames.json").read_text())
    assert info["holdout"]["val_frames"] == [40, 50]
    from pri3d.data.formats import open_dataset
    from pri3d.data.prepare import fuse_depth, load_scene_frames

    params = PrepareParams(voxel_size=0.1)
    every = load_scene_frames(open_dataset(root)[0], params, want_fusion=True)
    only = load_scene_frames(open_dataset(root)[0], params, want_fusion=True, frame_ranges=train_split.scenes["seq"])
    stored = data.voxels("seq").coords
    assert np.array_equal(stored, fuse_depth(only, 0.1)[0])
    assert len(fuse_depth(every, 0.1)[0]) > len(stored)
    # a looser gap keeps more training frames and reports the largest training-held-out overlap left
    out2 = tmp_path / "prep2"
    assert (
        main(
            [
                "prepare",
                "--input",
                str(root),
                "--output",
                str(out2),
                "--holdout",
                "40-50",
                "--no-progress",
                "--no-geometry",
                "--holdout-overlap",
                "0.6",
            ]
        )
        == 0
    )
    h2 = json.loads((out2 / "summary.json").read_text())["holdout"]
    assert h2["train_frames"] > h["train_frames"] and 0.3 <= h2["max_train_val_overlap"] < 0.6
    # a gap that leaves no training frame is a clear error
    tight = tmp_path / "tight"
    write_scene(tight, "seq", trajectory(10, step=0.2))
    assert (
        main(
            [
                "prepare",
                "--input",
                str(tight),
                "--output",
                str(tmp_path / "p3"),
                "--holdout",
                "40-50",
                "--no-progress",
                "--no-geometry",
            ]
        )
        == 1
    )
    with pytest.raises(ConfigError, match="holdout_overlap"):
        PrepareParams(holdout="40-50", holdout_overlap=0.1).check()
    with pytest.raises(ConfigError, match="bad frame range"):
        PrepareParams(holdout="50-40").check()
