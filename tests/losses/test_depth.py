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


def test_depth_loss_gradient_terms_skip_the_image_border():
    """The Sobel filters zero-pad the image, so at the border the target's gradient (and normal) is as
    meaningless as next to a hole: a constant offset of a flat depth map has zero gradient error and
    identical normals everywhere the 3x3 neighbourhood is inside the image and valid."""
    target = torch.full((1, 8, 10), 2.0)
    pred = torch.full((1, 1, 8, 10), 2.1)
    log_half = torch.log(torch.tensor(0.5))
    expected = (torch.log(torch.tensor(0.1 + 0.5)) + 2 * log_half + 0.0) / 3
    torch.testing.assert_close(DepthLoss()(pred, target), expected, rtol=1e-5, atol=1e-5)
