"""Split files with frame ranges, the held-out time range (:func:`holdout_split`; ``pri3d prepare
--holdout`` itself is tested in ``tests/pairs/test_mine.py``) and the one split resolver of both phases."""

from __future__ import annotations

import json

import pytest

from pri3d.data.splits import Split, format_ranges, holdout_split, parse_ranges, read_split, write_split
from pri3d.errors import DataError
from pri3d.pairs.store import Pair, PreparedData


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


def _scenes_of_both_phases(root, prepared, train: str = "train", val: str = "val"):
    """``{phase: (train scenes, val scenes)}`` as pre-training (pairs of a prepared directory of ``root``)
    and fine-tuning (scenes of ``root``) resolve the split names ``train`` and ``val``."""
    from pri3d.downstream.datasets import open_split
    from pri3d.pretrain.data import split_pairs

    tr, va, _ = split_pairs(prepared, train, val)
    return {
        "pretrain": (sorted({p.scene for p in tr}), sorted({p.scene for p in va})),
        "finetune": tuple([s.scene_id for s in open_split(root, w)] for w in (train, val)),
    }


def test_pretrain_and_finetune_resolve_split_names_to_the_same_scenes(tmp_path):
    from pri3d.data.splits import find_split_file, resolve_split
    from pri3d.data.synth import generate

    root = tmp_path / "data"
    generate(root, scenes=3, frames_per_scene=2, seed=0, resolution=(24, 32), progress=False)
    ids = ["scene0000_00", "scene0001_00", "scene0002_00"]
    out = tmp_path / "prep"  # a prepared directory with one pair per scene, no splits of its own
    out.mkdir()
    (out / "params.json").write_text(json.dumps({"version": 1, "input": "../data", "format": "scannet"}))
    (out / "pairs.csv").write_text("scene,frame_a,frame_b,overlap\n" + "".join(f"{s},0,1,0.5\n" for s in ids))
    prepared = PreparedData(out)

    # the generator's splits/train.txt, splits/val.txt
    synth = (read_split(root / "splits" / "train.txt").scene_ids(), read_split(root / "splits" / "val.txt").scene_ids())
    assert _scenes_of_both_phases(root, prepared) == {"pretrain": synth, "finetune": synth}
    # ScanNet's scannetv2_train.txt / scannetv2_val.txt (another partition, so that it is read)
    for f in (root / "splits").iterdir():
        f.unlink()
    (root / "scannetv2_train.txt").write_text("scene0000_00\nscene0002_00\n")
    (root / "scannetv2_val.txt").write_text("scene0001_00\n")
    want = (["scene0000_00", "scene0002_00"], ["scene0001_00"])
    assert _scenes_of_both_phases(root, prepared) == {"pretrain": want, "finetune": want}
    # "val" falls back to the test files in both phases
    (root / "scannetv2_val.txt").unlink()
    (root / "scannetv2_test.txt").write_text("scene0002_00\n")
    assert find_split_file("val", [out, root]) == root / "scannetv2_test.txt"
    both = _scenes_of_both_phases(root, prepared)
    assert both["finetune"] == (["scene0000_00", "scene0002_00"], ["scene0002_00"])
    assert both["pretrain"] == (["scene0000_00"], ["scene0002_00"])  # held-out scenes never train
    # a prepared directory's own splits (prepare --holdout) come first; paths are read as files
    write_split(out / "splits" / "val.txt", Split({"scene0001_00": ((0, 0),)}))
    assert resolve_split("val", [out, root]).scenes == {"scene0001_00": ((0, 0),)}
    assert resolve_split(str(root / "scannetv2_train.txt"), [out]).scene_ids() == ["scene0000_00", "scene0002_00"]
    assert resolve_split("all", [root]) is None and resolve_split("nosuch", [root], missing_ok=True) is None
    # issue 24: a named split that resolves to nothing is an error, in both phases, never "all pairs"
    with pytest.raises(DataError, match="split 'nosuch' not found"):
        resolve_split("nosuch", [root])
    from pri3d.pretrain.data import split_pairs

    with pytest.raises(DataError, match="split 'nope' not found"):
        split_pairs(prepared, "nope", "val")
    with pytest.raises(DataError, match="split 'nosuch' not found"):
        split_pairs(prepared, "train", "nosuch")
    for f in [*root.glob("scannetv2_*.txt"), *(out / "splits").glob("*.txt")]:
        f.unlink()
    train, val, note = split_pairs(prepared)  # the default names may be missing: said in the note
    assert len(train) == 3 and val == [] and "no train split 'train' found" in note
