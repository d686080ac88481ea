"""Retrieval metrics and the evaluation queries of the recommender.

:func:`precision_at_k` and :func:`mean_average_precision_at_k` take a boolean relevance
matrix, so they can be checked by hand; :func:`evaluate_neighbours` turns neighbour lists into
a table of precision@k and mAP@k per label column, and :func:`random_neighbours` gives the
chance baseline.
"""

from __future__ import annotations
import os
from pathlib import Path
from typing import Any, Sequence
import numpy as np
import pandas as pd
from fashion_utils.checks import positive_int
from fashion_utils.config import SEED
from fashion_utils.similarity import SimilarityIndex


# --------------------------------------------------------------------------- metrics


def _relevance(relevance: Any, k: int | None) -> tuple[np.ndarray, int]:
    """The relevance matrix as booleans, and the cut-off k (default: every column)."""
    rel = np.asarray(relevance)
    if rel.ndim != 2:
        raise ValueError(f"relevance must be a (queries, k) matrix. Received: shape={rel.shape}")
    k = rel.shape[1] if k is None else positive_int("k", k)
    if k > rel.shape[1]:
        raise ValueError(f"k={k} exceeds the {rel.shape[1]} neighbours given")
    return rel.astype(bool), k


def precision_at_k(relevance: Any, *, k: int | None = None) -> float:
    """Mean over queries of the fraction of the first k neighbours that are relevant.

    Args:
        relevance: ``(Q, K)`` booleans, ``True`` where the i-th neighbour is relevant (missing
            neighbours count as not relevant).
        k: use the first k columns (default all); must not exceed K.
    """
    rel, k = _relevance(relevance, k)
    if len(rel) == 0:
        return float("nan")
    return float(rel[:, :k].sum(axis=1).mean() / k)


def average_precision_at_k(relevance: Any, *, k: int | None = None,
                           n_relevant: Any = None) -> np.ndarray:
    """AP@k of each query: ``sum_i P@i · rel_i / min(k, R)`` over the first k neighbours.

    Args:
        relevance: ``(Q, K)`` booleans.
        k: cut-off (default K).
        n_relevant: R, the number of relevant items in the gallery for each query (scalar or
            ``(Q,)``); ``None`` divides by the number of relevant neighbours retrieved instead.

    Returns:
        ``(Q,)`` floats in [0, 1]; 0 for a query with nothing relevant.
    """
    rel, k = _relevance(relevance, k)
    rel = rel[:, :k].astype(np.float64)
    precision_at_i = np.cumsum(rel, axis=1) / np.arange(1, k + 1)
    total = (precision_at_i * rel).sum(axis=1)
    if n_relevant is None:
        denom = rel.sum(axis=1)
    else:
        r = np.broadcast_to(np.asarray(n_relevant, dtype=np.float64), (len(rel),))
        if (r < 0).any():
            raise ValueError(f"n_relevant must be >= 0. Received: min={r.min()}")
        denom = np.minimum(k, r)
    return np.divide(total, denom, out=np.zeros(len(rel)), where=denom > 0)


def mean_average_precision_at_k(relevance: Any, *, k: int | None = None,
                                n_relevant: Any = None) -> float:
    """mAP@k: the mean of :func:`average_precision_at_k` over queries."""
    ap = average_precision_at_k(relevance, k=k, n_relevant=n_relevant)
    return float(ap.mean()) if len(ap) else float("nan")


def evaluate_neighbours(neighbours: np.ndarray, query_positions: Sequence[int],
                        labels: pd.DataFrame, *, k: int = 5, map_k: int = 10) -> pd.DataFrame:
    """precision@k and mAP@map_k per label column (relevant = same label as the query).

    Args:
        neighbours: ``(Q, K)`` row positions into ``labels`` (``-1`` = none), ``K >= max(k, map_k)``.
        query_positions: ``(Q,)`` row positions of the queries in ``labels`` (the gallery holds
            the queries; each was excluded from its own neighbours).
        labels: the gallery's label columns, one row per indexed item, in index order.
        k: precision cut-off.
        map_k: mAP cut-off.

    Returns:
        One row per label column: ``precision@k``, ``mAP@map_k``, ``chance`` (the mean share
        of the query's class in the gallery, what random neighbours score) and ``n_queries``.
    """
    nb = np.asarray(neighbours)
    qpos = np.asarray(query_positions, dtype=np.int64)
    if nb.ndim != 2 or len(nb) != len(qpos):
        raise ValueError(f"neighbours must be (Q, K) with Q = {len(qpos)}. Received: shape={nb.shape}")
    if nb.shape[1] < max(k, map_k):
        raise ValueError(f"need at least {max(k, map_k)} neighbours per query. Received: {nb.shape[1]}")
    rows = []
    for column in labels.columns:
        codes, _ = pd.factorize(labels[column], use_na_sentinel=True)
        counts = np.bincount(codes[codes >= 0], minlength=codes.max() + 1)
        qcode = codes[qpos]
        ncode = np.where(nb >= 0, codes[np.clip(nb, 0, None)], -1)
        rel = (ncode == qcode[:, None]) & (qcode[:, None] >= 0)
        n_rel = np.where(qcode >= 0, counts[np.clip(qcode, 0, None)] - 1, 0)
        rows.append({"label": column, f"precision@{k}": precision_at_k(rel, k=k),
                     f"mAP@{map_k}": mean_average_precision_at_k(rel, k=map_k, n_relevant=n_rel),
                     "chance": float(np.mean(n_rel / max(len(codes) - 1, 1))),
                     "n_queries": len(qpos)})
    return pd.DataFrame(rows).set_index("label")


def random_neighbours(n_items: int, query_positions: Sequence[int], k: int, *,
                      seed: int = SEED) -> np.ndarray:
    """The random baseline: k distinct random rows per query, never the query itself."""
    k = positive_int("k", k)
    if n_items - 1 < k:
        raise ValueError(f"need more than k={k} items. Received: n_items={n_items}")
    rng = np.random.default_rng(seed)
    qpos = np.asarray(query_positions, dtype=np.int64)
    out = np.empty((len(qpos), k), dtype=np.int64)
    for i, q in enumerate(qpos):
        draw = rng.choice(n_items - 1, size=k, replace=False)
        out[i] = draw + (draw >= q)  # skip the query's own row
    return out


def evaluate_index(index: SimilarityIndex, query_ids: Sequence[Any], *,
                   label_columns: Sequence[str], k: int = 5, map_k: int = 10) -> pd.DataFrame:
    """precision@k and mAP@map_k of an index's neighbours, queries against the whole index."""
    if index.metadata is None:
        raise ValueError("evaluate_index needs an index built with metadata (the label columns)")
    missing = [c for c in label_columns if c not in index.metadata.columns]
    if missing:
        raise ValueError(f"label column(s) {missing} not in the metadata {list(index.metadata.columns)}")
    nb, _ = index.query_many(query_ids, max(k, map_k))
    return evaluate_neighbours(nb, index.positions(query_ids), index.metadata[list(label_columns)],
                               k=k, map_k=map_k)


# --------------------------------------------------------------------------- query selection


def query_ids_for_evaluation(catalog: pd.DataFrame, *, splits_path: str | os.PathLike | None = None,
                             seed: int = SEED, fraction: float = 0.2) -> tuple[list[str], str]:
    """The test-split ids of the catalog, used as evaluation queries, and where they came from.

    Priority: notebook 02's ``splits.csv`` (ids with split ``"test"`` that are in the catalog),
    then the catalog's own ``split`` column, then a seeded random ``fraction``.
    """
    ids = catalog["id"].astype(str)
    if splits_path is not None and Path(splits_path).is_file():
        splits = pd.read_csv(splits_path, dtype={"id": str})
        test = set(splits.loc[splits["split"] == "test", "id"])
        chosen = ids[ids.isin(test)].tolist()
        if chosen:
            return chosen, f"{Path(splits_path).name} (test split)"
    if "split" in catalog.columns and (catalog["split"] == "test").any():
        return ids[catalog["split"].to_numpy() == "test"].tolist(), "catalog split column (test)"
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1]. Received: fraction={fraction!r}")
    n = max(1, int(round(fraction * len(ids))))
    return ids.sample(n, random_state=seed).tolist(), f"random {fraction:.0%} of the catalog"


