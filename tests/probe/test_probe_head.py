"""The light heads: logistic regression separates separable classes, constant features give the
majority class; ridge recovers a linear map, constant features give the mean; standardisation is folded
into an affine map of raw features."""

import pytest
import torch

from pri3d.errors import DataError
from pri3d.probe.head import RIDGE_GRID, fit_logistic, fit_ridge, fit_ridge_cv, standardize_stats


def test_logistic_separates_one_hot_classes_with_unequal_scales():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 5, (600,), generator=g)
    X = torch.nn.functional.one_hot(y, 5).float() * torch.tensor([1.0, 10.0, 0.01, 3.0, 100.0])
    X = torch.cat([X, torch.randn(600, 3, generator=g)], 1)  # three noise channels
    head = fit_logistic(X, y, num_classes=7)  # two classes never seen
    assert (head(X).argmax(1) == y).all()
    assert head.weight.shape == (8, 7) and head.bias.shape == (7,)
    assert head.info["fit_pixels"] == 600


def test_logistic_on_constant_features_predicts_the_majority_class():
    y = torch.tensor([2] * 50 + [0] * 30 + [1] * 20)
    X = torch.full((100, 4), 3.5)
    head = fit_logistic(X, y, num_classes=3)
    assert head.info["channels_used"] == 0
    pred = head(torch.randn(10, 4)).argmax(1)  # the weights of dropped channels are zero
    assert (pred == 2).all()


def test_ridge_recovers_a_linear_map_and_the_mean():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(500, 6, generator=g) * torch.tensor([1, 5, 0.1, 2, 1, 1]) + 3
    W = torch.randn(6, 2, generator=g)
    Y = X @ W + torch.tensor([0.5, -2.0])
    head = fit_ridge(X, Y, lam=1e-9)
    assert torch.allclose(head(X), Y, atol=1e-3)
    const = fit_ridge(torch.ones(500, 6), Y[:, 0])
    assert torch.allclose(const(X)[:, 0], Y[:, 0].mean().expand(500), atol=1e-5)


def test_ridge_cv_picks_a_small_penalty_for_signal_and_a_large_one_for_noise():
    g = torch.Generator().manual_seed(2)
    frame = torch.arange(12).repeat_interleave(40)  # 12 frames x 40 pixels
    X = torch.randn(480, 30, generator=g)
    clean = fit_ridge_cv(X, X @ torch.randn(30, 1, generator=g), frame)
    assert clean.info["lambda"] == RIDGE_GRID[0]
    # targets constant per frame, features unrelated: only the mean generalises across frame blocks
    noise = fit_ridge_cv(X, torch.randn(12, generator=g)[frame], frame)
    assert noise.info["lambda"] >= 10.0
    assert set(noise.info["cv_mse"]) == {f"{v:g}" for v in RIDGE_GRID}
    few = fit_ridge_cv(X[:80], X[:80, 0], frame[:80])  # 2 frames < 3 folds: the fixed lambda
    assert "no cross-validation" in few.info["cv"] and few.info["lambda"] == 1e-3


def test_the_folded_head_equals_standardise_then_linear():
    X = torch.randn(200, 4) * 4 + 1
    mean, inv = standardize_stats(X)
    head = fit_ridge(X, X[:, :1] * 2 - X[:, 3:] + 1)
    fmap = torch.randn(4, 5, 6)
    out = head.apply_map(fmap)
    assert out.shape == (1, 5, 6)
    assert torch.allclose(out[:, 2, 3], head(fmap[:, 2, 3][None])[0], atol=1e-5)
    assert (inv > 0).all() and torch.allclose(mean, X.double().mean(0))


def test_bad_input():
    with pytest.raises(DataError, match="no fit pixels"):
        fit_ridge(torch.zeros(0, 3), torch.zeros(0))
    with pytest.raises(DataError, match="non-finite features"):
        fit_logistic(torch.tensor([[float("nan")], [1.0]]), torch.tensor([0, 1]), 2)
    with pytest.raises(ValueError, match="class ids"):
        fit_logistic(torch.ones(2, 1), torch.tensor([0, 3]), 2)
