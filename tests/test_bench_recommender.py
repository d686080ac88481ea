"""The recommender benchmark: synthetic embeddings, latency helpers, the small end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fashion_utils import config
from fashion_utils.tools.bench import recommender
from fashion_utils.recommend.similarity import SimilarityIndex
from fashion_utils.vision import features


def test_synthetic_embeddings_are_the_same_in_any_slice():
    whole = recommender.synthetic_embeddings(300, 8, seed=5)
    np.testing.assert_array_equal(recommender.synthetic_embeddings(100, 8, seed=5, start=150),
                                  whole[150:250])
    np.testing.assert_allclose(np.linalg.norm(whole, axis=1), 1.0, rtol=1e-5)


def test_faiss_hnsw_recall_is_high_on_clustered_data():
    x = recommender.synthetic_embeddings(2000, 32, n_clusters=20, intrinsic_dim=8, seed=3)
    ids = np.arange(len(x)).astype(str)
    exact = SimilarityIndex(ids, x)
    hnsw = SimilarityIndex(ids, x, backend="faiss", faiss_index="hnsw", hnsw_m=16, ef_search=64)
    assert hnsw.recall_against(exact, ids[:100], k=5) >= 0.9
    assert "0" not in hnsw.query("0", k=5)["id"].tolist()


def test_bench_recommender_runs_small(tmp_path):
    result = recommender.bench_recommender(
        n_small=2000, n_large=3000, dim=16, n_queries=10, nlist=8, nprobes=(8,), vectors=None,
        log=lambda _: None, synthetic_sets={"tiny": {"n_clusters": 5, "intrinsic_dim": 4}})
    assert result["exact"]["scan"]["p50_ms"] > 0
    assert result["exact"]["pruned"]["one_thread_cpu_p50_ms"] >= 0
    # all lists probed
    assert result["faiss_ivf"]["tiny"]["sweep"][0]["recall_at_k"] == pytest.approx(1.0)
    assert len(result["loadavg_at_start"]) == 3 and len(result["loadavg_at_end"]) == 3
    assert isinstance(result["faiss_ivf"]["tiny"]["rss_growth_mb"], float)
    out = recommender.write_benchmark(result, tmp_path / "bench.json")
    assert "recommend" in out.read_text()
    assert set(json.loads(out.read_text())) == {"recommend"}  # no machine key, as before


@pytest.mark.parametrize("kwargs, match", [
    (dict(vectors="mine"), "vectors must be an array, None or 'auto'. Received: vectors='mine'"),
    (dict(n_queries=0), "n_queries must be an integer >= 1. Received: n_queries=0"),
    (dict(n_large=-1), "n_large must be an integer >= 0. Received: n_large=-1"),
])
def test_bench_recommender_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        recommender.bench_recommender(**{"n_small": 0, "n_large": 0, "log": lambda _: None,
                                         **kwargs})


def _fake_store(cache_dir, n: int, *, model_key: str, image_size: int) -> np.ndarray:
    """A shard of ``n`` vectors in a store, written by the writers ``extract_embeddings`` uses."""
    vectors = np.random.default_rng(n).standard_normal((n, 4)).astype(np.float32)
    folder = features.store_folder(cache_dir, model_key=model_key, image_size=image_size)
    folder.mkdir(parents=True, exist_ok=True)
    features._store_meta(folder, model_key=model_key, image_size=image_size, letterbox=False)
    features._write_shard(folder, [f"{model_key}-{n}-{i}" for i in range(n)], vectors, 1.0)
    return vectors


def test_auto_vectors_are_every_image_of_the_default_feature_store(output_root):
    """``vectors="auto"`` reads the store of the default backbone and size only, every shard."""
    cache_dir = config.get_paths().features
    size, key = config.DEFAULT_IMAGE_SIZE, config.DEFAULT_BACKBONE
    first = _fake_store(cache_dir, 20, model_key=key, image_size=size)
    second = _fake_store(cache_dir, 30, model_key=key, image_size=size)
    _fake_store(cache_dir, 50, model_key=key, image_size=size + 1)
    _fake_store(cache_dir, 60, model_key="vgg16", image_size=size)
    np.testing.assert_array_equal(recommender._cached_catalog_features(),
                                  np.vstack([first, second]))
    result = recommender.bench_recommender(n_small=25, n_large=0, n_queries=5, log=lambda _: None)
    assert result["exact"]["data"] == "real embeddings"
    assert (result["exact"]["n"], result["exact"]["dim"]) == (25, 4)  # cut to n_small


def test_auto_vectors_fall_back_to_synthetic_without_a_cache(output_root):
    assert recommender._cached_catalog_features() is None
    result = recommender.bench_recommender(n_small=300, n_large=0, dim=8, n_queries=5,
                                           log=lambda _: None)
    assert result["exact"]["data"] == "synthetic" and result["exact"]["n"] == 300


def test_index_stage_reads_a_feature_store_folder(tmp_path):
    """``measure_index`` opens the store through ``features.open_feature_store``."""
    _fake_store(tmp_path, 50, model_key="efficientnet_lite0", image_size=32)
    folder = features.store_folder(tmp_path, model_key="efficientnet_lite0", image_size=32)
    res = recommender.measure_index(feature_cache=str(folder), n_queries=5, k=3)
    assert (res["n"], res["dim"], res["n_queries"], res["k"]) == (50, 4, 5, 3)
    assert res["query_p50_ms"] > 0 and res["index_mib"] >= 0
