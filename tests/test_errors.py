"""One error tree: every pri3d error is a Pri3dError, and the CLI turns any of them into one line."""

from __future__ import annotations

import inspect

import pytest

import pri3d.errors as errors
from pri3d.cli import main
from pri3d.errors import Pri3dError


def test_every_error_subclasses_the_base_and_its_old_builtin():
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__]
    assert {c.__name__ for c in classes} >= {
        "ConfigError",
        "DataError",
        "ExportError",
        "InitError",
        "CheckpointError",
        "TrainingError",
    }
    for c in classes:
        assert issubclass(c, Pri3dError)
    # callers that caught the builtins before the tree existed still catch them
    assert issubclass(errors.ConfigError, ValueError) and issubclass(errors.DataError, ValueError)
    assert issubclass(errors.TrainingError, RuntimeError) and issubclass(errors.CheckpointError, RuntimeError)


@pytest.mark.parametrize("kind", ["InitError", "CheckpointError", "TrainingError", "ExportError"])
def test_cli_prints_any_pri3d_error_as_one_line(kind, tmp_path, capsys, monkeypatch):
    import pri3d.commands.export as export_cmd

    def boom(*a, **k):
        raise getattr(errors, kind)("something named went wrong")

    monkeypatch.setattr(export_cmd, "export_weights", boom)
    assert main(["export", str(tmp_path / "a.pt"), "--to", "torchvision", str(tmp_path / "b.pth")]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "pri3d export: error: something named went wrong"


def test_cli_keeps_the_traceback_of_a_bug(tmp_path, monkeypatch):
    import pri3d.commands.export as export_cmd

    def bug(*a, **k):
        raise KeyError("not a pri3d error")

    monkeypatch.setattr(export_cmd, "export_weights", bug)
    with pytest.raises(KeyError):
        main(["export", str(tmp_path / "a.pt"), "--to", "torchvision", str(tmp_path / "b.pth")])


def test_unreadable_checkpoint_is_one_line_through_the_cli(tmp_path, capsys):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert main(["export", str(tmp_path / "junk.pt"), "--to", "torchvision", str(tmp_path / "x.pth")]) == 1
    err = capsys.readouterr().err
    assert "junk.pt" in err and len(err.strip().splitlines()) == 1
