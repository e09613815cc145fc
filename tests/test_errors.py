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


# ---------------------------------------------------------------- OS errors are one line (issue 24)


def _one_line(capsys, command: str) -> str:
    """The error line (the last line of stderr, after any progress bars); no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"pri3d {command}: error: "), err
    return last


def test_a_full_disk_is_one_line_naming_the_file(tmp_path, capsys, monkeypatch):
    import errno

    import pri3d.engine.io as io

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io.os, "fsync", full)
    out = tmp_path / "s"
    assert main(["synth", "--out", str(out), "--scenes", "1", "--frames-per-scene", "2", "--resolution", "24x32"]) == 1
    line = _one_line(capsys, "synth")
    assert "No space left on device" in line and str(out) in line
    assert not [p for p in out.rglob(".*.tmp")]  # no temp file left behind


def test_a_path_of_the_wrong_type_is_one_line(tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    rc = main(["synth", "--out", str(tmp_path / "a_file" / "s"), "--scenes", "1", "--frames-per-scene", "2"])
    assert rc == 1
    assert "a_file" in _one_line(capsys, "synth")


def test_a_binary_config_is_one_line(tmp_path, capsys):
    cfg = tmp_path / "bin.yaml"
    cfg.write_bytes(b"\xff\xfe\x00\x81binary")
    assert main(["pretrain", "--config", str(cfg), "--print-config"]) == 1
    line = _one_line(capsys, "pretrain")
    assert "bin.yaml" in line and "UTF-8" in line


def _without_root_override() -> list[str]:
    import shutil
    import subprocess

    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv not available")
    prefix = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--"]
    if subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        pytest.skip("setpriv cannot drop the capabilities here")
    return prefix


def test_a_read_only_output_folder_and_an_unreadable_input_are_one_line(tmp_path):
    import os
    import subprocess
    import sys

    prefix = _without_root_override()
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [*prefix, sys.executable, "-m", "pri3d.cli", "synth", "--out", str(ro / "s"), "--scenes", "1"]
    cmd += ["--frames-per-scene", "2", "--resolution", "24x32"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1].startswith("pri3d synth: error: ") and "Permission denied" in r.stderr
    secret = tmp_path / "secret.yaml"
    secret.write_text("mode: view\n")
    secret.chmod(0)
    cmd = [*prefix, sys.executable, "-m", "pri3d.cli", "pretrain", "--config", str(secret), "--print-config"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert f"{secret}: Permission denied" in r.stderr


def test_an_error_in_a_dataloader_worker_reaches_the_user_as_its_one_line(tmp_path, capsys, monkeypatch):
    import torch

    import pri3d.commands.export as export_cmd
    from pri3d.errors import DataError

    class Bad(torch.utils.data.Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, i):
            raise DataError("frame.jpg: truncated JPEG (no end-of-image marker)")

    def load(*a, **k):
        next(iter(torch.utils.data.DataLoader(Bad(), num_workers=1)))

    monkeypatch.setattr(export_cmd, "export_weights", load)
    assert main(["export", str(tmp_path / "a.pt"), "--to", "torchvision", str(tmp_path / "b.pth")]) == 1
    assert _one_line(capsys, "export") == "pri3d export: error: frame.jpg: truncated JPEG (no end-of-image marker)"
