"""``load_unet``: a whole UNet for the read-outs, from a file or as an untrained baseline."""

import pytest
import torch

from pri3d.errors import CheckpointError, DataError, InitError
from pri3d.models.load import load_unet
from pri3d.models.resnet_unet import OFFICIAL_FEATURE_DIM, ResNetUNet


def test_scratch_is_seeded_and_uses_the_official_width():
    a, res, desc = load_unet("scratch", "resnet18", None, 5)
    b, _, _ = load_unet("scratch", "resnet18", None, 5)
    assert res is None and "resnet18 at initialisation" in desc
    assert a.feature_dim == OFFICIAL_FEATURE_DIM["resnet18"] == 32
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_a_backbone_file_with_its_resolution(tmp_path):
    model = ResNetUNet("resnet18", 8)
    path = tmp_path / "backbone.pth"
    torch.save(
        {
            "format": "pri3d-unet",
            "arch": "resnet18",
            "feature_dim": 8,
            "resolution": [64, 96],
            "backbone": model.state_dict(),
        },
        path,
    )
    loaded, res, _ = load_unet(str(path))
    assert res == (64, 96) and loaded.feature_dim == 8
    assert torch.equal(loaded.decoder.conv0.weight, model.decoder.conv0.weight)


def test_bad_files_raise_errors_naming_the_file_and_the_reader(tmp_path):
    other = tmp_path / "other.pth"
    torch.save({"format": "something"}, other)
    with pytest.raises(DataError, match=rf"{other}: not a pri3d checkpoint.*the probe needs the whole UNet"):
        load_unet(str(other), what="the probe")
    bare = tmp_path / "bare.pth"
    torch.save({"format": "pri3d-unet", "backbone": {}}, bare)
    with pytest.raises(DataError, match="pass --arch and --feature-dim"):
        load_unet(str(bare))
    with pytest.raises(CheckpointError, match="checkpoint not found"):  # its own class (issue 23)
        load_unet(str(tmp_path / "missing.pth"))
    with pytest.raises(DataError, match="unknown arch"):
        load_unet("scratch", "resnet7")


def test_weights_that_do_not_fit_stay_an_init_error_and_are_one_line_in_the_cli(tmp_path, capsys):
    """Issue 23: load_unet re-wrapped InitError as DataError, which hid the class."""
    from pri3d.cli import main

    backbone = ResNetUNet("resnet18", 8).state_dict()
    backbone.pop("decoder.conv0.weight")
    path = tmp_path / "partial.pth"
    torch.save({"format": "pri3d-unet", "arch": "resnet18", "feature_dim": 8, "backbone": backbone}, path)
    with pytest.raises(InitError, match=r"decoder does not match the model.*1 missing: conv0.weight"):
        load_unet(str(path))
    assert main(["eval-matching", "--checkpoint", str(path), "--data", str(tmp_path / "prepared")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"pri3d eval-matching: error: {path} (pri3d-unet) decoder"), err
