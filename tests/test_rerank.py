"""Maximal marginal relevance: the plain ranking at trade-off 1, variety below it."""

from __future__ import annotations

import numpy as np
import pytest

from fashion_utils.recommend import rerank
from fashion_utils.recommend.similarity import SimilarityIndex, l2_normalize


def _brute_mmr(scores, vectors, k, lam):
    """MMR written the slow, obvious way."""
    picked = []
    for _ in range(min(k, len(scores))):
        best, best_gain = None, -np.inf
        for c in range(len(scores)):
            if c in picked:
                continue
            redundancy = max((float(vectors[c] @ vectors[p]) for p in picked), default=0.0)
            gain = lam * scores[c] - (1 - lam) * redundancy
            if gain > best_gain:
                best, best_gain = c, gain
        picked.append(best)
    return picked


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("lam", [0.0, 0.3, 0.7, 1.0])
def test_mmr_order_equals_the_obvious_implementation(seed, lam):
    rng = np.random.default_rng(seed)
    vectors = l2_normalize(rng.normal(size=(25, 6)))
    scores = vectors @ l2_normalize(rng.normal(size=6))
    order = rerank.mmr_order(scores, vectors, 7, trade_off=lam)
    assert order.tolist() == _brute_mmr(scores, vectors, 7, lam)
    assert len(set(order.tolist())) == 7


def test_trade_off_one_is_the_plain_ranking_and_lower_skips_copies():
    base = l2_normalize(np.array([[1.0, 0.1, 0], [1.0, 0.12, 0], [1.0, 0.11, 0], [0.6, 0.8, 0]]))
    scores = base @ l2_normalize(np.array([1.0, 0.2, 0]))
    assert rerank.mmr_order(scores, base, 3, trade_off=1.0).tolist() == np.argsort(-scores)[:3].tolist()
    varied = rerank.mmr_order(scores, base, 2, trade_off=0.5).tolist()
    assert varied[0] == int(np.argmax(scores)) and varied[1] == 3  # not a second copy
    assert rerank.mmr_order(scores, base, 10).shape == (4,)  # all, when fewer than k


def test_diversify_neighbours_reranks_each_querys_pool_and_pads():
    rng = np.random.default_rng(1)
    index = SimilarityIndex([str(i) for i in range(40)], rng.normal(size=(40, 8)))
    pos, scores = index.query_many(["0", "1"], 12)
    out = rerank.diversify_neighbours(index, pos, scores, 5, trade_off=0.5)
    assert out.shape == (2, 5) and all(set(r) <= set(p) for r, p in zip(out, pos))
    plain = rerank.diversify_neighbours(index, pos, scores, 5, trade_off=1.0)
    assert (plain == pos[:, :5]).all()
    assert (rerank.mean_pairwise_similarity(index.vectors, out)
            <= rerank.mean_pairwise_similarity(index.vectors, plain))
    short = pos.copy()
    short[:, 3:] = -1  # only 3 candidates
    assert (rerank.diversify_neighbours(index, short, scores, 5)[:, 3:] == -1).all()


def test_mean_pairwise_similarity():
    vectors = np.array([[1.0, 0], [0, 1.0], [1.0, 0]])
    assert rerank.mean_pairwise_similarity(vectors, [[0, 2]]) == pytest.approx(1.0)
    assert rerank.mean_pairwise_similarity(vectors, [[0, 1], [0, -1]]) == pytest.approx(0.0)
    assert np.isnan(rerank.mean_pairwise_similarity(vectors, [[0, -1]]))


@pytest.mark.parametrize("bad", [1.5, -0.1, "0.5", True, None])
def test_a_bad_trade_off_is_echoed(bad):
    with pytest.raises(ValueError, match=f"trade_off={bad!r}"):
        rerank.mmr_order([1.0], [[1.0]], 1, trade_off=bad)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="shapes"):
        rerank.mmr_order([1.0, 0.5], [[1.0]], 1)
    with pytest.raises(ValueError, match="one shape"):
        rerank.diversify_neighbours(None, np.zeros((2, 3)), np.zeros((2, 4)), 2)
