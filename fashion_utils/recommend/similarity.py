"""The similarity index: which products look most like this one?

* ``backend="exact"`` (default) ranks every item by cosine similarity with chunked matrix
  products: memory stays bounded (never an N×N matrix). For large, wide catalogs it can also
  *prune* (``prune="auto"``): vectors are stored in an orthonormal PCA basis, the first
  ``prune_dims`` coordinates give a partial score, and the Cauchy–Schwarz bound on the rest
  (``|q_tail · x_tail| <= |q_tail| |x_tail|``) rules out most items before their full dot
  product is read. The result is still exact — the bound only skips items that provably
  cannot enter the top k — but a query reads a fraction of the memory.
* ``backend="faiss"`` builds an approximate FAISS index (IVF-Flat or HNSW, inner product) for
  catalogs too large to scan; :meth:`SimilarityIndex.recall_against` measures its recall
  against exact search.
"""

from __future__ import annotations
import contextlib
import math
import time
from typing import Any, Mapping, Sequence
import numpy as np
import pandas as pd
from fashion_utils.checks import one_of, positive_int
from fashion_utils.config import SEED


BACKENDS = ("exact", "faiss")
FAISS_KINDS = ("ivf", "hnsw", "flat")
_SCORE_BUDGET_BYTES = 64 * 2**20  # size of one block of scores in the exact search
_BOUND_TOLERANCE = 1e-4  # slack on the pruning bound, far above float32 rounding of a dot product




# --------------------------------------------------------------------------- the index


_CONTROLLER: list[Any] = []


def l2_normalize(vectors: Any) -> np.ndarray:
    """Rows scaled to unit length (float32); all-zero rows stay zero.

    Args:
        vectors: a ``(N, D)`` or ``(D,)`` array of finite numbers.

    Returns:
        A new float32 array of the same shape.

    Raises:
        ValueError: non-finite values, or an array that is not 1-D or 2-D.
    """
    x = np.array(vectors, dtype=np.float32, copy=True)
    if x.ndim not in (1, 2):
        raise ValueError(f"vectors must be 1-D or 2-D. Received: shape={x.shape}")
    bad = ~np.isfinite(x)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])[:5].tolist() if x.ndim == 2 else []
        raise ValueError(f"vectors hold {int(bad.sum())} non-finite value(s) (rows {rows}...)")
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    return x


def _one_blas_thread() -> Any:
    """A context that runs BLAS on one thread.

    A single query is a matrix-vector product, bound by memory bandwidth: a second thread
    barely helps (25 vs 23 ms for 70,000 x 1280), and waking it costs milliseconds on a busy
    machine (the pruned search took 6 ms p50 on two threads, 2 ms on one).
    """
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


def top_k_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column positions and values of the k largest entries of each row (unsorted)."""
    kk = min(k, scores.shape[1])
    if kk == scores.shape[1]:
        pos = np.broadcast_to(np.arange(kk), scores.shape).copy()
    else:
        pos = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
    return pos, np.take_along_axis(scores, pos, axis=1)


def _sort_results(pos: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row by score (descending, ties by position), mark missing entries -1 / NaN."""
    order = np.lexsort((pos, -scores), axis=1) if scores.size else np.zeros_like(pos)
    pos = np.take_along_axis(pos, order, axis=1)[:, :k]
    scores = np.take_along_axis(scores, order, axis=1)[:, :k].astype(np.float32)
    missing = ~np.isfinite(scores) | (pos < 0)
    pos = np.where(missing, -1, pos)
    scores = np.where(missing, np.nan, scores).astype(np.float32)
    if pos.shape[1] < k:  # fewer items than k
        pad = k - pos.shape[1]
        pos = np.hstack([pos, np.full((len(pos), pad), -1)])
        scores = np.hstack([scores, np.full((len(scores), pad), np.nan, dtype=np.float32)])
    return pos.astype(np.int64), scores


class SimilarityIndex:
    """Nearest products by cosine similarity, with filters and self-exclusion.

    Args:
        ids: unique item ids (converted to strings).
        vectors: ``(N, D)`` embeddings, one row per id (normalised here unless ``normalize=False``).
        metadata: optional table of item attributes used by filters and shown in results;
            either indexed by id or with an ``id`` column; every id must be present.
        backend: ``"exact"`` (chunked matrix products) or ``"faiss"`` (approximate).
        normalize: L2-normalise the vectors (cosine similarity); ``False`` if they already are.
        prune: exact backend only: ``True``, ``False`` or ``"auto"`` (when N >= 20,000 and
            D >= 256) — exact search that skips provably distant items (see module docstring).
        prune_dims: coordinates of the partial score when pruning.
        faiss_index: ``"ivf"`` (IVF-Flat), ``"hnsw"`` (HNSW-Flat) or ``"flat"`` (exact FAISS).
        nlist: IVF lists (default ``sqrt(N)``, at most N/39 so k-means has enough points).
        nprobe: IVF lists scanned per query.
        hnsw_m: HNSW links per node.
        ef_construction: HNSW build breadth.
        ef_search: HNSW search breadth.
        exact_below: FAISS backend: filtered queries that leave at most this many candidates
            are answered exactly on that subset.
        seed: seed of the IVF k-means and its training sample.

    Attributes:
        ids: the ids (``numpy`` array of str); ``dim``; ``backend``; ``metadata``;
        n_zero_vectors: rows that were all zeros (kept; they score 0 against everything).
        build_seconds: time taken to build.
    """

    def __init__(self, ids: Sequence[Any], vectors: Any, *, metadata: pd.DataFrame | None = None,
                 backend: str = "exact", normalize: bool = True, prune: bool | str = "auto",
                 prune_dims: int = 64, faiss_index: str = "ivf", nlist: int | None = None,
                 nprobe: int = 16, hnsw_m: int = 32, ef_construction: int = 80,
                 ef_search: int = 128, exact_below: int = 50_000, seed: int = SEED) -> None:
        start = time.perf_counter()
        one_of("backend", backend, BACKENDS)
        one_of("faiss_index", faiss_index, FAISS_KINDS)
        if prune not in (True, False, "auto"):
            raise ValueError(f"prune must be True, False or 'auto'. Received: prune={prune!r}")
        self.ids = np.asarray([str(i) for i in ids])
        x = l2_normalize(vectors) if normalize else np.ascontiguousarray(vectors, dtype=np.float32)
        if x.ndim != 2 or len(x) != len(self.ids):
            raise ValueError(f"vectors must be (N, D) with N = len(ids) = {len(self.ids)}. "
                             f"Received: shape={x.shape}")
        if len(x) == 0:
            raise ValueError("A SimilarityIndex needs at least one item. Received: 0 ids")
        self._pos = pd.Index(self.ids)
        if not self._pos.is_unique:
            dupes = self._pos[self._pos.duplicated()].unique()[:5].tolist()
            raise ValueError(f"ids must be unique. Received duplicates such as {dupes}")
        self.dim = int(x.shape[1])
        self.backend = backend
        self.n_zero_vectors = int((np.abs(x).sum(axis=1) == 0).sum())
        self.metadata = self._align_metadata(metadata)
        self.exact_below = int(exact_below)
        self._basis: np.ndarray | None = None
        self._faiss = None
        self.faiss_index = faiss_index if backend == "faiss" else None
        if prune == "auto":
            prune = backend == "exact" and len(x) >= 20_000 and self.dim >= 256
        self.prune = bool(prune) and backend == "exact" and self.dim > prune_dims
        self.prune_dims = int(prune_dims)
        self.nprobe, self.ef_search = int(nprobe), int(ef_search)
        if self.prune:
            self._build_pruning(x)
        else:
            self._x = x
        if backend == "faiss":
            self._build_faiss(x, kind=faiss_index, nlist=nlist, hnsw_m=hnsw_m,
                              ef_construction=ef_construction, seed=seed)
        self.build_seconds = time.perf_counter() - start

    # ----------------------------------------------------------------- construction

    def _align_metadata(self, metadata: pd.DataFrame | None) -> pd.DataFrame | None:
        if metadata is None:
            return None
        meta = metadata.copy()
        if "id" in meta.columns:
            meta = meta.set_index(meta["id"].astype(str)).drop(columns="id")
        meta.index = meta.index.astype(str)
        if not meta.index.is_unique:
            raise ValueError("metadata has duplicate ids, e.g. "
                             f"{meta.index[meta.index.duplicated()][:5].tolist()}")
        missing = self._pos.difference(meta.index)
        if len(missing):
            raise ValueError(f"metadata lacks {len(missing)} id(s) of the index, e.g. "
                             f"{missing[:5].tolist()}")
        meta = meta.loc[self.ids]
        meta.index.name = "id"
        return meta

    def _build_pruning(self, x: np.ndarray) -> None:
        """Rotate into the PCA basis (orthonormal: dot products unchanged) and keep the head."""
        gram = np.zeros((self.dim, self.dim), dtype=np.float32)
        for lo in range(0, len(x), 8192):
            block = x[lo:lo + 8192]
            gram += block.T @ block
        _, vecs = np.linalg.eigh(gram.astype(np.float64))
        self._basis = np.ascontiguousarray(vecs[:, ::-1], dtype=np.float32)  # largest first
        rot = np.empty_like(x)
        for lo in range(0, len(x), 8192):
            rot[lo:lo + 8192] = x[lo:lo + 8192] @ self._basis
        m = self.prune_dims
        self._x = rot
        self._head = np.ascontiguousarray(rot[:, :m])
        self._tail_norm = np.linalg.norm(rot[:, m:], axis=1).astype(np.float32)

    def _build_faiss(self, x: np.ndarray, *, kind: str, nlist: int | None, hnsw_m: int,
                     ef_construction: int, seed: int) -> None:
        import faiss

        n, d = x.shape
        if kind == "flat":
            index = faiss.IndexFlatIP(d)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, int(hnsw_m), faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = int(ef_construction)
            index.hnsw.efSearch = self.ef_search
        else:
            if nlist is None:
                nlist = int(max(1, min(round(math.sqrt(n)), n // 39)))
            if not 1 <= int(nlist) <= n:
                raise ValueError(f"nlist must be in [1, N={n}]. Received: nlist={nlist!r}")
            self.nlist = int(nlist)
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, self.nlist, faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = int(seed)
            n_train = min(n, max(40 * self.nlist, 10_000))  # k-means cost grows with n_train x nlist
            sample = np.random.default_rng(seed).choice(n, n_train, replace=False) if n_train < n else None
            index.train(x if sample is None else x[np.sort(sample)])
            index.nprobe = min(self.nprobe, self.nlist)
        index.add(x)
        self._faiss = index

    # ----------------------------------------------------------------- basic access

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        extra = f", faiss_index={self.faiss_index!r}" if self.backend == "faiss" else \
            f", prune={self.prune}"
        return f"SimilarityIndex(n={len(self)}, dim={self.dim}, backend={self.backend!r}{extra})"

    def positions(self, ids: Sequence[Any]) -> np.ndarray:
        """Row positions of ids; raises ``KeyError`` naming ids that are not indexed."""
        wanted = pd.Index([str(i) for i in ids])
        pos = self._pos.get_indexer(wanted)
        if (pos < 0).any():
            raise KeyError(f"{int((pos < 0).sum())} id(s) not in the index, e.g. "
                           f"{wanted[pos < 0][:5].tolist()}")
        return pos

    def vector(self, item_id: Any) -> np.ndarray:
        """The (normalised) vector stored for ``item_id``."""
        row = self._x[self.positions([item_id])[0]]
        return row @ self._basis.T if self._basis is not None else row.copy()

    @property
    def vectors(self) -> np.ndarray:
        """All stored vectors, in the original basis (a copy when pruning is on)."""
        return self._x @ self._basis.T if self._basis is not None else self._x

    def memory_bytes(self) -> int:
        """Bytes held by the search structures: vectors and pruning head, or the FAISS index
        (a FAISS-backed index also keeps the vectors, for filtered queries answered exactly)."""
        if self._faiss is not None:
            return faiss_index_bytes(self._faiss)
        total = self._x.nbytes
        if self._basis is not None:
            total += self._basis.nbytes + self._head.nbytes + self._tail_norm.nbytes
        return int(total)

    # ----------------------------------------------------------------- search

    def search(self, queries: Any, k: int = 5, *, exclude: Any = None,
               mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The k most similar rows for each query vector (the low-level search).

        Args:
            queries: ``(Q, D)`` or ``(D,)`` query vectors (normalised here).
            k: neighbours per query.
            exclude: ``(Q,)`` row positions to leave out per query (e.g. the query itself;
                ``-1`` for none), or ``None``.
            mask: ``(N,)`` booleans, ``True`` for rows that may be returned.

        Returns:
            ``(positions, scores)``, both ``(Q, k)``, best first; ``-1`` / NaN where fewer
            than k rows qualify.
        """
        q = l2_normalize(queries)
        q = q[None, :] if q.ndim == 1 else q
        if q.shape[1] != self.dim:
            raise ValueError(f"query vectors must have {self.dim} dimensions. Received: shape={q.shape}")
        if self._basis is not None:
            q = q @ self._basis
        return self._search_stored_basis(q, k, exclude=exclude, mask=mask)

    def _search_stored_basis(self, q: np.ndarray, k: int, *, exclude: Any = None,
                             mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search` for unit query rows already in the stored (possibly rotated) basis."""
        k = positive_int("k", k)
        excl = np.full(len(q), -1, dtype=np.int64) if exclude is None else \
            np.asarray(exclude, dtype=np.int64).reshape(-1)
        if len(excl) != len(q):
            raise ValueError(f"exclude must have one entry per query ({len(q)}). Received: {len(excl)}")
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (len(self),):
                raise ValueError(f"mask must have shape ({len(self)},). Received: {mask.shape}")
        if len(q) == 0:
            return np.empty((0, k), np.int64), np.empty((0, k), np.float32)
        if self._faiss is not None:
            if mask is not None and mask.sum() <= self.exact_below:
                return self._subset_search(q, k, excl, mask)
            return self._faiss_search(q, k, excl, mask)
        if len(q) == 1:  # one query: matrix-vector products, faster on one BLAS thread
            with _one_blas_thread():
                if self._basis is not None:
                    return self._pruned_search(q[0], k, int(excl[0]), mask)
                return self._exact_search(q, k, excl, mask)
        return self._exact_search(q, k, excl, mask)

    def _exact_search(self, q: np.ndarray, k: int, excl: np.ndarray,
                      mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        n = len(self._x)
        q_batch = max(1, min(len(q), 1024))
        rows = int(min(n, max(1024, _SCORE_BUDGET_BYTES // (4 * q_batch))))
        all_pos, all_scores = [], []
        for qlo in range(0, len(q), q_batch):
            qb, eb = q[qlo:qlo + q_batch], excl[qlo:qlo + q_batch]
            best_p = np.full((len(qb), 0), -1, dtype=np.int64)
            best_s = np.full((len(qb), 0), -np.inf, dtype=np.float32)
            for lo in range(0, n, rows):
                hi = min(n, lo + rows)
                s = qb @ self._x[lo:hi].T
                if mask is not None:
                    s[:, ~mask[lo:hi]] = -np.inf
                inside = np.flatnonzero((eb >= lo) & (eb < hi))
                s[inside, eb[inside] - lo] = -np.inf
                p, v = top_k_rows(s, k)
                best_p = np.hstack([best_p, p + lo])
                best_s = np.hstack([best_s, v])
                if best_p.shape[1] > k:
                    keep, best_s = top_k_rows(best_s, k)
                    best_p = np.take_along_axis(best_p, keep, axis=1)
            p, s = _sort_results(best_p, best_s, k)
            all_pos.append(p)
            all_scores.append(s)
        return np.vstack(all_pos), np.vstack(all_scores)

    def _pruned_search(self, q: np.ndarray, k: int, excl: int,
                       mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k of one rotated query, reading full rows only for items that may qualify."""
        n, m = len(self._x), self.prune_dims
        upper = self._head @ q[:m]
        upper += np.float32(np.linalg.norm(q[m:])) * self._tail_norm + np.float32(_BOUND_TOLERANCE)
        if mask is not None:
            upper[~mask] = -np.inf
        if 0 <= excl < n:
            upper[excl] = -np.inf
        n_ok = int(np.isfinite(upper).sum())
        if n_ok <= k:
            cand = np.flatnonzero(np.isfinite(upper))
        else:
            seeds = np.argpartition(-upper, min(n_ok, 4 * k + 32) - 1)[:min(n_ok, 4 * k + 32)]
            seeds = seeds[np.isfinite(upper[seeds])]
            exact = self._x[seeds] @ q
            threshold = np.partition(exact, len(exact) - k)[len(exact) - k]
            cand = np.flatnonzero(upper >= threshold)
            if len(cand) > n // 3:  # the bound prunes too little: a plain scan is cheaper
                return self._exact_search(q[None], k, np.array([excl]), mask)
        scores = (self._x[cand] @ q)[None]
        p, s = top_k_rows(scores, k)
        return _sort_results(cand[p], s, k)

    def _subset_search(self, q: np.ndarray, k: int, excl: np.ndarray,
                       mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = np.flatnonzero(mask)
        if len(rows) == 0:
            return np.full((len(q), k), -1, np.int64), np.full((len(q), k), np.nan, np.float32)
        s = q @ self._x[rows].T
        local = pd.Index(rows).get_indexer(excl)
        has = np.flatnonzero(local >= 0)
        s[has, local[has]] = -np.inf
        p, v = top_k_rows(s, k)
        return _sort_results(rows[p], v, k)

    def _faiss_search(self, q: np.ndarray, k: int, excl: np.ndarray,
                      mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        params = None
        if mask is not None:
            bitmap = np.packbits(mask, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bitmap))
            if self.faiss_index == "ivf":
                params = faiss.SearchParametersIVF(sel=selector, nprobe=self._faiss.nprobe)
            elif self.faiss_index == "hnsw":
                params = faiss.SearchParametersHNSW(sel=selector, efSearch=self.ef_search)
            else:
                params = faiss.SearchParameters(sel=selector)
        extra = int((excl >= 0).any())
        kk = min(k + extra, len(self))
        scores, pos = self._faiss.search(np.ascontiguousarray(q), kk, params=params)
        pos = pos.astype(np.int64)
        scores = np.where(pos < 0, -np.inf, scores).astype(np.float32)
        scores[pos == excl[:, None]] = -np.inf
        return _sort_results(pos, scores, k)

    # ----------------------------------------------------------------- queries

    def filter_mask(self, filters: Mapping[str, Any] | None, *,
                    query_position: int | None = None) -> np.ndarray | None:
        """Rows allowed by ``filters``; ``None`` when there are no filters.

        Each entry maps a metadata column to ``"same"`` or ``"different"`` (relative to the
        query item: needs an id query), a value, or a list of values.
        """
        if not filters:
            return None
        if not isinstance(filters, Mapping):
            raise ValueError(f"filters must be a dict such as {{'gender': 'same'}}. Received: "
                             f"filters={filters!r}")
        if self.metadata is None:
            raise ValueError(f"filters need metadata; this index has none. Received: filters={filters!r}")
        mask = np.ones(len(self), dtype=bool)
        for column, spec in filters.items():
            if column not in self.metadata.columns:
                raise ValueError(f"Unknown filter column {column!r}; metadata columns: "
                                 f"{list(self.metadata.columns)}. Received: filters={filters!r}")
            values = self.metadata[column].to_numpy()
            if isinstance(spec, str) and spec in ("same", "different"):
                if query_position is None:
                    raise ValueError(f"filter {column!r}: {spec!r} compares with the query item, so "
                                     f"the query must be an id; for a vector give a value, e.g. "
                                     f"{{{column!r}: {values[0]!r}}}")
                same = values == values[query_position]
                mask &= same if spec == "same" else ~same
            elif isinstance(spec, (list, tuple, set, frozenset, np.ndarray)):
                mask &= np.isin(values, list(spec))
            else:
                mask &= values == spec
        return mask

    def query(self, query: Any, k: int = 5, *, filters: Mapping[str, Any] | None = None,
              as_frame: bool = True) -> pd.DataFrame | list[tuple[str, float]]:
        """The k products most similar to ``query``, never the query itself.

        Args:
            query: an indexed id, or a ``(D,)`` vector (e.g. from :func:`embed_image_files`).
            k: how many neighbours.
            filters: e.g. ``{"gender": "same"}``, ``{"articleType": "different"}`` ("complete
                the look"), ``{"masterCategory": "Footwear"}``.
            as_frame: a DataFrame (rank, id, score and the metadata columns) or a list of
                ``(id, score)``.

        Returns:
            The neighbours, best first (fewer than k when the filters leave fewer).
        """
        vector, position = self._resolve(query)
        mask = self.filter_mask(filters, query_position=position)
        if position is None:
            pos, scores = self.search(vector, k, mask=mask)
        else:  # the stored row: already normalised and in the stored basis
            pos, scores = self._search_stored_basis(vector[None], k, exclude=[position], mask=mask)
        keep = pos[0] >= 0
        ids, vals = self.ids[pos[0][keep]], scores[0][keep]
        if not as_frame:
            return [(str(i), float(s)) for i, s in zip(ids, vals)]
        frame = pd.DataFrame({"rank": np.arange(1, len(ids) + 1), "id": ids, "score": vals})
        if self.metadata is not None:
            frame = frame.join(self.metadata, on="id")
        return frame

    def _resolve(self, query: Any) -> tuple[np.ndarray, int | None]:
        if isinstance(query, (str, int, np.integer)) and not isinstance(query, bool):
            pos = self._pos.get_indexer([str(query)])[0]
            if pos < 0:
                raise KeyError(f"id {query!r} is not in the index (a new image? use embeddings.query_image)")
            return self._x[pos], int(pos)
        vec = np.asarray(query, dtype=np.float32)
        if vec.shape != (self.dim,):
            raise ValueError(f"a query is an id or a ({self.dim},) vector. Received: "
                             f"{type(query).__name__} with shape {getattr(vec, 'shape', None)}")
        return vec, None

    def query_many(self, query_ids: Sequence[Any], k: int = 10, *,
                   batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """Neighbours of many indexed items at once (batched; each query excludes itself).

        Args:
            query_ids: ids in the index.
            k: neighbours per query.
            batch_size: queries per matrix product.

        Returns:
            ``(positions, scores)``, both ``(Q, k)`` (row positions into :attr:`ids`; ``-1`` /
            NaN where fewer than k items exist).
        """
        k = positive_int("k", k)
        qpos = self.positions(query_ids)
        out_p, out_s = [], []
        for lo in range(0, len(qpos), batch_size):
            rows = qpos[lo:lo + batch_size]
            p, s = self._search_stored_basis(self._x[rows], k, exclude=rows)
            out_p.append(p)
            out_s.append(s)
        if not out_p:
            return np.empty((0, k), np.int64), np.empty((0, k), np.float32)
        return np.vstack(out_p), np.vstack(out_s)

    def recall_against(self, reference: "SimilarityIndex", query_ids: Sequence[Any], *,
                       k: int = 5) -> float:
        """Recall@k of this index against another (normally exact) one on the same items."""
        mine, _ = self.query_many(query_ids, k)
        truth, _ = reference.query_many(query_ids, k)
        return neighbour_recall(mine, truth)


def query_latency(index: SimilarityIndex, query_ids: Sequence[Any], *, k: int = 5,
                  filters: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Latency of single :meth:`SimilarityIndex.query` calls, one id at a time (after a
    warm-up): ``p50_ms``, ``p90_ms`` and ``mean_ms``."""
    query_ids = [str(i) for i in query_ids]
    if not query_ids:
        raise ValueError("query_latency needs at least one query id. Received: 0")
    index.query(query_ids[0], k, filters=filters, as_frame=False)  # warm-up
    times = []
    for i in query_ids:
        t = time.perf_counter()
        index.query(i, k, filters=filters, as_frame=False)
        times.append(time.perf_counter() - t)
    ms = np.asarray(times) * 1e3
    return {"p50_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
            "mean_ms": float(ms.mean())}


def neighbour_recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Recall of an approximate index: mean fraction of each true neighbour list (``(Q, k)``, ``-1`` = none) that was found."""
    found, truth = np.asarray(found), np.asarray(truth)
    if found.shape[0] != truth.shape[0]:
        raise ValueError(f"found and truth need the same number of queries. Received: "
                         f"{found.shape[0]} and {truth.shape[0]}")
    hits, total = 0, 0
    for f, t in zip(found, truth):
        t = set(t[t >= 0].tolist())
        hits += len(t & set(f[f >= 0].tolist()))
        total += len(t)
    return hits / total if total else float("nan")


def faiss_index_bytes(index: Any) -> int:
    """Bytes held by a FAISS Flat, IVF-Flat or HNSW-Flat index (vectors, lists, graph)."""
    import faiss

    d, n = index.d, index.ntotal
    if isinstance(index, faiss.IndexIVF):
        invlists = index.invlists
        return int(n * (invlists.code_size + 8) + index.nlist * d * 4)
    if isinstance(index, faiss.IndexHNSW):
        hnsw = index.hnsw
        return int(n * d * 4 + hnsw.neighbors.size() * 4 + hnsw.levels.size() * 4
                   + hnsw.offsets.size() * 8)
    return int(n * d * 4)


