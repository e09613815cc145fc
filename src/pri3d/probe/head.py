"""The one way every probe fits its light head: a linear map on standardised, pixel-subsampled features.

* **Standardisation** (BatchNorm-style, as DINOv2's linear heads): every channel is centred and scaled
  by the mean and standard deviation of the fit pixels. A channel that is constant on the fit set
  (standard deviation below ``1e-6``) is dropped (scale 0), so constant features give a head that
  predicts its bias alone.
* **Classification** (:func:`fit_logistic`): multinomial logistic regression (softmax cross-entropy)
  with a small fixed L2 penalty, minimised full-batch with L-BFGS (strong-Wolfe line search) from
  zero weights, for a fixed number of iterations. Chosen over closed-form ridge on one-hot targets
  because least squares on indicator targets is not a classifier: with the class imbalance of indoor
  scenes (wall and floor hold most pixels) its scores favour the frequent classes and its decision
  boundaries are not the Bayes ones even for separable features; the logistic loss is what DINOv2's
  and Probe3D's linear probes train (with SGD; full-batch L-BFGS reaches the same convex optimum
  deterministically, in seconds for ~1e5 pixels x 1e3 channels on 2 cores).
* **Regression** (:func:`fit_ridge`): ridge regression in closed form,
  ``W = (Z^T Z / N + lambda I)^-1 Z^T (Y - mean Y) / N`` on the standardised features ``Z``, intercept
  ``mean Y``. :func:`fit_ridge_cv`, what the depth and normal probes use, picks ``lambda`` from the fixed
  grid :data:`RIDGE_GRID` (1e-3 ... 1e3, per pixel on unit-variance channels) by 3-fold cross-validation
  over **contiguous blocks of fit frames** (frames in dataset order, so a fold is mostly other scenes or
  another stretch of the capture, never the neighbours of a training frame), then refits on every fit
  pixel. Why not one small fixed lambda: pixels of one frame are strongly correlated, so ~1e4 fit pixels
  are far fewer independent samples than the ~1e3 channels; measured on the synthetic set (30 fit frames
  of 3 rooms, 10 test frames of a 4th, random-init ResNet-18, 992 channels; test scored on 4000 random
  valid pixels per frame), the depth probe's test abs_rel was 0.240 at lambda 1e-3, 0.190 at 0.1, 0.163
  at 1 and 0.176 at 10 (the constant floor on all test pixels: 0.172), while its fit abs_rel rose from
  0.086 to 0.212. The grid and the folds are the same for every
  backbone; only fit data choose, never the test frames. The chosen lambda is in the report.

A fitted :class:`LinearHead` holds the standardisation folded into its weights, so it is an affine map
of raw features: ``head(x) = x @ weight + bias``. Affine maps commute with bilinear interpolation,
which is why the probes may apply it on the feature grid and upsample the predictions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pri3d.errors import DataError

__all__ = [
    "LinearHead",
    "standardize_stats",
    "fit_logistic",
    "fit_ridge",
    "fit_ridge_cv",
    "RIDGE_LAMBDA",
    "RIDGE_GRID",
    "LOGISTIC_L2",
]

RIDGE_LAMBDA = 1e-3
RIDGE_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)
RIDGE_FOLDS = 3
LOGISTIC_L2 = 1e-4
LOGISTIC_ITERS = 100
_MIN_STD = 1e-6


@dataclass
class LinearHead:
    """``x (N, C) -> x @ weight + bias (N, K)``, standardisation included.

    Attributes:
        weight: ``(C, K)`` float32. bias: ``(K,)`` float32.
        info: how it was fitted (solver, iterations, final loss, ...), for reports.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    info: dict

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() @ self.weight + self.bias

    def apply_map(self, fmap: torch.Tensor) -> torch.Tensor:
        """``(C, h, w)`` features -> ``(K, h, w)`` outputs."""
        C, h, w = fmap.shape
        return (self(fmap.reshape(C, -1).t())).t().reshape(-1, h, w)


def standardize_stats(X: torch.Tensor, chunk: int = 16384) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean (C,), inv_std (C,))`` of ``X (N, C)`` in float64 (accumulated over row chunks, so no float64
    copy of ``X`` is made); ``inv_std`` is 0 for constant channels."""
    n = X.shape[0]
    mean = sum(X[i : i + chunk].double().sum(0) for i in range(0, n, chunk)) / n
    var = sum(((X[i : i + chunk].double() - mean) ** 2).sum(0) for i in range(0, n, chunk)) / n
    std = var.sqrt()
    inv = torch.where(std > _MIN_STD, 1.0 / std.clamp_min(_MIN_STD), torch.zeros_like(std))
    return mean, inv


def _standardize(X: torch.Tensor, mean: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
    """``(X - mean) * inv`` in float32 (features are float32; the statistics are float64)."""
    return (X.float() - mean.float()) * inv.float()


def _fold(W: torch.Tensor, b: torch.Tensor, mean: torch.Tensor, inv: torch.Tensor, info: dict) -> LinearHead:
    """Head on standardised features ``((x - mean) * inv) @ W + b`` as an affine map of raw ``x``."""
    W = W.double()
    Wr = inv[:, None] * W
    br = b.double() - mean @ Wr
    return LinearHead(Wr.float(), br.float(), info)


def _check(X: torch.Tensor, n_targets: int, what: str) -> None:
    if X.dim() != 2 or X.shape[0] == 0:
        raise DataError(f"{what}: no fit pixels (features {tuple(X.shape)})")
    if X.shape[0] != n_targets:
        raise ValueError(f"{what}: {X.shape[0]} feature rows but {n_targets} targets")
    if not torch.isfinite(X).all():
        raise DataError(f"{what}: non-finite features (the backbone produced NaN/inf)")


def fit_logistic(
    X: torch.Tensor, y: torch.Tensor, num_classes: int, *, l2: float = LOGISTIC_L2, max_iter: int = LOGISTIC_ITERS
) -> LinearHead:
    """Multinomial logistic regression, full-batch L-BFGS (see the module docstring).

    Args:
        X: ``(N, C)`` features. y: ``(N,)`` class ids in ``0..num_classes-1``.
        l2: penalty ``l2 / 2 * |W|^2`` added to the mean cross-entropy (the bias is not penalised).
        max_iter: L-BFGS iterations (function evaluations are capped at 1.25x that).
    """
    _check(X, len(y), "logistic probe")
    y = y.long()
    if int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise ValueError(f"class ids outside 0..{num_classes - 1}")
    mean, inv = standardize_stats(X)
    Z = _standardize(X, mean, inv)
    W = torch.zeros(Z.shape[1], num_classes, requires_grad=True)
    # Start from the log class frequencies, so that constant features are at the optimum already.
    counts = torch.bincount(y, minlength=num_classes).double()
    b = torch.log((counts + 1e-3) / (counts.sum() + 1e-3 * num_classes)).float().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [W, b],
        lr=1.0,
        max_iter=max_iter,
        max_eval=int(max_iter * 1.25),
        history_size=20,
        tolerance_grad=1e-7,
        tolerance_change=1e-10,
        line_search_fn="strong_wolfe",
    )
    evals = [0]

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(Z @ W + b, y) + 0.5 * l2 * (W * W).sum()
        loss.backward()
        evals[0] += 1
        return loss

    with torch.enable_grad():
        opt.step(closure)
        final = float(closure().detach())
    if not torch.isfinite(W).all() or not torch.isfinite(b).all():
        raise DataError("logistic probe: the fit diverged (non-finite weights)")
    info = {
        "head": "multinomial logistic regression (full-batch L-BFGS)",
        "l2": l2,
        "max_iter": max_iter,
        "evaluations": evals[0],
        "final_loss": final,
        "fit_pixels": int(len(y)),
        "channels_used": int((inv > 0).sum()),
    }
    return _fold(W.detach(), b.detach(), mean, inv, info)


def fit_ridge(X: torch.Tensor, Y: torch.Tensor, *, lam: float = RIDGE_LAMBDA) -> LinearHead:
    """Ridge regression in closed form (see the module docstring).

    Args:
        X: ``(N, C)`` features. Y: ``(N, K)`` (or ``(N,)``) targets.
        lam: ridge penalty per pixel on unit-variance channels.
    """
    if Y.dim() == 1:
        Y = Y[:, None]
    _check(X, len(Y), "ridge probe")
    if not torch.isfinite(Y).all():
        raise ValueError("ridge probe: non-finite targets")
    mean, inv = standardize_stats(X)
    Z = _standardize(X, mean, inv)
    N = Z.shape[0]
    A = (Z.t() @ Z).double() / N  # float32 product (fast), solved in float64
    A += lam * torch.eye(A.shape[0], dtype=A.dtype)
    y_mean = Y.double().mean(0)
    rhs = (Z.t() @ (Y.double() - y_mean).float()).double() / N
    W = torch.linalg.solve(A, rhs)
    info = {
        "head": "ridge regression (closed form)",
        "lambda": lam,
        "fit_pixels": int(N),
        "channels_used": int((inv > 0).sum()),
    }
    return _fold(W, y_mean, mean, inv, info)


def _ridge_solutions(Z: torch.Tensor, Y: torch.Tensor, lams) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Ridge weights for every lambda from one eigendecomposition of ``Z^T Z / N``; returns them and
    ``mean Y``."""
    N = Z.shape[0]
    A = (Z.t() @ Z).double() / N
    evals, V = torch.linalg.eigh(A)
    y_mean = Y.double().mean(0)
    rhs = V.t() @ ((Z.t() @ (Y.double() - y_mean).float()).double() / N)
    return [V @ (rhs / (evals.clamp_min(0) + lam)[:, None]) for lam in lams], y_mean


def fit_ridge_cv(
    X: torch.Tensor, Y: torch.Tensor, frame: torch.Tensor, *, grid=RIDGE_GRID, folds: int = RIDGE_FOLDS
) -> LinearHead:
    """Ridge regression with lambda chosen by cross-validation over blocks of frames (module docstring).

    Args:
        X: ``(N, C)`` features. Y: ``(N, K)`` (or ``(N,)``) targets.
        frame: ``(N,)`` int, the fit frame (position in dataset order) each row comes from.
        grid: candidate lambdas. folds: number of contiguous blocks of frames.

    With fewer than ``folds`` frames, falls back to :func:`fit_ridge` with :data:`RIDGE_LAMBDA`.
    """
    if Y.dim() == 1:
        Y = Y[:, None]
    _check(X, len(Y), "ridge probe")
    frame = torch.as_tensor(frame).long()
    ids = torch.unique(frame)
    if len(ids) < folds:
        head = fit_ridge(X, Y)
        head.info["cv"] = f"no cross-validation ({len(ids)} fit frames < {folds})"
        return head
    rank = torch.searchsorted(ids, frame)  # 0..F-1 in dataset order
    fold = rank * folds // len(ids)
    errors = torch.zeros(len(grid), dtype=torch.float64)
    for k in range(folds):
        tr, va = fold != k, fold == k
        mean, inv = standardize_stats(X[tr])
        Ztr = _standardize(X[tr], mean, inv)
        Zva = _standardize(X[va], mean, inv)
        Ws, y_mean = _ridge_solutions(Ztr, Y[tr], grid)
        for j, W in enumerate(Ws):
            pred = Zva.double() @ W + y_mean
            errors[j] += ((pred - Y[va].double()) ** 2).sum(1).mean() / folds
    best = int(torch.argmin(errors))
    head = fit_ridge(X, Y, lam=float(grid[best]))
    head.info.update(
        cv=f"{folds}-fold over contiguous blocks of {len(ids)} fit frames",
        cv_mse={f"{lam:g}": float(e) for lam, e in zip(grid, errors)},
    )
    return head
