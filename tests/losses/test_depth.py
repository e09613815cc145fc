import torch

from pri3d.losses.depth import DepthLoss


def test_depth_loss_minimal_at_target_and_ignores_invalid():
    torch.manual_seed(0)
    target = 1 + torch.rand(2, 16, 20)
    target[:, :4] = 0  # invalid rows
    loss = DepthLoss()
    perfect = loss(target.clone()[:, None], target)
    worse = loss(target[:, None] + 0.3, target)
    assert float(perfect) < float(worse)
    # invalid pixels do not matter: change the prediction there only
    pred = target.clone()
    pred[:, :2] = 50.0
    assert torch.allclose(loss(pred[:, None], target), perfect)


def test_depth_loss_all_invalid_is_finite_zero():
    pred = torch.randn(1, 1, 8, 8, requires_grad=True)
    out = DepthLoss()(pred, torch.zeros(1, 8, 8))
    out.backward()
    assert float(out.detach()) == 0.0 and torch.isfinite(pred.grad).all()
