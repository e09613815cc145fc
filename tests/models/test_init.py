import pytest
import torch
import torchvision

from pri3d.errors import InitError
from pri3d.models.init import init_encoder, load_backbone, read_weights
from pri3d.models.resnet_unet import ResNetUNet


def test_unet_output_half_resolution_and_encoder_names():
    m = ResNetUNet("resnet18", feature_dim=16)
    out = m(torch.randn(1, 3, 64, 96))
    assert out.shape == (1, 16, 32, 48)
    tv = torchvision.models.resnet18(weights=None)
    missing, unexpected = tv.load_state_dict(m.encoder.state_dict(), strict=False)
    assert sorted(missing) == ["fc.bias", "fc.weight"] and not unexpected


def test_torchvision_and_moco_files_load(tmp_path):
    torch.manual_seed(0)
    tv = torchvision.models.resnet18(weights=None)
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    moco = {"state_dict": {f"module.encoder_q.{k}": v for k, v in tv.state_dict().items()}}
    moco["state_dict"]["module.encoder_q.fc.0.weight"] = torch.zeros(3, 3)  # MLP head: dropped
    moco["state_dict"]["module.encoder_k.conv1.weight"] = torch.zeros(1)  # key encoder: ignored
    torch.save(moco, tmp_path / "moco.pth")
    for name, kind in (("tv.pth", "torchvision"), ("moco.pth", "moco")):
        m = ResNetUNet("resnet18")
        desc = init_encoder(m.encoder, str(tmp_path / name), "resnet18")
        assert kind in desc
        assert torch.equal(m.encoder.conv1.weight, tv.conv1.weight)
        assert torch.equal(m.encoder.layer4[1].bn2.running_var, tv.layer4[1].bn2.running_var)


def test_moco_with_wrong_prefix_is_an_error(tmp_path):
    torch.save({"state_dict": {"module.something.conv1.weight": torch.zeros(1)}}, tmp_path / "bad.pth")
    with pytest.raises(InitError, match="unrecognised"):
        read_weights(tmp_path / "bad.pth")


def test_backbone_mismatch_lists_keys(tmp_path):
    m50 = ResNetUNet("resnet50")
    torch.save({"format": "pri3d-unet", "backbone": m50.state_dict(), "arch": "resnet50"}, tmp_path / "u.pth")
    m18 = ResNetUNet("resnet18")
    with pytest.raises(InitError, match="shape-mismatched") as e:
        load_backbone(m18, tmp_path / "u.pth")
    assert "conv1.weight" in str(e.value) or "layer" in str(e.value)


def test_pri3d_unet_roundtrip(tmp_path):
    a, b = ResNetUNet("resnet18", 8), ResNetUNet("resnet18", 8)
    torch.save({"format": "pri3d-unet", "backbone": a.state_dict(), "arch": "resnet18"}, tmp_path / "u.pth")
    load_backbone(b, tmp_path / "u.pth")
    x = torch.randn(1, 3, 32, 32)
    a.eval(), b.eval()
    assert torch.equal(a(x), b(x))


def test_imagenet_offline_message(monkeypatch):
    def boom(*a, **k):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.__class__, "get_state_dict", boom)
    m = ResNetUNet("resnet18")
    with pytest.raises(InitError, match="Offline"):
        init_encoder(m.encoder, "imagenet", "resnet18")
