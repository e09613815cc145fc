import pytest
import torch
import torchvision
from dsfixtures import one_thread  # noqa: F401  (pytest fixture)

from pri3d.downstream.detection import DetectTask, build_maskrcnn
from pri3d.downstream.semseg import SemSegTask, SemSegUNet, build_semseg_model
from pri3d.errors import InitError
from pri3d.models.resnet_unet import ResNetUNet


@pytest.fixture(scope="module")
def pri3d_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    net = ResNetUNet("resnet18", feature_dim=32)
    for p in net.parameters():
        p.data.normal_()
    path = tmp_path_factory.mktemp("ck") / "pretrain.pt"
    torch.save({"format": "pri3d-pretrain", "backbone": net.state_dict(), "arch": "resnet18", "feature_dim": 32}, path)
    return net, path


def test_unet_transfers_encoder_and_decoder(pri3d_ckpt):
    net, path = pri3d_ckpt
    model, desc = build_semseg_model("unet", "resnet18", 5, str(path))
    assert "encoder+decoder" in desc and model.feature_dim == 32
    for k, v in net.state_dict().items():
        if not k.startswith("decoder.conv0."):  # the pre-training's last 1x1 conv: replaced by the classifier
            assert torch.equal(model.backbone.state_dict()[k], v), k
    assert model.classifier.out_channels == 5
    out = model(torch.randn(2, 3, 48, 64))
    assert out.shape == (2, 5, 48, 64)
    enc_only, desc = build_semseg_model("unet", "resnet18", 5, str(path), transfer="encoder")
    assert "decoder random" in desc
    assert torch.equal(enc_only.backbone.encoder.conv1.weight, net.encoder.conv1.weight)
    assert not torch.equal(enc_only.backbone.decoder.up1.conv1.weight, net.decoder.up1.conv1.weight)


def test_unet_classifier_replaces_the_last_conv_as_the_official_model(pri3d_ckpt):
    """Official Semantic2D: Res18UNet(nclasses) loaded with load_state_with_same_shape. Every pre-trained
    tensor whose shape matches is loaded; the decoder's last 1x1 conv (feature projection, 32 -> 32) does
    not match (classes x 32) and is the classifier, reading the last up-projection (32 channels)."""
    net, path = pri3d_ckpt
    model, _ = build_semseg_model("unet", "resnet18", 5, str(path))
    official = ResNetUNet("resnet18", feature_dim=5)  # conv0 = the classifier
    own = official.state_dict()
    same_shape = {k: v for k, v in net.state_dict().items() if k in own and v.shape == own[k].shape}
    assert set(own) - set(same_shape) == {"decoder.conv0.weight", "decoder.conv0.bias"}
    got = model.backbone.state_dict()
    assert {k: tuple(v.shape) for k, v in got.items()} == {k: tuple(v.shape) for k, v in own.items()}
    for k, v in same_shape.items():
        assert torch.equal(got[k], v), k
    # scratch has exactly the same layers (no extra 64-channel projection)
    scratch, _ = build_semseg_model("unet", "resnet18", 5, "scratch")
    assert {k: v.shape for k, v in scratch.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    # logits = classifier(last up-projection output), upsampled
    model.eval()
    x = torch.randn(1, 3, 48, 64)
    with torch.no_grad():
        _, hidden = net.eval().decoder(net.encoder(x), return_hidden=True)
        ref = torch.nn.functional.interpolate(
            model.classifier(hidden), size=(48, 64), mode="bilinear", align_corners=False
        )
        torch.testing.assert_close(model(x), ref)


def test_finetuned_backbone_entry_forms_a_resnet_unet_of_its_feature_dim(pri3d_ckpt):
    from pri3d.downstream.config import FinetuneConfig
    from pri3d.downstream.semseg import SemSegTask

    model, _ = build_semseg_model("unet", "resnet18", 5, str(pri3d_ckpt[1]))
    extras = SemSegTask(FinetuneConfig()).checkpoint_extras(model)
    ResNetUNet(extras["arch"], extras["feature_dim"]).load_state_dict(extras["backbone"])  # strict


def test_semseg_unet_upgrades_the_earlier_stacked_classifier_layout():
    torch.manual_seed(0)
    net = ResNetUNet("resnet18", feature_dim=64).eval()
    classifier = torch.nn.Conv2d(64, 5, 1)
    legacy = {
        **{f"backbone.{k}": v for k, v in net.state_dict().items()},
        **{f"classifier.{k}": v for k, v in classifier.state_dict().items()},
    }
    model = SemSegUNet("resnet18", 5)
    model.load_state_dict(SemSegUNet.upgrade_state_dict(legacy))
    x = torch.randn(1, 3, 48, 64)
    with torch.no_grad():
        ref = torch.nn.functional.interpolate(classifier(net(x)), size=(48, 64), mode="bilinear", align_corners=False)
        torch.testing.assert_close(model.eval()(x), ref, rtol=1e-4, atol=1e-4)


def test_deeplab_transfers_encoder(pri3d_ckpt):
    net, path = pri3d_ckpt
    model, desc = build_semseg_model("deeplabv3", "resnet18", 4, str(path))
    assert torch.equal(model.encoder.layer3[0].conv1.weight, net.encoder.layer3[0].conv1.weight)
    model.eval()
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 4, 64, 64)


def test_maskrcnn_transfers_encoder_only(pri3d_ckpt):
    net, path = pri3d_ckpt
    model, desc = build_maskrcnn("resnet18", 18, str(path), image_size=(64, 80), fpn_channels=32)
    body = model.backbone.body
    assert "frozen BN" in desc and "3 trainable" in desc
    assert torch.equal(body.layer2[0].conv1.weight, net.encoder.layer2[0].conv1.weight)
    assert torch.equal(body.bn1.running_var, net.encoder.bn1.running_var)
    assert not body.layer1[0].conv1.weight.requires_grad and body.layer4[0].conv1.weight.requires_grad
    assert model.roi_heads.box_predictor.cls_score.out_features == 19


def test_torchvision_resnet_init_for_maskrcnn(tmp_path):
    tv = torchvision.models.resnet18(weights=None)
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    model, desc = build_maskrcnn(
        "resnet18", 3, str(tmp_path / "tv.pth"), image_size=(64, 80), fpn_channels=32, norm="bn"
    )
    assert "torchvision" in desc and torch.equal(model.backbone.body.conv1.weight, tv.conv1.weight)


def test_checkpoint_of_a_different_backbone_lists_mismatched_keys(tmp_path):
    r34 = ResNetUNet("resnet34", feature_dim=16)
    torch.save({"format": "pri3d-pretrain", "backbone": r34.state_dict(), "arch": "resnet34"}, tmp_path / "r34.pt")
    with pytest.raises(InitError, match=r"different backbone\?.*unexpected: .*layer1\.2"):
        build_semseg_model("unet", "resnet18", 5, str(tmp_path / "r34.pt"))
    with pytest.raises(InitError, match="layer"):
        build_maskrcnn("resnet18", 3, str(tmp_path / "r34.pt"), image_size=(64, 80))
    r50 = torchvision.models.resnet50(weights=None)
    torch.save(r50.state_dict(), tmp_path / "r50.pth")
    with pytest.raises(InitError, match="shape-mismatched: .*conv1.weight"):
        build_semseg_model("deeplabv3", "resnet18", 5, str(tmp_path / "r50.pth"))


def test_every_trainable_parameter_gets_a_gradient_so_ddp_needs_no_unused_parameter_search():
    """Both tasks run DDP with ``find_unused_parameters=False`` (as torchvision's detection reference
    does): a parameter without a gradient would make DDP fail on the next step. Mask R-CNN keeps its
    mask head in the graph even on images without instances (its loss is ``mask_logits.sum() * 0``)."""

    def without_grad(model):
        return [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]

    torch.manual_seed(0)
    model, _ = build_maskrcnn("resnet18", 3, image_size=(64, 80), fpn_channels=32)
    model.train()
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    empty["masks"] = torch.zeros(0, 64, 80, dtype=torch.uint8)
    sum(model([torch.rand(3, 64, 80)], [empty]).values()).backward()
    assert without_grad(model) == []
    assert any(p.grad is not None for n, p in model.named_parameters() if n.startswith("roi_heads.mask_"))
    assert not DetectTask.find_unused_parameters

    net, _ = build_semseg_model("unet", "resnet18", 5)
    net.train()
    torch.nn.functional.cross_entropy(net(torch.randn(2, 3, 64, 64)), torch.randint(0, 5, (2, 64, 64))).backward()
    assert without_grad(net) == []
    assert not SemSegTask.find_unused_parameters
