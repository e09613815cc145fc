"""PointInfoNCE over sampled correspondences.

Given matched feature rows ``(f_a[i], f_b[i])`` grouped by pair, the loss of a pair with match set M is

    L = - 1/|M| sum_{i in M} log( exp(f_a[i] . f_b[i] / tau) / sum_{k in M} exp(f_a[i] . f_b[k] / tau) )

with L2-normalised features; the other matches of the same pair are the negatives. The official
Pri3D code averages both directions (a -> b and b -> a); ``symmetric=True`` (the default) does the
same. The batch loss is the mean over the pairs that were not skipped.

Differences from the official implementation, on purpose:

* matches are sampled **without replacement** by the dataset
  (:func:`pri3d.geometry.correspondences.sample_without_replacement`, ``sample_per_group``): the
  official ``np.random.choice(..., replace=True)`` for pairs with fewer than K matches duplicates
  rows, and a duplicate of the positive sits among the negatives;
* a pair with fewer than ``min_matches`` matches is skipped and counted, and a batch whose pairs are
  all skipped gives a finite zero loss that is still connected to the graph (DDP-safe);
* ``cross_pair_negatives=True`` uses the matches of every pair in the batch as negatives (one big
  ``N x N`` similarity matrix: memory grows with the square of the total number of matches).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["NCEResult", "PointInfoNCE", "point_info_nce"]


class NCEResult(NamedTuple):
    loss: torch.Tensor  # scalar, float32
    pairs_used: int
    pairs_skipped: int
    matches_used: int


def _group_layout(pair_index: torch.Tensor, num_pairs: int, min_matches: int):
    counts = (
        torch.bincount(pair_index, minlength=num_pairs)
        if pair_index.numel()
        else torch.zeros(num_pairs, dtype=torch.int64, device=pair_index.device)
    )
    keep_pair = counts >= min_matches
    return counts, keep_pair


def point_info_nce(
    feats_a: torch.Tensor,
    feats_b: torch.Tensor,
    pair_index: torch.Tensor | None = None,
    num_pairs: int | None = None,
    *,
    tau: float = 0.4,
    cross_pair_negatives: bool = False,
    min_matches: int = 2,
    symmetric: bool = True,
) -> NCEResult:
    """PointInfoNCE over matched rows.

    Args:
        feats_a, feats_b: ``(N, C)`` features; row ``i`` of A matches row ``i`` of B. Any float
            dtype (computed in float32). They are L2-normalised here.
        pair_index: ``(N,)`` int64 pair of each row in ``[0, num_pairs)``; None = one pair.
        num_pairs: number of pairs in the batch (pairs with no rows count as skipped); default
            ``pair_index.max() + 1``.
        tau: temperature (> 0).
        cross_pair_negatives: negatives from every pair of the batch instead of the same pair.
        min_matches: pairs with fewer matches are skipped (>= 1; a pair needs 2 matches to have a
            negative).
        symmetric: average the a->b and b->a directions (official behaviour).

    Returns:
        :class:`NCEResult`; ``loss`` is the mean over used pairs of each pair's mean row loss, or a
        graph-connected 0 when every pair is skipped.
    """
    if feats_a.shape != feats_b.shape or feats_a.dim() != 2:
        raise ValueError(
            f"feats_a and feats_b must both be (N, C), got {tuple(feats_a.shape)} and {tuple(feats_b.shape)}"
        )
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    if min_matches < 1:
        raise ValueError(f"min_matches must be >= 1, got {min_matches}")
    n = feats_a.shape[0]
    dev = feats_a.device
    if pair_index is None:
        pair_index = torch.zeros(n, dtype=torch.int64, device=dev)
    pair_index = pair_index.to(device=dev, dtype=torch.int64)
    if pair_index.shape != (n,):
        raise ValueError(f"pair_index must be ({n},), got {tuple(pair_index.shape)}")
    if num_pairs is None:
        num_pairs = int(pair_index.max()) + 1 if n else 0
    if n and (int(pair_index.min()) < 0 or int(pair_index.max()) >= num_pairs):
        raise ValueError(f"pair_index must lie in [0, {num_pairs})")

    counts, keep_pair = _group_layout(pair_index, num_pairs, min_matches)
    used = int(keep_pair.sum())
    zero = (feats_a.sum() + feats_b.sum()).float() * 0.0  # finite, graph-connected
    if used == 0:
        return NCEResult(zero, 0, num_pairs, 0)

    keep_row = keep_pair[pair_index]
    a = F.normalize(feats_a[keep_row].float(), dim=1)
    b = F.normalize(feats_b[keep_row].float(), dim=1)
    pidx = pair_index[keep_row]
    m = a.shape[0]

    if cross_pair_negatives:
        logits = a @ b.t() / tau  # (m, m)
        target = torch.arange(m, device=dev)
        loss_rows = F.cross_entropy(logits, target, reduction="none")
        if symmetric:
            loss_rows = 0.5 * (loss_rows + F.cross_entropy(logits.t(), target, reduction="none"))
        # per-pair mean, then mean over pairs (same weighting as the per-pair mode)
        new_id = torch.cumsum(keep_pair.long(), 0)[pidx] - 1
        per_pair = torch.zeros(used, device=dev).index_add_(0, new_id, loss_rows)
        per_pair = per_pair / counts[keep_pair].to(per_pair.dtype)
        return NCEResult(per_pair.mean(), used, num_pairs - used, m)

    # Per-pair negatives, batched: pad every pair to kmax rows; logits (P, kmax, kmax).
    order = torch.argsort(pidx, stable=True)
    a, b, pidx = a[order], b[order], pidx[order]
    new_id = torch.cumsum(keep_pair.long(), 0)[pidx] - 1  # 0..used-1
    cnt = counts[keep_pair]
    starts = torch.cumsum(cnt, 0) - cnt
    pos = torch.arange(m, device=dev) - starts[new_id]
    kmax = int(cnt.max())
    C = a.shape[1]
    A = a.new_zeros(used, kmax, C)
    Bm = b.new_zeros(used, kmax, C)
    A[new_id, pos] = a
    Bm[new_id, pos] = b
    logits = torch.bmm(A, Bm.transpose(1, 2)) / tau  # (P, kmax, kmax)
    valid = torch.arange(kmax, device=dev)[None, :] < cnt[:, None]  # (P, kmax)
    neg_inf = torch.finfo(logits.dtype).min
    pos_logit = torch.diagonal(logits, dim1=1, dim2=2)  # (P, kmax)
    row_lse = torch.logsumexp(logits.masked_fill(~valid[:, None, :], neg_inf), dim=2)
    row_loss = row_lse - pos_logit
    if symmetric:
        col_lse = torch.logsumexp(logits.masked_fill(~valid[:, :, None], neg_inf), dim=1)
        row_loss = 0.5 * (row_loss + (col_lse - pos_logit))
    row_loss = torch.where(valid, row_loss, torch.zeros_like(row_loss))
    per_pair = row_loss.sum(dim=1) / cnt.to(row_loss.dtype)
    return NCEResult(per_pair.mean(), used, num_pairs - used, m)


class PointInfoNCE(nn.Module):
    """Module wrapper of :func:`point_info_nce` holding its settings."""

    def __init__(
        self, tau: float = 0.4, *, cross_pair_negatives: bool = False, min_matches: int = 2, symmetric: bool = True
    ):
        super().__init__()
        if tau <= 0:
            raise ValueError(f"tau must be > 0, got {tau}")
        self.tau = tau
        self.cross_pair_negatives = cross_pair_negatives
        self.min_matches = min_matches
        self.symmetric = symmetric

    def forward(self, feats_a, feats_b, pair_index=None, num_pairs=None) -> NCEResult:
        return point_info_nce(
            feats_a,
            feats_b,
            pair_index,
            num_pairs,
            tau=self.tau,
            cross_pair_negatives=self.cross_pair_negatives,
            min_matches=self.min_matches,
            symmetric=self.symmetric,
        )

    def extra_repr(self) -> str:
        return (
            f"tau={self.tau}, cross_pair_negatives={self.cross_pair_negatives}, "
            f"min_matches={self.min_matches}, symmetric={self.symmetric}"
        )
