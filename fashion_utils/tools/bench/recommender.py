"""The recommender benchmark (section ``recommender``): query latency and FAISS recall.

Exact search (:class:`~fashion_utils.recommend.similarity.SimilarityIndex`, plain scan and pruned) at
catalog size, on the default catalog's cached features when they exist (else synthetic
vectors), and FAISS IVF at a million synthetic vectors shaped like CNN embeddings
(:func:`synthetic_embeddings`). Also :func:`measure_index`, the scale benchmark's index
stage.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from fashion_utils import checks, config
from fashion_utils.tools.bench.measure import (cpu_seconds, load_averages, peak_rss_mib, rss_mib,
                                               write_results)
from fashion_utils.config import SEED
from fashion_utils.recommend.similarity import l2_normalize
from fashion_utils.vision.features import find_feature_stores, open_feature_store
from fashion_utils.recommend.similarity import (SimilarityIndex, faiss_index_bytes, neighbour_recall,
                                                query_latency, top_k_rows)

__all__ = [
    "SYNTHETIC_SETS",
    "bench_recommender",
    "measure_index",
    "relative_contrast",
    "synthetic_embeddings",
    "write_benchmark",
]


# --------------------------------------------------------------------------- benchmark


def synthetic_embeddings(n: int, dim: int, *, seed: int = SEED, start: int = 0,
                         n_clusters: int = 1000, intrinsic_dim: int = 64, spread: float = 0.8,
                         noise: float = 0.35) -> np.ndarray:
    """Deterministic synthetic unit vectors shaped like CNN embeddings (for benchmarks).

    Items come from ``n_clusters`` Gaussian clusters (unit-variance centres, within-cluster
    standard deviation ``spread``) in a random ``intrinsic_dim``-dimensional subspace, plus
    isotropic noise in all ``dim`` coordinates (relative scale ``noise``). Row i
    is the same whatever ``start`` / ``n`` slice is asked for, so a large set can be made in
    chunks.
    """
    base = np.random.default_rng([seed, 0])
    basis = base.standard_normal((intrinsic_dim, dim)).astype(np.float32) / np.sqrt(intrinsic_dim)
    centres = base.standard_normal((n_clusters, intrinsic_dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    step = 65_536
    for lo in range(start - start % step, start + n, step):
        rng = np.random.default_rng([seed, 1, lo // step])
        size = step
        cluster = rng.integers(0, n_clusters, size)
        z = centres[cluster] + spread * rng.standard_normal((size, intrinsic_dim), dtype=np.float32)
        block = z @ basis
        block += (noise / np.sqrt(dim)) * np.linalg.norm(z, axis=1, keepdims=True) * \
            rng.standard_normal((size, dim), dtype=np.float32)
        a, b = max(lo, start), min(lo + size, start + n)
        if a < b:
            out[a - start:b - start] = block[a - lo:b - lo]
    return l2_normalize(out)


def relative_contrast(vectors: np.ndarray, *, k: int = 5, n_queries: int = 200,
                      seed: int = SEED) -> float:
    """How hard nearest-neighbour search is on unit vectors: median over sample queries of the
    mean distance to all items divided by the distance to the k-th nearest (lower = harder).
    """
    x = np.asarray(vectors, dtype=np.float32)
    rows = np.random.default_rng(seed).choice(len(x), min(n_queries, len(x)), replace=False)
    s = x[rows] @ x.T
    s[np.arange(len(rows)), rows] = -2.0  # the query itself is never its own neighbour
    d = np.sqrt(np.clip(2.0 - 2.0 * s, 0.0, None))
    kth = np.partition(d, k - 1, axis=1)[:, k - 1]
    return float(np.median(d.mean(axis=1) / np.maximum(kth, 1e-12)))


def _latencies(fn: Callable[[int], Any], n: int) -> dict[str, float]:
    fn(0)  # warm-up
    times = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    ms = np.asarray(times) * 1e3
    return {"p50_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
            "mean_ms": float(ms.mean())}


def _one_thread_cpu_ms(fn: Callable[[int], Any], n: int) -> dict[str, float]:
    """Per-query CPU time with BLAS and FAISS on one thread: robust to other processes' load.

    On a shared machine, wall-clock latency mostly measures the other processes; the CPU time
    of a single-threaded query is what it costs on one idle core (an upper bound for two).
    """
    from threadpoolctl import threadpool_limits

    try:
        import faiss
        before = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
    except ImportError:  # pragma: no cover
        faiss = None
    try:
        with threadpool_limits(1):
            fn(0)
            cpu = []
            for i in range(n):
                t = cpu_seconds()
                fn(i)
                cpu.append(cpu_seconds() - t)
    finally:
        if faiss is not None:
            faiss.omp_set_num_threads(before)
    ms = np.asarray(cpu) * 1e3
    return {"one_thread_cpu_p50_ms": float(np.median(ms)),
            "one_thread_cpu_p90_ms": float(np.percentile(ms, 90))}


def measure_index(*, feature_cache: str, n_queries: int, k: int = 5,
                  seed: int = config.SEED) -> dict:
    """Build a ``SimilarityIndex`` on a feature cache folder, then time single and batched
    queries."""
    cache = open_feature_store(feature_cache)
    ids = cache.ids.tolist()
    start = time.perf_counter()
    index = SimilarityIndex(ids, cache.features)
    build = time.perf_counter() - start
    rng = np.random.default_rng(seed)
    queries = [ids[i] for i in rng.choice(len(ids), size=min(n_queries, len(ids)), replace=False)]
    latency = query_latency(index, queries, k=k)
    start = time.perf_counter()
    index.query_many(queries, k)
    batched = time.perf_counter() - start
    return {"n": len(index), "dim": index.dim, "pruned": bool(index.prune),
            "build_seconds": round(build, 2), "n_queries": len(queries), "k": k,
            "query_p50_ms": round(latency["p50_ms"], 2),
            "query_p90_ms": round(latency["p90_ms"], 2),
            "single_queries_seconds": round(latency["mean_ms"] * len(queries) / 1e3, 2),
            "batched_queries_seconds": round(batched, 3),
            "index_mib": round(index.memory_bytes() / 2**20, 1),
            "own_peak_rss_mib": peak_rss_mib()}


def _bench_exact(vectors: np.ndarray | None, *, n_small: int, dim: int, n_queries: int, k: int,
                 seed: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Single-query latency of the exact index, scanning and pruning, at catalog size."""
    small = (l2_normalize(vectors) if vectors is not None
             else synthetic_embeddings(n_small, dim, seed=seed))
    out: dict[str, Any] = {"n": len(small), "dim": small.shape[1],
                           "data": "real embeddings" if vectors is not None else "synthetic",
                           "relative_contrast": round(relative_contrast(small, k=k, seed=seed), 3)}
    qrows = np.random.default_rng(seed).choice(len(small), min(n_queries, len(small)),
                                               replace=False)
    ids = np.arange(len(small)).astype(str)
    for prune in (False, True):
        index = SimilarityIndex(ids, small, normalize=False, prune=prune)
        stats = query_latency(index, ids[qrows], k=k)
        stats.update(_one_thread_cpu_ms(
            lambda i: index.query(ids[qrows[i % len(qrows)]], k, as_frame=False), len(qrows)))
        stats.update(build_s=round(index.build_seconds, 2), memory_mb=index.memory_bytes() / 2**20)
        out["pruned" if prune else "scan"] = stats
        log(f"exact {'pruned' if prune else 'scan'} @ {len(small):,} x {small.shape[1]}: {stats}")
    return out


#: The synthetic sets of the million-item benchmark. "clustered" is about as hard as real CNN
#: embeddings (relative contrast 1.82 at 70,000 items, against 2.05 for the Lite0 features of
#: Fashion-MNIST; lower is harder); "cluster_free" has no clusters for the IVF lists to follow
#: (relative contrast 1.65): a stress case.
SYNTHETIC_SETS: dict[str, dict[str, Any]] = {
    "clustered": {"n_clusters": 1000, "intrinsic_dim": 64, "spread": 0.8, "noise": 0.35},
    "cluster_free": {"n_clusters": 1, "intrinsic_dim": 32, "spread": 1.0, "noise": 0.35},
}


def _cached_catalog_features() -> np.ndarray | None:
    """The default catalog's pretrained features (every image its store holds), if notebook
    05 (or 03) stored them."""
    found = find_feature_stores(config.get_paths().features, model_key=config.DEFAULT_BACKBONE,
                                image_size=config.DEFAULT_IMAGE_SIZE)
    return np.asarray(open_feature_store(found[0]).features) if found else None


def _bench_faiss_ivf(gen: Mapping[str, Any], *, n_large: int, dim: int, nlist: int,
                     nprobes: Sequence[int], n_queries: int, k: int, seed: int,
                     log: Callable[[str], None]) -> dict[str, Any]:
    """Build an IVF-Flat index on ``n_large`` synthetic vectors, sweep nprobe, measure recall."""
    import faiss

    cfg: dict[str, Any] = {"n": n_large, "dim": dim, "nlist": nlist, "synthetic": dict(gen)}
    sample = synthetic_embeddings(70_000, dim, seed=seed, **gen)
    cfg["relative_contrast_at_70k"] = round(relative_contrast(sample, k=k, seed=seed), 3)
    del sample
    # the queries are not in the index
    queries = synthetic_embeddings(n_queries, dim, seed=seed, start=n_large, **gen)
    rss0 = rss_mib()
    t0 = time.perf_counter()
    train = synthetic_embeddings(min(n_large, 40 * nlist), dim, seed=seed, **gen)
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.train(train)
    del train
    cfg["train_s"] = round(time.perf_counter() - t0, 1)
    truth_s = np.full((n_queries, k), -np.inf, np.float32)
    truth_i = np.full((n_queries, k), -1, np.int64)
    chunk, t_add, t_truth = 131_072, 0.0, 0.0
    for lo in range(0, n_large, chunk):  # add in chunks; exact ground truth streamed alongside
        block = synthetic_embeddings(min(chunk, n_large - lo), dim, seed=seed, start=lo, **gen)
        t = time.perf_counter()
        index.add(block)
        t_add += time.perf_counter() - t
        t = time.perf_counter()
        p, s = top_k_rows(queries @ block.T, k)
        cat_s, cat_i = np.hstack([truth_s, s]), np.hstack([truth_i, p + lo])
        keep, truth_s = top_k_rows(cat_s, k)
        truth_i = np.take_along_axis(cat_i, keep, axis=1)
        t_truth += time.perf_counter() - t
        log(f"  added {lo + len(block):,} / {n_large:,}")
        del block
    cfg.update(add_s=round(t_add, 1), exact_ground_truth_s=round(t_truth, 1),
               exact_batched_scan_ms_per_query=round(1e3 * t_truth / n_queries, 2),
               index_memory_mb=round(faiss_index_bytes(index) / 2**20, 1),
               rss_growth_mb=None if rss0 is None else round(rss_mib() - rss0, 1))
    sweep = []
    for nprobe in nprobes:
        index.nprobe = int(nprobe)
        _, found = index.search(queries, k)
        stats = _latencies(lambda i: index.search(queries[i % n_queries][None], k), n_queries)
        stats.update(_one_thread_cpu_ms(lambda i: index.search(queries[i % n_queries][None], k),
                                        n_queries))
        stats.update(nprobe=int(nprobe), recall_at_k=neighbour_recall(found, truth_i))
        sweep.append(stats)
        log(f"  IVF nprobe={nprobe}: {stats}")
    cfg["sweep"] = sweep
    good = [s for s in sweep if s["recall_at_k"] >= 0.95]
    cfg["chosen"] = (min(good, key=lambda s: s["p50_ms"]) if good
                     else max(sweep, key=lambda s: s["recall_at_k"]))
    return cfg


def bench_recommender(*, n_small: int = 70_000, n_large: int = 1_000_000, dim: int = 1280,
                      n_queries: int = 200, k: int = 5, vectors: np.ndarray | str | None = "auto",
                      nlist: int = 1024, nprobes: Sequence[int] = (4, 8, 16, 32, 64, 128),
                      synthetic_sets: Mapping[str, Mapping[str, Any]] | None = None,
                      seed: int = SEED, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Query latency of exact search at catalog size and of FAISS IVF at a million items.

    Takes about 10 minutes on 2 idle cores (mostly IVF training and adding, per synthetic set)
    and about 7 GB of memory (the 1280-d million-item index is 4.8 GiB).

    Args:
        n_small: items of the exact-search benchmark (real vectors are cut to this many; when
            synthetic, 0 skips it).
        n_large: synthetic items of the FAISS benchmark (0 skips it).
        dim: vector length (Lite0 features: 1280).
        n_queries: timed single queries per setting (latency = one query at a time).
        k: neighbours per query.
        vectors: embeddings for the exact benchmark; ``"auto"``: the default catalog's cached
            pretrained features when they exist, else ``n_small`` synthetic vectors.
        nlist: IVF lists of the large index.
        nprobes: IVF settings swept; recall@k against exact search is measured for each.
        synthetic_sets: name -> options of :func:`synthetic_embeddings` (default
            :data:`SYNTHETIC_SETS`).
        seed: seed of the synthetic data and the IVF k-means.
        log: progress messages.

    Returns:
        A JSON-ready dict: ``exact`` (scan and pruned search) and ``faiss_ivf`` per synthetic set,
        with wall-clock latencies (p50/p90 ms), the one-thread CPU time per query (robust to
        other processes' load), recall@k, index memory and build times.
    """
    n_small, n_large = checks.positive_int_values(n_small=n_small, n_large=n_large, minimum=0)
    dim, n_queries, k = checks.positive_int_values(dim=dim, n_queries=n_queries, k=k)
    result: dict[str, Any] = {"k": k, "n_queries": n_queries, "cpus": os.cpu_count(),
                              "loadavg_at_start": load_averages()}
    if isinstance(vectors, str):
        if vectors != "auto":
            raise ValueError(f"vectors must be an array, None or 'auto'. "
                             f"Received: vectors={vectors!r}")
        vectors = _cached_catalog_features()
    if vectors is not None and n_small and len(vectors) > n_small:
        vectors = vectors[:n_small]  # the catalog size the target is stated for
    if n_small or vectors is not None:
        result["exact"] = _bench_exact(vectors, n_small=n_small, dim=dim, n_queries=n_queries, k=k,
                                       seed=seed, log=log)
    if n_large:
        result["faiss_ivf"] = {}
        for name, gen in (synthetic_sets or SYNTHETIC_SETS).items():
            log(f"FAISS IVF{nlist} on {n_large:,} x {dim} synthetic vectors ({name})")
            result["faiss_ivf"][name] = _bench_faiss_ivf(
                gen, n_large=n_large, dim=dim, nlist=nlist, nprobes=nprobes, n_queries=n_queries,
                k=k, seed=seed, log=log)
    result["loadavg_at_end"] = load_averages()
    return result


def write_benchmark(result: Mapping[str, Any], path: str | os.PathLike, *,
                    section: str = "recommend") -> Path:
    """Merge ``result`` into the JSON file at ``path`` under ``section`` (atomically; no
    ``machine`` key: :func:`~fashion_utils.tools.bench.measure.write_results` with ``machine=False``)."""
    return write_results(section, result, path=path, machine=False)
