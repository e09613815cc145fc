"""Split files with frame ranges and the held-out time range (:func:`holdout_split`); ``pri3d prepare --holdout``
itself is tested in ``tests/pairs/test_mine.py``."""

from __future__ import annotations

import pytest

from pri3d.data.splits import format_ranges, holdout_split, parse_ranges, read_split, write_split
from pri3d.errors import DataError
from pri3d.pairs.store import Pair


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
