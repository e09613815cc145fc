import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from pri3d.cli import main
from pri3d.errors import DataError, ExportError, InitError
from pri3d.export import (
    check_encoder,
    detectron2_key,
    detectron2_resnet_keys,
    export_weights,
    infer_arch,
)
from pri3d.models.init import load_backbone
from pri3d.models.resnet_unet import ResNetUNet

RESOURCES = Path(__file__).parent / "resources"


def _meta_resnet_sd(arch):
    with torch.device("meta"):
        return getattr(torchvision.models, arch)(weights=None).state_dict()


def _reference_d2_r50_keys():
    lines = (RESOURCES / "detectron2_r50_keys.txt").read_text().splitlines()
    return [k for k in lines if k and not k.startswith("#")]


def _perturb_bn_stats(model):
    """Non-default BN statistics, so a dropped or swapped buffer shows up in a comparison."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.num_batches_tracked.fill_(7)


@pytest.fixture(scope="module")
def r18_ckpt(tmp_path_factory):
    """A pri3d pre-training checkpoint of a ResNet-18 UNet, in the format ``pri3d pretrain`` writes."""
    torch.manual_seed(0)
    model = ResNetUNet("resnet18", feature_dim=16)
    _perturb_bn_stats(model)
    path = tmp_path_factory.mktemp("ckpt") / "ckpt_00000010.pt"
    torch.save(
        {
            "format": "pri3d-pretrain",
            "arch": "resnet18",
            "feature_dim": 16,
            "backbone": model.state_dict(),
            "model": {},
            "optimizer": {},
            "step": 10,
            "config": {},
        },
        path,
    )
    return path, model


# ----------------------------------------------------------------------------- key mappings


def test_detectron2_mapping_matches_reference_r50_keys():
    ref = _reference_d2_r50_keys()
    assert len(ref) == len(set(ref)) == 265
    tv = _meta_resnet_sd("resnet50")
    mapped = {k: detectron2_key(k) for k in tv}
    kept = [v for v in mapped.values() if v is not None]
    assert sorted(kept) == sorted(ref)  # every reference key produced once, nothing else
    dropped = sorted(k for k, v in mapped.items() if v is None)
    assert dropped == sorted(k for k in tv if k.endswith("num_batches_tracked") or k.startswith("fc."))
    # A few explicit pairs (the converter's rules).
    assert detectron2_key("bn1.running_var") == "stem.conv1.norm.running_var"
    assert detectron2_key("layer1.0.downsample.0.weight") == "res2.0.shortcut.weight"
    assert detectron2_key("layer4.2.bn3.bias") == "res5.2.conv3.norm.bias"
    assert detectron2_key("layer3.5.conv2.weight") == "res4.5.conv2.weight"
    # The structural key list the library checks exports against agrees with the reference file.
    assert detectron2_resnet_keys("resnet50") == ref


def test_detectron2_keys_basic_blocks():
    keys = detectron2_resnet_keys("resnet18")
    # BasicBlock: conv1/conv2 only; res2 keeps 64 channels so it has no shortcut, res3..res5 do.
    assert not any(".conv3." in k for k in keys)
    assert "res2.0.shortcut.weight" not in keys and "res3.0.shortcut.norm.running_mean" in keys
    mapped = {detectron2_key(k) for k in _meta_resnet_sd("resnet18")} - {None}
    assert mapped == set(keys)
    assert len(detectron2_resnet_keys("resnet101")) == 265 + 17 * 15  # 17 more bottlenecks in res4


def test_detectron2_unknown_name_is_an_error():
    with pytest.raises(ExportError, match="layer1.0.se.fc1.weight"):
        detectron2_key("layer1.0.se.fc1.weight")


def test_infer_arch_and_shape_check():
    for arch in ("resnet18", "resnet34", "resnet50", "resnet101"):
        sd = {k: v for k, v in _meta_resnet_sd(arch).items() if not k.startswith("fc.")}
        assert infer_arch(sd) == arch
        check_encoder(sd, arch)
    with torch.device("meta"):
        wide = torchvision.models.wide_resnet50_2().state_dict()  # resnet50's names, other widths
    assert infer_arch(wide) == "resnet50"
    with pytest.raises(ExportError, match="shape-mismatched"):
        check_encoder(wide, "resnet50")
    with pytest.raises(ExportError, match="not a torchvision ResNet"):
        infer_arch({"conv1.weight": torch.zeros(1), "layer1.0.conv1.weight": torch.zeros(1)})


# ----------------------------------------------------------------------------- exports


def test_torchvision_export_loads_with_only_fc_missing(r18_ckpt, tmp_path):
    ckpt, model = r18_ckpt
    out = tmp_path / "r18_tv.pth"
    res = export_weights(ckpt, "torchvision", out)
    assert res.arch == "resnet18" and res.source_kind == "pri3d-pretrain"
    assert res.missing == ["fc.weight", "fc.bias"] and res.extra == []
    tv = torchvision.models.resnet18(weights=None)
    missing, unexpected = tv.load_state_dict(torch.load(out, weights_only=True), strict=False)
    assert sorted(missing) == ["fc.bias", "fc.weight"] and unexpected == []
    # Same numbers, same function: torchvision's layer4 output equals the encoder's c5.
    tv.eval(), model.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        t = tv.layer4(tv.layer3(tv.layer2(tv.layer1(tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))))))
        c5 = model.encoder(x)[-1]
    assert torch.allclose(t, c5, atol=1e-6)
    assert int(tv.layer1[0].bn1.num_batches_tracked) == 7


def test_timm_export_loads_into_timm_resnet(r18_ckpt, tmp_path):
    timm = pytest.importorskip("timm")
    ckpt, model = r18_ckpt
    out = tmp_path / "r18_timm.pth"
    res = export_weights(ckpt, "timm", out)
    assert res.checked_against == "timm resnet18" and res.missing == ["fc.weight", "fc.bias"]
    m = timm.create_model("resnet18", pretrained=False)
    missing, unexpected = m.load_state_dict(torch.load(out, weights_only=True), strict=False)
    assert sorted(missing) == ["fc.bias", "fc.weight"] and unexpected == []
    assert torch.equal(m.layer3[1].bn2.running_var, model.encoder.layer3[1].bn2.running_var)
    # timm's own file loader, head removed: a strict, complete load (the README's recipe).
    m0 = timm.create_model("resnet18", pretrained=True, num_classes=0, pretrained_cfg_overlay={"file": str(out)})
    assert torch.equal(m0.conv1.weight, model.encoder.conv1.weight)


def test_detectron2_export_from_moco_file(tmp_path):
    """Any read_weights format converts: here a MoCo v2 checkpoint (module.encoder_q.* + MLP head)."""
    torch.manual_seed(0)
    tv = torchvision.models.resnet18(weights=None)
    _perturb_bn_stats(tv)
    moco = {"state_dict": {f"module.encoder_q.{k}": v for k, v in tv.state_dict().items() if not k.startswith("fc.")}}
    moco["state_dict"]["module.encoder_q.fc.0.weight"] = torch.zeros(4, 512)
    torch.save(moco, tmp_path / "moco.pth")
    out = tmp_path / "sub" / "r18.pkl"
    res = export_weights(tmp_path / "moco.pth", "detectron2", out)
    assert res.source_kind == "moco" and res.missing == [] and res.extra == []
    assert len(res.dropped) == 20 and all(k.endswith("num_batches_tracked") for k in res.dropped)
    with open(out, "rb") as f:
        obj = pickle.load(f, encoding="latin1")  # as detectron2's DetectionCheckpointer reads it
    assert obj["__author__"] == "pri3d" and obj["matching_heuristics"] is True
    assert set(obj) == {"model", "__author__", "matching_heuristics"}
    d2 = obj["model"]
    assert set(d2) == set(detectron2_resnet_keys("resnet18"))
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float32 for v in d2.values())
    np.testing.assert_array_equal(d2["stem.conv1.weight"], tv.conv1.weight.detach().numpy())
    np.testing.assert_array_equal(d2["stem.conv1.norm.running_var"], tv.bn1.running_var.numpy())
    np.testing.assert_array_equal(d2["res3.0.shortcut.norm.running_mean"], tv.layer2[0].downsample[1].running_mean)
    np.testing.assert_array_equal(d2["res5.1.conv2.norm.weight"], tv.layer4[1].bn2.weight.detach().numpy())
    assert not list(out.parent.glob(".*.tmp"))  # no temp file left behind


def test_unet_export_roundtrip(r18_ckpt, tmp_path):
    ckpt, model = r18_ckpt
    out = tmp_path / "unet.pth"
    res = export_weights(ckpt, "unet", out)
    assert res.feature_dim == 16 and res.missing == [] and res.extra == []
    obj = torch.load(out, weights_only=False)
    assert obj["format"] == "pri3d-unet" and obj["arch"] == "resnet18" and obj["feature_dim"] == 16
    assert set(obj["backbone"]) == set(model.state_dict())
    fresh = ResNetUNet("resnet18", 16)
    load_backbone(fresh, out)
    fresh.eval(), model.eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))
    # A unet export is itself a valid input (re-export to torchvision).
    assert export_weights(out, "torchvision", tmp_path / "again.pth").source_kind == "pri3d-unet"


# ----------------------------------------------------------------------------- errors and CLI


def test_export_errors(r18_ckpt, tmp_path):
    ckpt, _ = r18_ckpt
    with pytest.raises(ExportError, match="unknown export target 'onnx'"):
        export_weights(ckpt, "onnx", tmp_path / "x.pth")
    with pytest.raises(ExportError, match=r"\.pkl"):
        export_weights(ckpt, "detectron2", tmp_path / "x.pth")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InitError, match="junk.pt: unreadable"):
        export_weights(tmp_path / "junk.pt", "torchvision", tmp_path / "x.pth")
    torch.save({"optimizer": {}, "step": 3}, tmp_path / "nomodel.pt")
    with pytest.raises(InitError, match="nomodel.pt: unrecognised"):
        export_weights(tmp_path / "nomodel.pt", "torchvision", tmp_path / "x.pth")
    tv_only = tmp_path / "tv.pth"
    export_weights(ckpt, "torchvision", tv_only)
    with pytest.raises(ExportError, match="no UNet decoder"):
        export_weights(tv_only, "unet", tmp_path / "u.pth")
    with pytest.raises(ExportError, match="output is the input"):
        export_weights(tv_only, "timm", tv_only)
    assert issubclass(ExportError, DataError)  # the CLI prints it as a one-line error
    assert not (tmp_path / "x.pth").exists() and not (tmp_path / "u.pth").exists()


def test_cli_export(r18_ckpt, tmp_path, capsys):
    ckpt, _ = r18_ckpt
    out = tmp_path / "r18.pkl"
    assert main(["export", str(ckpt), "--to", "detectron2", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "100 tensors" in printed and "missing none; extra none" in printed
    assert "MODEL.RESNETS.DEPTH 18" in printed and out.is_file()
    assert main(["export", str(ckpt), "--to", "onnx", str(tmp_path / "x.pth")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pri3d export: error: unknown export target 'onnx'") and "Traceback" not in err
