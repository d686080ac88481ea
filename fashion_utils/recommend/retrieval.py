"""Retrieval metrics, relevance levels and the evaluations of the recommender.

The metrics take a boolean relevance matrix (``(queries, k)``: is the i-th neighbour
relevant?), so each can be checked by hand: :func:`precision_at_k`,
:func:`mean_average_precision_at_k`, :func:`mean_reciprocal_rank` (MRR) and :func:`recall_at_k`
(which also needs the number of relevant items each query has in the gallery).

A **relevance level** is a list of label columns that must all match for a neighbour to count
as relevant: ``["articleType"]``, or the strict ``["articleType", "baseColour", "usage"]``.
Levels are data: :func:`usable_levels` keeps those a catalog has the columns for and says which
it skipped. :func:`evaluate_neighbours` turns neighbour lists into one row per level;
:func:`evaluate_sources` scores every embedding source and the random baseline on one gallery
(the whole catalog, or the held-out test side only).
"""

from __future__ import annotations
import os
from pathlib import Path
from typing import Any, Collection, Mapping, Sequence
import numpy as np
import pandas as pd
from fashion_utils.checks import columns_present, positive_int
from fashion_utils.config import SEED
from fashion_utils.recommend.similarity import SimilarityIndex
from fashion_utils.recommend.near_duplicates import collapse_neighbours
from fashion_utils.recommend.rerank import (POOL_FACTOR, diversify_neighbours,
                                            mean_pairwise_similarity)

#: Columns a level keeps only where the catalog has them: without ``usage``, the strict level
#: is article type + colour.
OPTIONAL_COLUMNS: tuple[str, ...] = ("usage",)


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


def _n_relevant(n_relevant: Any, n_queries: int) -> np.ndarray:
    """R per query as floats (a scalar is broadcast); negative counts are an error."""
    r = np.asarray(n_relevant, dtype=np.float64)
    if r.ndim > 1 or (r.ndim == 1 and len(r) != n_queries):
        raise ValueError(f"n_relevant must be a scalar or one count per query ({n_queries}). "
                         f"Received: shape={r.shape}")
    r = np.broadcast_to(r, (n_queries,))
    if n_queries and (r < 0).any():
        raise ValueError(f"n_relevant must be >= 0. Received: min={r.min()}")
    return r


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
        denom = np.minimum(k, _n_relevant(n_relevant, len(rel)))
    return np.divide(total, denom, out=np.zeros(len(rel)), where=denom > 0)


def mean_average_precision_at_k(relevance: Any, *, k: int | None = None,
                                n_relevant: Any = None) -> float:
    """mAP@k: the mean of :func:`average_precision_at_k` over queries."""
    ap = average_precision_at_k(relevance, k=k, n_relevant=n_relevant)
    return float(ap.mean()) if len(ap) else float("nan")


def reciprocal_rank_at_k(relevance: Any, *, k: int | None = None) -> np.ndarray:
    """``1 / rank`` of each query's first relevant neighbour among the first k; 0 if none.

    >>> reciprocal_rank_at_k([[0, 0, 1], [1, 0, 0], [0, 0, 0]]).tolist()
    [0.3333333333333333, 1.0, 0.0]
    """
    rel, k = _relevance(relevance, k)
    rel = rel[:, :k]
    first = rel.argmax(axis=1)  # 0 where nothing is relevant: masked below
    return np.where(rel.any(axis=1), 1.0 / (first + 1), 0.0)


def mean_reciprocal_rank(relevance: Any, *, k: int | None = None) -> float:
    """MRR@k: the mean over queries of :func:`reciprocal_rank_at_k`."""
    rr = reciprocal_rank_at_k(relevance, k=k)
    return float(rr.mean()) if len(rr) else float("nan")


def recall_per_query(relevance: Any, *, n_relevant: Any, k: int | None = None) -> np.ndarray:
    """The fraction of each query's R relevant gallery items found in its first k neighbours.

    Args:
        relevance: ``(Q, K)`` booleans.
        n_relevant: R per query (scalar or ``(Q,)``), counted in the gallery without the query.
        k: cut-off (default K).

    Returns:
        ``(Q,)`` floats in [0, 1]; NaN where R = 0 (nothing to find).

    Raises:
        ValueError: a query has more relevant neighbours than its R (R is then wrong).
    """
    rel, k = _relevance(relevance, k)
    r = _n_relevant(n_relevant, len(rel))
    hits = rel[:, :k].sum(axis=1)
    if (hits > r).any():
        bad = int(np.flatnonzero(hits > r)[0])
        raise ValueError(f"query {bad} has {hits[bad]} relevant neighbours but "
                         f"n_relevant={r[bad]:g}: R must count every relevant gallery item")
    return np.divide(hits, r, out=np.full(len(rel), np.nan), where=r > 0)


def recall_at_k(relevance: Any, *, n_relevant: Any, k: int | None = None) -> float:
    """recall@k: the mean of :func:`recall_per_query` over queries with R > 0.

    Not :func:`fashion_utils.recommend.similarity.neighbour_recall`, which compares an
    approximate index's neighbours with exact ones; this one asks how much of what is relevant was found. Bounded
    by ``k / R``: small when a class holds thousands of items.
    """
    recall = recall_per_query(relevance, n_relevant=n_relevant, k=k)
    return float(np.nanmean(recall)) if np.isfinite(recall).any() else float("nan")


# --------------------------------------------------------------------------- relevance levels


def usable_levels(levels: Mapping[str, Sequence[str]], columns: Collection[str], *,
                  optional: Collection[str] = OPTIONAL_COLUMNS,
                  ) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The relevance levels a catalog can judge, and those it cannot.

    Args:
        levels: name → the columns that must all match, e.g.
            ``{"articleType": ["articleType"], "strict": ["articleType", "baseColour", "usage"]}``.
        columns: the catalog's columns.
        optional: columns dropped from a level (instead of skipping it) where the catalog
            lacks them.

    Returns:
        ``(kept, skipped)``: kept name → the columns used; skipped name → the missing columns.

    >>> usable_levels({"type": ["articleType"], "strict": ["articleType", "baseColour"]},
    ...               ["id", "articleType"])
    ({'type': ['articleType']}, {'strict': ['baseColour']})
    """
    if not levels:
        raise ValueError(f"levels must name at least one level. Received: levels={levels!r}")
    kept, skipped = {}, {}
    for name, wanted in levels.items():
        if isinstance(wanted, str) or not wanted:
            raise ValueError(f"a relevance level is a non-empty list of columns. "
                             f"Received: {name!r}: {wanted!r}")
        used = [c for c in wanted if c in columns]
        missing = [c for c in wanted if c not in columns and c not in optional]
        if missing or not used:
            skipped[name] = missing or list(wanted)
        else:
            kept[name] = used
    return kept, skipped


def _level_codes(labels: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """One integer per row for its combination of ``columns``; -1 where any value is missing."""
    codes = np.column_stack([pd.factorize(labels[c], use_na_sentinel=True)[0] for c in columns])
    valid = (codes >= 0).all(axis=1)
    out = np.full(len(labels), -1, dtype=np.int64)
    if valid.any():
        out[valid] = np.unique(codes[valid], axis=0, return_inverse=True)[1].ravel()
    return out


def metric_names(*, k: int = 5, map_k: int = 10, mrr_k: int = 10,
                 recall_k: int = 10) -> list[str]:
    """The metric columns of :func:`evaluate_neighbours`, in order."""
    return [f"precision@{k}", f"mAP@{map_k}", f"MRR@{mrr_k}", f"recall@{recall_k}"]


# --------------------------------------------------------------------------- evaluations


def _judged_relevance(neighbours: np.ndarray, query_positions: np.ndarray,
                      codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Per judged query (one with a label and another item of it in the gallery): which of its
    neighbours share its label code, and how many gallery items do; plus how many queries were
    not judged."""
    counts = np.bincount(codes[codes >= 0], minlength=codes.max() + 1)
    qcode = codes[query_positions]
    n_rel = np.where(qcode >= 0, counts[np.clip(qcode, 0, None)] - 1, 0)
    judged = n_rel > 0
    ncode = np.where(neighbours >= 0, codes[np.clip(neighbours, 0, None)], -1)
    rel = ((ncode == qcode[:, None]) & (qcode[:, None] >= 0))[judged]
    return rel, n_rel[judged], int((~judged).sum())


def _gallery(ids: Sequence[Any], gallery_ids: Sequence[Any] | None) -> tuple[pd.Index, np.ndarray]:
    """The gallery's ids (as strings) and their rows in ``ids`` (default: every id)."""
    all_ids = pd.Index([str(i) for i in ids])
    gallery = all_ids if gallery_ids is None else pd.Index([str(i) for i in gallery_ids])
    rows = all_ids.get_indexer(gallery)
    if (rows < 0).any():
        raise ValueError(f"gallery ids not among ids, e.g. {gallery[rows < 0][:5].tolist()}")
    return gallery, rows


def evaluate_neighbours(neighbours: np.ndarray, query_positions: Sequence[int],
                        labels: pd.DataFrame, *, levels: Mapping[str, Sequence[str]] | None = None,
                        k: int = 5, map_k: int = 10, mrr_k: int = 10,
                        recall_k: int = 10) -> pd.DataFrame:
    """precision@k, mAP@map_k, MRR@mrr_k and recall@recall_k per relevance level.

    A neighbour is relevant when it matches the query on every column of the level. A query
    is judged at a level when it has every value of the level and at least one relevant item
    in the gallery (a query with nothing to find scores 0 with any embedding); the others are
    counted in ``n_skipped``.

    Args:
        neighbours: ``(Q, K)`` row positions into ``labels`` (``-1`` = none),
            ``K >= max(k, map_k, mrr_k, recall_k)``.
        query_positions: ``(Q,)`` row positions of the queries in ``labels`` (the gallery holds
            the queries; each was excluded from its own neighbours).
        labels: the gallery's label columns, one row per indexed item, in index order.
        levels: name → columns that must all match; default each column its own level.
        k, map_k, mrr_k, recall_k: the cut-offs.

    Returns:
        One row per level (index ``level``): ``columns``, the four metrics, ``chance`` (the mean
        share of relevant items in the gallery: what random neighbours score on precision),
        ``n_queries`` (judged) and ``n_skipped``.
    """
    nb = np.asarray(neighbours)
    qpos = np.asarray(query_positions, dtype=np.int64)
    kmax = max(k, map_k, mrr_k, recall_k)
    if nb.ndim != 2 or len(nb) != len(qpos):
        raise ValueError(f"neighbours must be (Q, K) with Q = {len(qpos)}. "
                         f"Received: shape={nb.shape}")
    if nb.shape[1] < kmax:
        raise ValueError(f"need at least {kmax} neighbours per query. Received: {nb.shape[1]}")
    levels = {c: [c] for c in labels.columns} if levels is None else levels
    columns_present(labels, sorted({c for cols in levels.values() for c in cols}), "labels")
    names = metric_names(k=k, map_k=map_k, mrr_k=mrr_k, recall_k=recall_k)
    rows = []
    for name, columns in levels.items():
        codes = _level_codes(labels, columns)
        rel, r, n_skipped = _judged_relevance(nb, qpos, codes)
        scores = [precision_at_k(rel, k=k),
                  mean_average_precision_at_k(rel, k=map_k, n_relevant=r),
                  mean_reciprocal_rank(rel, k=mrr_k), recall_at_k(rel, n_relevant=r, k=recall_k)]
        chance = float(np.mean(r / max(len(codes) - 1, 1))) if len(r) else float("nan")
        rows.append({"level": name, "columns": "+".join(columns), **dict(zip(names, scores)),
                     "chance": chance, "n_queries": len(r), "n_skipped": n_skipped})
    return pd.DataFrame(rows).set_index("level")


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
                   levels: Mapping[str, Sequence[str]] | None = None,
                   label_columns: Sequence[str] | None = None, k: int = 5, map_k: int = 10,
                   mrr_k: int = 10, recall_k: int = 10,
                   groups: Sequence[int] | None = None,
                   trade_off: float | None = None) -> pd.DataFrame:
    """:func:`evaluate_neighbours` of an index's neighbours, queries against the whole index.

    Pass ``levels`` (name → columns that must all match) or ``label_columns`` (each column
    its own level). With ``groups`` (a near-duplicate group per index position,
    ``near_duplicates.near_duplicate_groups``) the neighbours are collapsed first: one per
    group, none of the query's own (``near_duplicates.collapse_neighbours``). With
    ``trade_off`` they are re-ranked by maximal marginal relevance from the plain top
    ``rerank.POOL_FACTOR`` × the largest cut-off (``rerank.diversify_neighbours``; 1 = plain),
    and the column ``pairwise similarity@k`` gives how alike each query's top k are (mean
    cosine similarity between two of them: lower is more varied).
    """
    if index.metadata is None:
        raise ValueError("evaluate_index needs an index built with metadata (the label columns)")
    if (levels is None) == (label_columns is None):
        raise ValueError(f"pass exactly one of levels and label_columns. "
                         f"Received: levels={levels!r}, label_columns={label_columns!r}")
    levels = {c: [c] for c in label_columns} if levels is None else levels
    wanted = list(dict.fromkeys(c for cols in levels.values() for c in cols))
    missing = [c for c in wanted if c not in index.metadata.columns]
    if missing:
        raise ValueError(f"label column(s) {missing} not in the metadata "
                         f"{list(index.metadata.columns)}")
    if groups is not None and trade_off is not None:
        raise ValueError(f"pass groups or trade_off, not both. Received: trade_off={trade_off!r}")
    kmax = max(k, map_k, mrr_k, recall_k)
    qpos = index.positions(query_ids)
    if groups is None and trade_off is None:
        nb, _ = index.query_many(query_ids, kmax)
    else:
        deeper, scores = index.query_many(query_ids, min(len(index) - 1, POOL_FACTOR * kmax))
        nb = (collapse_neighbours(deeper, qpos, np.asarray(groups), k=kmax) if groups is not None
              else diversify_neighbours(index, deeper, scores, kmax, trade_off=trade_off))
    table = evaluate_neighbours(nb, qpos, index.metadata[wanted], levels=levels, k=k,
                                map_k=map_k, mrr_k=mrr_k, recall_k=recall_k)
    if trade_off is not None:
        table[f"pairwise similarity@{k}"] = mean_pairwise_similarity(index.vectors, nb[:, :k])
    return table


def evaluate_sources(sources: Mapping[str, Any], *, ids: Sequence[Any], metadata: pd.DataFrame,
                     query_ids: Sequence[Any], levels: Mapping[str, Sequence[str]],
                     gallery_ids: Sequence[Any] | None = None, k: int = 5, map_k: int = 10,
                     mrr_k: int = 10, recall_k: int = 10, seed: int = SEED,
                     random_name: str | None = "random",
                     groups: Sequence[int] | None = None,
                     trade_off: float | None = None) -> pd.DataFrame:
    """Every embedding source, and random neighbours, judged on one gallery with one query set.

    Args:
        sources: name → ``(N, D)`` vectors, rows in the order of ``ids``.
        ids: the items' ids.
        metadata: ``id`` and the levels' columns, for at least the gallery's items.
        query_ids: the queries; each must be in the gallery, and is excluded from its own
            neighbours.
        levels: name → columns that must all match (see :func:`usable_levels`).
        gallery_ids: the items searched (default every id): the held-out evaluation passes the
            test side, so no item a model was trained on is a query or a neighbour.
        k, map_k, mrr_k, recall_k: the cut-offs.
        seed: of the random neighbours.
        random_name: the random baseline's source name; ``None`` leaves it out.
        groups: a near-duplicate group per id (in the order of ``ids``): each source's
            neighbours are collapsed to one per group (:func:`evaluate_index`).
        trade_off: re-rank each source's neighbours by maximal marginal relevance, and add
            ``pairwise similarity@k`` (:func:`evaluate_index`).

    Returns:
        A long table: ``source``, ``level`` and :func:`evaluate_neighbours`'s columns, plus
        ``n_gallery``.
    """
    if not sources:
        raise ValueError(f"sources must hold at least one embedding. Received: {sources!r}")
    gallery, rows = _gallery(ids, gallery_ids)
    queries = [str(q) for q in query_ids]
    outside = pd.Index(queries).difference(gallery)
    if len(outside):
        raise ValueError(f"every query must be in the gallery. Received {len(outside)} outside "
                         f"it, e.g. {outside[:5].tolist()}")
    kmax = max(k, map_k, mrr_k, recall_k)
    if len(gallery) <= kmax:
        raise ValueError(f"the gallery needs more than {kmax} items (the largest cut-off). "
                         f"Received: {len(gallery)} items")
    options = dict(k=k, map_k=map_k, mrr_k=mrr_k, recall_k=recall_k)
    tables = {}
    for name, vectors in sources.items():
        x = np.asarray(vectors)
        if len(x) != len(ids):
            raise ValueError(f"source {name!r} has {len(x)} vectors for {len(ids)} ids")
        index = SimilarityIndex(gallery, x if gallery_ids is None else x[rows],
                                metadata=metadata, prune=False)
        tables[name] = evaluate_index(index, queries, levels=levels, **options,
                                      groups=None if groups is None else np.asarray(groups)[rows],
                                      trade_off=trade_off)
        labels, qpos = index.metadata, index.positions(queries)
        del index  # one gallery-sized copy of the vectors at a time
    if random_name is not None:
        nb = random_neighbours(len(gallery), qpos, kmax, seed=seed)
        tables[random_name] = evaluate_neighbours(nb, qpos, labels, levels=levels, **options)
    table = pd.concat(tables, names=["source"]).reset_index()
    return table.assign(n_gallery=len(gallery))


def precision_per_query(vectors: Any, *, ids: Sequence[Any], metadata: pd.DataFrame,
                        query_ids: Sequence[Any], columns: Sequence[str],
                        gallery_ids: Sequence[Any] | None = None, k: int = 5) -> np.ndarray:
    """Each judged query's precision@k at one level (the items that match it on ``columns``):
    the per-query values behind :func:`evaluate_sources`' precision, for a paired test of two
    sources on the same queries (queries with nothing relevant in the gallery are left out,
    as there; which ones depends on the labels only, so two sources give aligned arrays)."""
    gallery, rows = _gallery(ids, gallery_ids)
    index = SimilarityIndex(gallery, np.asarray(vectors)[rows], metadata=metadata, prune=False)
    queries = [str(q) for q in query_ids]
    nb, _ = index.query_many(queries, k)
    codes = _level_codes(index.metadata[list(columns)], list(columns))
    rel, _, _ = _judged_relevance(nb, index.positions(queries), codes)
    return rel[:, :k].mean(axis=1)


def comparison_table(table: pd.DataFrame, *, metrics: Sequence[str]) -> pd.DataFrame:
    """:func:`evaluate_sources`'s table to read: one row per level and source (levels first, each
    in its order), the ``metrics``, ``chance`` and ``n_queries``."""
    columns_present(table, ["source", "level", *metrics, "chance", "n_queries"], "the scores table")
    order = {level: i for i, level in enumerate(dict.fromkeys(table["level"]))}
    ranked = table.iloc[np.argsort(table["level"].map(order).to_numpy(), kind="stable")]
    return ranked.set_index(["level", "source"])[[*metrics, "chance", "n_queries"]]


def scores_by_source(table: pd.DataFrame, *, metrics: Sequence[str],
                     digits: int = 4) -> dict[str, dict[str, dict[str, float]]]:
    """``{source: {level: {metric: value}}}`` of :func:`evaluate_sources`'s table (the metrics
    file's layout), with ``chance`` and ``n_queries`` beside the ``metrics``."""
    columns_present(table, ["source", "level", *metrics], "the scores table")
    out: dict[str, dict[str, dict[str, float]]] = {}
    for row in table.to_dict(orient="records"):
        values = {m: round(float(row[m]), digits) for m in [*metrics, "chance"] if m in row}
        if "n_queries" in row:
            values["n_queries"] = int(row["n_queries"])
        out.setdefault(str(row["source"]), {})[str(row["level"])] = values
    return out
# --------------------------------------------------------------------------- query selection


def query_ids_for_evaluation(catalog: pd.DataFrame, *, splits_path: str | os.PathLike | None = None,
                             split: str = "test", seed: int = SEED,
                             fraction: float = 0.2) -> tuple[list[str], str]:
    """The ids of one side of the split (``"test"`` or ``"val"``), used as evaluation queries,
    and where they came from.

    Priority: notebook 02's ``splits.csv`` (ids with that split that are in the catalog), then
    the catalog's own ``split`` column, then (test side only) a seeded random ``fraction``; a
    validation side that is nowhere to be found gives no ids.
    """
    ids = catalog["id"].astype(str)
    if splits_path is not None and Path(splits_path).is_file():
        splits = pd.read_csv(splits_path, dtype={"id": str})
        side = set(splits.loc[splits["split"] == split, "id"])
        chosen = ids[ids.isin(side)].tolist()
        if chosen:
            return chosen, f"{Path(splits_path).name} ({split} split)"
    if "split" in catalog.columns and (catalog["split"] == split).any():
        return ids[catalog["split"].to_numpy() == split].tolist(), f"catalog split column ({split})"
    if split != "test":
        return [], f"no {split} side"
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1]. Received: fraction={fraction!r}")
    n = max(1, int(round(fraction * len(ids))))
    return ids.sample(n, random_state=seed).tolist(), f"random {fraction:.0%} of the catalog"




def choose_source(sources: Mapping[str, Any], *, ids: Sequence[Any], metadata: pd.DataFrame,
                  query_ids: Sequence[Any], level: Mapping[str, Sequence[str]], k: int = 5,
                  default: str = "pretrained",
                  seed: int = SEED) -> tuple[str, dict[str, float]]:
    """The embedding source with the best precision@k on ``query_ids`` (the validation side)
    searched among themselves, at the one relevance ``level`` (name -> columns).

    Returns:
        ``(chosen, {source: precision@k})``; ties go to the earlier source. With too few
        queries to judge (a gallery needs more than 10 items), ``(default, {})``.
    """
    if len(level) != 1:
        raise ValueError(f"level must name exactly one relevance level. Received: {level!r}")
    if default not in sources:
        raise ValueError(f"default must be one of the sources {list(sources)}. "
                         f"Received: default={default!r}")
    if len(query_ids) <= 10:
        return default, {}
    table = evaluate_sources(sources, ids=ids, metadata=metadata, query_ids=query_ids,
                             levels=level, gallery_ids=query_ids, k=k, seed=seed,
                             random_name=None)
    scores = {str(s): round(float(v), 4) for s, v in zip(table["source"], table[f"precision@{k}"])}
    return max(scores, key=lambda s: scores[s]), scores
