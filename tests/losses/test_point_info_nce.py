import math

import pytest
import torch

from pri3d.losses.point_info_nce import PointInfoNCE, point_info_nce


def _reference(fa, fb, pair, num_pairs, tau, min_matches, symmetric, cross):
    """Naive loops over pairs and rows, straight from the formula."""
    fa = [[x / math.sqrt(sum(y * y for y in v)) for x in v] for v in fa.tolist()]
    fb = [[x / math.sqrt(sum(y * y for y in v)) for x in v] for v in fb.tolist()]
    pair = pair.tolist()

    def dot(u, v):
        return sum(x * y for x, y in zip(u, v))

    groups = {p: [i for i in range(len(pair)) if pair[i] == p] for p in range(num_pairs)}
    used = {p: rows for p, rows in groups.items() if len(rows) >= min_matches}
    all_rows = [i for rows in used.values() for i in rows]
    per_pair = []
    for rows in used.values():
        negs = all_rows if cross else rows
        total = 0.0
        for i in rows:
            ab = -math.log(math.exp(dot(fa[i], fb[i]) / tau) / sum(math.exp(dot(fa[i], fb[k]) / tau) for k in negs))
            if symmetric:
                ba = -math.log(math.exp(dot(fb[i], fa[i]) / tau) / sum(math.exp(dot(fb[i], fa[k]) / tau) for k in negs))
                ab = 0.5 * (ab + ba)
            total += ab
        per_pair.append(total / len(rows))
    return sum(per_pair) / len(per_pair), len(used)


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("cross", [False, True])
def test_matches_naive_reference(symmetric, cross):
    g = torch.Generator().manual_seed(0)
    counts = [5, 1, 0, 7, 3]  # pair 1 (one match) and pair 2 (none) are skipped with min_matches=2
    pair = torch.cat([torch.full((c,), i) for i, c in enumerate(counts)])
    pair = pair[torch.randperm(len(pair), generator=g)]  # rows need not be grouped
    fa = torch.randn(len(pair), 6, generator=g, dtype=torch.float64)
    fb = fa + 0.5 * torch.randn(len(pair), 6, generator=g, dtype=torch.float64)
    r = point_info_nce(
        fa, fb, pair, len(counts), tau=0.4, min_matches=2, symmetric=symmetric, cross_pair_negatives=cross
    )
    ref, used = _reference(fa, fb, pair, len(counts), 0.4, 2, symmetric, cross)
    assert r.pairs_used == used == 3 and r.pairs_skipped == 2 and r.matches_used == 15
    assert float(r.loss) == pytest.approx(ref, rel=1e-5)


def test_perfect_features_give_low_loss_and_random_about_log_k():
    torch.manual_seed(0)
    k = 64
    f = torch.randn(k, 32)
    good = point_info_nce(f, f.clone(), tau=0.05).loss
    rand = point_info_nce(torch.randn(k, 32), torch.randn(k, 32), tau=100.0).loss
    assert float(good) < 0.05
    assert float(rand) == pytest.approx(math.log(k), rel=0.02)


def test_all_pairs_skipped_is_finite_zero_and_backpropagates():
    fa = torch.randn(1, 4, requires_grad=True)
    fb = torch.randn(1, 4, requires_grad=True)
    r = PointInfoNCE(0.4, min_matches=2)(fa, fb, torch.zeros(1, dtype=torch.long), 3)
    assert float(r.loss.detach()) == 0.0 and r.pairs_used == 0 and r.pairs_skipped == 3
    r.loss.backward()
    assert torch.equal(fa.grad, torch.zeros_like(fa))
    empty = point_info_nce(torch.zeros(0, 4), torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), 2)
    assert torch.isfinite(empty.loss) and empty.pairs_skipped == 2


def test_zero_feature_vectors_stay_finite():
    fa = torch.zeros(4, 3, requires_grad=True)
    fb = torch.randn(4, 3)
    r = point_info_nce(fa, fb)
    r.loss.backward()
    assert torch.isfinite(r.loss) and torch.isfinite(fa.grad).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="tau"):
        point_info_nce(torch.randn(2, 3), torch.randn(2, 3), tau=0)
    with pytest.raises(ValueError, match="pair_index"):
        point_info_nce(torch.randn(2, 3), torch.randn(2, 3), torch.tensor([0, 5]), 2)
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        point_info_nce(torch.randn(2, 3), torch.randn(3, 3))
