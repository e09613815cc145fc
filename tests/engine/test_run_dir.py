import pytest

from pri3d.engine.run_dir import (
    check_resume_data,
    classify,
    is_finished,
    mark_done,
    prepare_run_dir,
    require_finished,
)
from pri3d.errors import CheckpointError, ConfigError


def _touch(path, text="x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_classify_new_resumable_finished_foreign(tmp_path):
    assert classify(tmp_path / "absent")[0] == "new"
    assert classify(tmp_path)[0] == "new"
    _touch(tmp_path / "config.yaml")
    _touch(tmp_path / "metrics.jsonl")
    assert classify(tmp_path)[0] == "new"  # died before its first checkpoint
    _touch(tmp_path / "checkpoints" / "ckpt_00000004.pt")
    assert classify(tmp_path) == ("resumable", "holds checkpoints of an unfinished run (newest ckpt_00000004.pt)")
    mark_done(tmp_path)
    assert classify(tmp_path)[0] == "finished" and is_finished(tmp_path)
    _touch(tmp_path / "pairs.csv")
    state, detail = classify(tmp_path)
    assert state == "foreign" and "pairs.csv" in detail
    _touch(tmp_path / ".hidden.tmp")  # dot-files (atomic writers' temp files) do not count
    assert "hidden" not in classify(tmp_path)[1]


@pytest.mark.parametrize("ends", [["backbone.pth"], ["best.pt", "results.json"], ["report.md"]])
def test_end_products_without_marker_count_as_finished(tmp_path, ends):
    for n in ends:
        _touch(tmp_path / n)
    assert classify(tmp_path)[0] == "finished"
    with pytest.raises(ConfigError, match="--overwrite"):
        prepare_run_dir(tmp_path, resume=False)
    assert all((tmp_path / n).read_text() == "x" for n in ends)  # refused: nothing touched


def test_a_file_is_not_a_run_folder(tmp_path):
    with pytest.raises(ConfigError, match="not a folder"):
        prepare_run_dir(_touch(tmp_path / "f"), resume=False)


def test_overwrite_removes_the_runs_outputs_but_not_foreign_files(tmp_path):
    for n in ("backbone.pth", "report.md", "config.yaml", "metrics.jsonl", "checkpoints/ckpt_00000002.pt", "notes.txt"):
        _touch(tmp_path / n)
    mark_done(tmp_path)
    with pytest.raises(ConfigError, match="notes.txt"):
        prepare_run_dir(tmp_path, resume=False)
    assert prepare_run_dir(tmp_path, resume=False, overwrite=True) == "foreign"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_resume_removes_only_the_done_marker(tmp_path):
    _touch(tmp_path / "checkpoints" / "ckpt_00000002.pt")
    _touch(tmp_path / "backbone.pth")
    mark_done(tmp_path)
    assert prepare_run_dir(tmp_path, resume=True) == "finished"
    assert not is_finished(tmp_path) and (tmp_path / "backbone.pth").exists()
    with pytest.raises(ConfigError, match="--resume to continue"):
        prepare_run_dir(tmp_path, resume=False)


def test_a_fresh_start_clears_a_dead_runs_log(tmp_path):
    _touch(tmp_path / "metrics.jsonl", '{"step": 1}\n')
    _touch(tmp_path / "config.yaml")
    assert prepare_run_dir(tmp_path, resume=False) == "new"
    assert not (tmp_path / "metrics.jsonl").exists()


def test_only_rank_0_changes_the_folder(tmp_path):
    _touch(tmp_path / "checkpoints" / "ckpt_00000002.pt")
    mark_done(tmp_path)
    prepare_run_dir(tmp_path, resume=True, is_main=False)
    assert is_finished(tmp_path)


def test_require_finished_refuses_an_unfinished_runs_end_products(tmp_path):
    bb = _touch(tmp_path / "backbone.pth")
    require_finished(bb)  # not a run folder (no config.yaml): any weights file
    _touch(tmp_path / "config.yaml")
    _touch(tmp_path / "metrics.jsonl")
    ck = _touch(tmp_path / "checkpoints" / "ckpt_00000002.pt")
    with pytest.raises(CheckpointError, match="has not finished"):
        require_finished(bb)
    with pytest.raises(CheckpointError, match="has not finished"):
        require_finished(tmp_path)
    require_finished(ck)  # a checkpoint is what it says, finished or not
    mark_done(tmp_path)
    require_finished(bb)
    require_finished(tmp_path)


def test_resume_with_other_data_is_refused(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    check_resume_data({"data": {"path": str(a)}}, str(a), "ckpt")
    with pytest.raises(ConfigError, match="trained on"):
        check_resume_data({"data": {"path": str(a)}}, str(b), "ckpt")
    check_resume_data({"data": {"path": str(tmp_path / "moved")}}, str(b), "ckpt")  # the old folder is gone


def test_open_run_resumes_only_a_checkpoint_of_the_same_format_and_kind(tmp_path):
    from dataclasses import dataclass, field

    from pri3d.config import to_dict
    from pri3d.engine.checkpoint import CheckpointManager
    from pri3d.engine.run_dir import RESUME_FREE, open_run

    @dataclass
    class Train:
        steps: int = 4
        log_every: int = 1

    @dataclass
    class Cfg:
        out: str = "o"
        lr: float = 0.1
        train: Train = field(default_factory=Train)

    def opened(**kw):
        args = dict(resume=True, keep=2, checkpoint_format="pri3d-x", kind=("mode", "view"), data_path=None)
        return open_run(tmp_path, **{**args, **kw})

    with pytest.raises(CheckpointError, match="no readable checkpoint"):
        opened()
    CheckpointManager(tmp_path / "checkpoints").save({"format": "pri3d-x", "mode": "geo", "config": {}}, 2)
    with pytest.raises(CheckpointError, match=r"\(mode 'geo'\) cannot resume a pri3d-x run \(mode 'view'\)"):
        opened()
    with pytest.raises(CheckpointError, match="a pri3d-x checkpoint"):
        opened(checkpoint_format="pri3d-y", kind=("mode", "geo"))
    saved = {"format": "pri3d-x", "mode": "view", "step": 3, "config": to_dict(Cfg())}
    CheckpointManager(tmp_path / "checkpoints").save(saved, 3)
    rd = opened()
    assert rd.state["step"] == 3 and rd.path.name == "ckpt_00000003.pt"
    changed = Cfg(out="p", lr=0.2, train=Train(log_every=5))
    assert rd.config_changes(Cfg, changed, RESUME_FREE) == ["lr"]  # out and train.log_every are free
    assert "in lr;" in rd.resume_warning(Cfg, changed) and rd.resume_warning(Cfg, Cfg()) is None
    assert opened(resume=False, overwrite=True).state is None
