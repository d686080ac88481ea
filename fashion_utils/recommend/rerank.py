"""Re-ranking a similarity search's candidates for variety: maximal marginal relevance.

MMR (Carbonell & Goldstein, 1998) builds the top k one pick at a time: each step takes the
candidate with the best ``trade_off * sim(query, c) - (1 - trade_off) * max sim(c, picked)``.
``trade_off=1`` is the plain ranking; lower values give up some similarity to the query for
results that differ from each other (a shirt in four colours instead of one colour four times).
Vectors are unit rows, so similarities are dot products.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from fashion_utils.checks import positive_int

#: The explorer's "diversify" trade-off and notebook 05's measured one.
DEFAULT_TRADE_OFF = 0.7
#: Candidates per result re-ranked (the plain top ``POOL_FACTOR * k``).
POOL_FACTOR = 4


def check_trade_off(value: Any) -> float:
    """``value`` as a float in [0, 1], or a ``ValueError`` that echoes it."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) \
            or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"trade_off must be a number in [0, 1]. Received: trade_off={value!r}")
    return float(value)


def mmr_order(query_scores: Any, candidates: Any, k: int, *,
              trade_off: float = DEFAULT_TRADE_OFF) -> np.ndarray:
    """The positions (into ``candidates``) of the k picked by MMR, in pick order.

    Args:
        query_scores: ``(C,)`` similarity of each candidate to the query.
        candidates: ``(C, D)`` unit vectors of the candidates.
        k: how many to pick (all ``C`` when fewer).
        trade_off: 1 = the plain ranking by ``query_scores``; 0 = variety only (after the first).

    Returns:
        ``(min(k, C),)`` int64 positions.
    """
    k = positive_int("k", k)
    lam = check_trade_off(trade_off)
    scores = np.asarray(query_scores, dtype=np.float64)
    vecs = np.asarray(candidates, dtype=np.float32)
    if vecs.ndim != 2 or scores.shape != (len(vecs),):
        raise ValueError(f"query_scores must be (C,) and candidates (C, D). Received: "
                         f"shapes {scores.shape} and {vecs.shape}")
    n = min(k, len(vecs))
    picked = np.empty(n, dtype=np.int64)
    closest = np.full(len(vecs), -np.inf)  # each candidate's highest similarity to a pick
    free = np.ones(len(vecs), dtype=bool)
    for step in range(n):
        gain = lam * scores - (1.0 - lam) * (closest if step else 0.0)
        best = int(np.argmax(np.where(free, gain, -np.inf)))
        picked[step], free[best] = best, False
        closest = np.maximum(closest, vecs @ vecs[best])
    return picked


def diversify_neighbours(index: Any, positions: Any, scores: Any, k: int, *,
                         trade_off: float = DEFAULT_TRADE_OFF) -> np.ndarray:
    """MMR over each query's plain candidates (``index.query_many`` output, best first).

    Args:
        index: the index the candidates come from (its stored unit vectors are compared).
        positions, scores: ``(Q, C)`` candidate rows and their query similarities (``-1`` /
            NaN where there are fewer).
        k: results per query.
        trade_off: as in :func:`mmr_order`.

    Returns:
        ``(Q, k)`` positions into the index, ``-1`` where fewer than k candidates exist.
    """
    pos = np.asarray(positions, dtype=np.int64)
    sc = np.asarray(scores, dtype=np.float64)
    if pos.ndim != 2 or pos.shape != sc.shape:
        raise ValueError(f"positions and scores must be (Q, C) arrays of one shape. Received: "
                         f"{pos.shape} and {sc.shape}")
    vectors = index.vectors
    out = np.full((len(pos), positive_int("k", k)), -1, dtype=np.int64)
    for q, (row, row_scores) in enumerate(zip(pos, sc)):
        ok = row >= 0
        order = mmr_order(row_scores[ok], vectors[row[ok]], k, trade_off=trade_off)
        out[q, :len(order)] = row[ok][order]
    return out


def mean_pairwise_similarity(vectors: Any, neighbours: Any) -> float:
    """The mean cosine similarity between two results of one list, over all lists.

    Lower means more varied lists (1 - this is the "intra-list diversity"). Lists with fewer
    than two results are left out.
    """
    vecs = np.asarray(vectors, dtype=np.float32)
    nb = np.asarray(neighbours, dtype=np.int64)
    if nb.ndim != 2:
        raise ValueError(f"neighbours must be (Q, k). Received: shape={nb.shape}")
    means = []
    for row in nb:
        row = row[row >= 0]
        if len(row) < 2:
            continue
        sims = vecs[row] @ vecs[row].T
        means.append((sims.sum() - np.trace(sims)) / (len(row) * (len(row) - 1)))
    return float(np.mean(means)) if means else float("nan")


def diversify_results(index: Any, ids: Sequence[Any], scores: Sequence[float],
                      k: int, *, trade_off: float = DEFAULT_TRADE_OFF) -> np.ndarray:
    """MMR over one query's ranked results (ids in ``index``, their query similarities): the
    positions (into ``ids``) to show, in order."""
    vectors = np.stack([index.vector(i) for i in ids]) if len(ids) else np.empty((0, index.dim))
    return mmr_order(np.asarray(scores, dtype=np.float64), vectors, k, trade_off=trade_off)
