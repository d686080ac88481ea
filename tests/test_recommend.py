"""The similarity index (exactness, self-exclusion, filters, new images) and the embeddings.

The retrieval metrics and evaluations are tested in test_retrieval.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fashion_utils.vision import models
from fashion_utils.recommend import embeddings, similarity
from fashion_utils.recommend.similarity import SimilarityIndex


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _brute_force(x: np.ndarray, q: np.ndarray, k: int, exclude: int | None = None,
                 mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The reference: every score in float64, sorted, self and masked rows left out."""
    scores = x.astype(np.float64) @ q.astype(np.float64)
    allowed = np.ones(len(x), bool) if mask is None else mask.copy()
    if exclude is not None:
        allowed[exclude] = False
    rows = np.flatnonzero(allowed)
    order = rows[np.argsort(-scores[rows], kind="stable")][:k]
    return order, scores[order]


def _meta(n: int) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"p{i}" for i in range(n)],
                         "gender": np.where(np.arange(n) % 2 == 0, "Men", "Women"),
                         "articleType": np.array(["Shirt", "Shoe", "Bag"])[np.arange(n) % 3]})


@pytest.fixture
def random_index_data():
    rng = np.random.default_rng(0)
    x = _unit(rng, 3000, 48)
    ids = [f"p{i}" for i in range(len(x))]
    return ids, x


# --------------------------------------------------------------------------- embeddings


def test_l2_normalize_gives_unit_rows_and_keeps_zero_rows():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [-1.0, 0.0]])
    out = similarity.l2_normalize(x)
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0], [-1.0, 0.0]])
    assert out.dtype == np.float32
    assert x[0, 0] == 3.0  # the input is not modified


def test_l2_normalize_rejects_non_finite_values():
    with pytest.raises(ValueError, match="non-finite"):
        similarity.l2_normalize([[1.0, np.nan]])


def test_histogram_vector_of_a_black_image_by_hand():
    v = embeddings.histogram_vector(np.zeros((5, 5, 3), np.uint8), bins=4, intensity_bins=32)
    expected = np.zeros(64 + 32, np.float32)
    expected[[0, 64]] = 1 / np.sqrt(2)  # all pixels in colour cell 0 and grey bin 0
    np.testing.assert_allclose(v, expected, atol=1e-7)


def test_histogram_vector_separates_colours():
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((4, 4, 3), np.uint8)
    blue[..., 2] = 255
    assert float(embeddings.histogram_vector(red) @ embeddings.histogram_vector(red)) == pytest.approx(1.0)
    assert float(embeddings.histogram_vector(red) @ embeddings.histogram_vector(blue)) < 0.01
    with pytest.raises(ValueError, match="RGB uint8"):
        embeddings.histogram_vector(np.zeros((4, 4), np.uint8))


@pytest.fixture
def image_catalog(tmp_path):
    """Eight 16x16 PNG images: four colours, two shades each; ids i0..i7."""
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40)]
    rows = []
    for i in range(8):
        rgb = np.array(colours[i % 4]) * (1.0 if i < 4 else 0.8)
        img = np.zeros((16, 16, 3), np.uint8)
        img[4:12, 4:12] = rgb.astype(np.uint8)
        img[:2] = 255 * (i % 2)
        path = tmp_path / f"i{i}.png"
        Image.fromarray(img).save(path)
        rows.append({"id": f"i{i}", "image_path": str(path), "articleType": f"c{i % 4}"})
    return pd.DataFrame(rows)


def test_histogram_embeddings_are_cached(image_catalog, tmp_path):
    ids, v = embeddings.histogram_embeddings(image_catalog, cache_dir=tmp_path / "cache", image_size=16,
                                            progress=False)
    assert list(ids) == image_catalog["id"].tolist() and v.shape == (8, 96)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-6)
    assert len(list((tmp_path / "cache").glob("histogram_*.npy"))) == 1
    _, again = embeddings.histogram_embeddings(image_catalog, cache_dir=tmp_path / "cache", image_size=16,
                                              progress=False)
    np.testing.assert_array_equal(v, again)


# --------------------------------------------------------------------------- the exact index


@pytest.mark.parametrize("prune", [False, True])
def test_exact_index_matches_brute_force(random_index_data, monkeypatch, prune):
    ids, x = random_index_data
    monkeypatch.setattr(similarity, "_SCORE_BUDGET_BYTES", 4 * 1024 * 8)  # force several chunks
    index = SimilarityIndex(ids, x, prune=prune, prune_dims=8)
    assert index.prune is prune
    for q in [0, 17, 2999]:
        ref_pos, ref_scores = _brute_force(x, x[q], 7, exclude=q)
        result = index.query(ids[q], k=7)
        assert result["id"].tolist() == [ids[i] for i in ref_pos]
        np.testing.assert_allclose(result["score"], ref_scores, atol=1e-5)


def test_pruned_search_is_exact_on_low_rank_data():
    """Where the bound prunes (most energy in a few directions), results stay exact."""
    rng = np.random.default_rng(1)
    z = rng.standard_normal((4000, 6)) @ rng.standard_normal((6, 300))
    x = similarity.l2_normalize(z + 0.05 * rng.standard_normal(z.shape))
    ids = np.arange(len(x))
    pruned = SimilarityIndex(ids, x, prune=True, prune_dims=16)
    for q in rng.choice(len(x), 25, replace=False):
        pos, scores = pruned.search(x[q], 10, exclude=[q])
        ref_pos, ref_scores = _brute_force(x, x[q], 10, exclude=q)
        np.testing.assert_allclose(scores[0], ref_scores, atol=1e-5)
        assert set(pos[0]) == set(ref_pos)
    np.testing.assert_allclose(pruned.vector("5"), x[5], atol=1e-5)  # original basis back


def test_batched_search_equals_single_queries(random_index_data):
    ids, x = random_index_data
    index = SimilarityIndex(ids, x)
    query_ids = ids[:40]
    pos, scores = index.query_many(query_ids, k=5, batch_size=16)
    for row, qid in enumerate(query_ids):
        single = index.query(qid, k=5)
        assert index.ids[pos[row]].tolist() == single["id"].tolist()
        np.testing.assert_allclose(scores[row], single["score"], atol=1e-6)


def test_query_never_returns_the_query_itself_but_keeps_its_twin():
    x = np.eye(4, dtype=np.float32)[[0, 0, 1, 2, 3]]  # items a and b are identical
    index = SimilarityIndex(list("abcde"), x)
    top = index.query("a", k=4)
    assert "a" not in top["id"].tolist()
    assert top.iloc[0]["id"] == "b" and top.iloc[0]["score"] == pytest.approx(1.0)
    assert index.query("a", k=10)["id"].tolist()[0] == "b" and len(index.query("a", k=10)) == 4


def test_query_by_vector_does_not_exclude_anything(random_index_data):
    ids, x = random_index_data
    index = SimilarityIndex(ids, x)
    result = index.query(x[3] * 5.0, k=3, as_frame=False)  # scaling does not change cosine
    assert result[0][0] == ids[3] and result[0][1] == pytest.approx(1.0, abs=1e-5)
    assert all(isinstance(i, str) and isinstance(s, float) for i, s in result)


@pytest.mark.parametrize("filters, check", [
    ({"gender": "same"}, lambda r, q: (r["gender"] == q["gender"]).all()),
    ({"articleType": "different"}, lambda r, q: (r["articleType"] != q["articleType"]).all()),
    ({"articleType": "Shoe"}, lambda r, q: (r["articleType"] == "Shoe").all()),
    ({"articleType": ["Shoe", "Bag"], "gender": "same"},
     lambda r, q: r["articleType"].isin(["Shoe", "Bag"]).all() and (r["gender"] == q["gender"]).all()),
])
@pytest.mark.parametrize("backend", ["exact", "faiss"])
def test_filters_keep_only_matching_items_and_stay_exact(random_index_data, filters, check, backend):
    ids, x = random_index_data
    meta = _meta(len(ids))
    index = SimilarityIndex(ids, x, metadata=meta, backend=backend, faiss_index="flat")
    q = 4
    result = index.query(ids[q], k=6, filters=filters)
    assert len(result) == 6 and check(result, meta.iloc[q])
    mask = index.filter_mask(filters, query_position=q)
    ref_pos, _ = _brute_force(x, x[q], 6, exclude=q, mask=mask)
    assert result["id"].tolist() == [ids[i] for i in ref_pos]


def test_filter_errors_are_explicit(random_index_data):
    ids, x = random_index_data
    index = SimilarityIndex(ids, x, metadata=_meta(len(ids)))
    with pytest.raises(ValueError, match="Unknown filter column 'colour'"):
        index.query(ids[0], filters={"colour": "same"})
    with pytest.raises(ValueError, match="must be an id"):
        index.query(x[0], filters={"gender": "same"})
    assert index.query(ids[0], filters={"gender": "Other"}).empty  # nothing matches: empty, not an error
    with pytest.raises(ValueError, match="need metadata"):
        SimilarityIndex(ids, x).query(ids[0], filters={"gender": "same"})


def test_results_carry_metadata_columns(random_index_data):
    ids, x = random_index_data
    result = SimilarityIndex(ids, x, metadata=_meta(len(ids)).set_index("id")).query(ids[1], k=2)
    assert list(result.columns) == ["rank", "id", "score", "gender", "articleType"]
    assert result["rank"].tolist() == [1, 2]


@pytest.mark.parametrize("kwargs, match", [
    ({"backend": "annoy"}, "backend must be one of"),
    ({"faiss_index": "lsh"}, "faiss_index must be one of"),
    ({"prune": "yes"}, "prune must be"),
])
def test_index_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SimilarityIndex(["a", "b"], np.eye(2), **kwargs)


def test_index_rejects_bad_inputs():
    with pytest.raises(ValueError, match="duplicates such as \\['a'\\]"):
        SimilarityIndex(["a", "a"], np.eye(2))
    with pytest.raises(ValueError, match="N = len\\(ids\\) = 3"):
        SimilarityIndex(["a", "b", "c"], np.eye(2))
    with pytest.raises(ValueError, match="metadata lacks 1 id"):
        SimilarityIndex(["a", "b"], np.eye(2), metadata=pd.DataFrame({"id": ["a"], "x": [1]}))
    index = SimilarityIndex(["a", "b"], np.eye(2))
    with pytest.raises(KeyError, match="'zz'"):
        index.query("zz")
    with pytest.raises(ValueError, match="k must be an integer >= 1. Received: k=0"):
        index.query("a", k=0)
    with pytest.raises(ValueError, match="\\(2,\\) vector"):
        index.query(np.ones(3))


def test_zero_vectors_are_kept_and_counted():
    index = SimilarityIndex(["a", "b", "c"], np.array([[1.0, 0.0], [0.0, 0.0], [0.6, 0.8]]))
    assert index.n_zero_vectors == 1 and len(index) == 3
    assert index.query("a", k=2, as_frame=False) == [("c", pytest.approx(0.6)), ("b", 0.0)]


# --------------------------------------------------------------------------- FAISS


def test_faiss_ivf_with_every_list_probed_is_exact(random_index_data):
    ids, x = random_index_data
    exact = SimilarityIndex(ids, x)
    ivf = SimilarityIndex(ids, x, backend="faiss", faiss_index="ivf", nlist=8, nprobe=8)
    assert ivf.recall_against(exact, ids[:50], k=5) == pytest.approx(1.0)
    assert ivf.memory_bytes() >= x.nbytes


def test_recall_at_k_by_hand():
    found = np.array([[1, 2, 3], [4, 5, -1]])
    truth = np.array([[1, 2, 9], [4, 7, 8]])
    assert similarity.neighbour_recall(found, truth) == pytest.approx(3 / 6)


# --------------------------------------------------------------------------- new images


@pytest.fixture
def tiny_model():
    """A stand-in for the backbone: mean colour per quadrant (12-d), no weights to load."""
    import keras

    inputs = keras.Input((16, 16, 3), name="image")
    x = keras.layers.AveragePooling2D(8, name="quadrants")(inputs)
    x = keras.layers.Flatten(name="flat")(x)
    return keras.Model(inputs, x, name="tiny_embedder")


def test_query_image_embeds_a_new_photo_on_the_fly(image_catalog, tiny_model, tmp_path):
    vectors = embeddings.embed_image_files(image_catalog["image_path"], model=tiny_model, image_size=16)
    index = SimilarityIndex(image_catalog["id"], vectors, metadata=image_catalog[["id", "articleType"]])
    photo = tmp_path / "new_photo.jpg"  # a product not in the catalog: a re-encoded, shifted copy of i5
    img = np.asarray(Image.open(image_catalog.loc[5, "image_path"]).convert("RGB"))
    Image.fromarray(np.roll(img, 1, axis=1)).save(photo, quality=95)
    result = embeddings.query_image(index, photo, model=tiny_model, image_size=16, k=3)
    assert result.iloc[0]["id"] == "i5" and result.iloc[0]["score"] > 0.99
    assert len(result) == 3  # nothing excluded: the photo is not an indexed item


def test_query_image_errors(image_catalog, tiny_model, tmp_path):
    vectors = embeddings.embed_image_files(image_catalog["image_path"], model=tiny_model, image_size=16)
    index = SimilarityIndex(image_catalog["id"], vectors)
    with pytest.raises(FileNotFoundError, match="nothere.png"):
        embeddings.query_image(index, tmp_path / "nothere.png", model=tiny_model, image_size=16)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot decode"):
        embeddings.query_image(index, bad, model=tiny_model, image_size=16)


def test_embedding_model_takes_the_penultimate_dense_layer(tmp_path, image_catalog):
    import keras

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    x = keras.layers.Dense(7, activation="relu", name="embedding")(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="classes")(x)
    model = keras.Model(inputs, outputs, name="finetuned")
    assert embeddings.embedding_model(model).output_shape == (None, 7)
    path = tmp_path / "models" / "kept_articleType.keras"
    path.parent.mkdir()
    model.save(path)
    assert embeddings.find_kept_model(path.parent, target="masterCategory") == path
    assert embeddings.find_kept_model(tmp_path, target="articleType") is None
    ids, v = embeddings.model_embeddings(image_catalog, path, cache_dir=tmp_path / "cache", progress=False)
    assert v.shape == (8, 7) and list(ids) == image_catalog["id"].tolist()
    with pytest.raises(ValueError, match="no layer 'nope'"):
        embeddings.embedding_model(model, layer_name="nope")


def test_a_retrained_model_gets_a_new_cache_and_an_unchanged_one_reuses_it(tmp_path, image_catalog):
    """The cache key holds the model file's digest: a model saved again with other weights under
    the same name is never served the old vectors; the same file is served from the cache."""
    import keras

    def model(seed):
        keras.utils.set_random_seed(seed)
        inputs = keras.Input((16, 16, 3))
        x = keras.layers.GlobalAveragePooling2D()(inputs)
        x = keras.layers.Dense(5, activation="relu", name="embedding")(x)
        return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))

    path, cache = tmp_path / "finetuned_articleType.keras", tmp_path / "cache"
    model(1).save(path)
    _, first = embeddings.model_embeddings(image_catalog, path, cache_dir=cache, progress=False)
    first = np.array(first)
    _, again = embeddings.model_embeddings(image_catalog, path, cache_dir=cache, progress=False)
    np.testing.assert_array_equal(first, again)
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 1  # served, not recomputed
    model(2).save(path)  # retrained: same name, other weights
    _, retrained = embeddings.model_embeddings(image_catalog, path, cache_dir=cache,
                                                   progress=False)
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 2
    assert not np.allclose(first, retrained)


def test_embedding_model_finds_the_dense_layer_inside_a_nested_head(tmp_path, image_catalog):
    """Notebook 04's layout: image -> Resizing -> backbone model -> head model -> output."""
    import keras

    backbone_in = keras.Input((16, 16, 3))
    backbone = keras.Model(backbone_in, keras.layers.GlobalAveragePooling2D()(backbone_in), name="backbone")
    head_in = keras.Input((3,), name="features")
    h = keras.layers.Dense(6, activation="relu", name="dense_0")(head_in)
    h = keras.layers.Dropout(0.1)(h)
    head = keras.Model(head_in, keras.layers.Dense(4, name="predictions")(h), name="head")
    image = keras.Input((None, None, 3), name="image")
    model = keras.Model(image, head(backbone(keras.layers.Resizing(16, 16, name="resize")(image))), name="e2e")
    embed = embeddings.embedding_model(model)
    assert embed.output_shape == (None, 6) and models.model_image_size(embed) == 16
    x = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    dense = head.get_layer("dense_0")
    expected = np.maximum(0, x.mean(axis=(1, 2)) @ dense.kernel.numpy() + dense.bias.numpy())
    np.testing.assert_allclose(embed(x).numpy(), expected, rtol=1e-5, atol=1e-5)
    assert embeddings.embedding_model(model, layer_name="dense_0").output_shape == (None, 6)
    path = tmp_path / "finetuned_articleType.keras"
    model.save(path)
    ids, v = embeddings.model_embeddings(image_catalog, path, cache_dir=tmp_path / "cache", progress=False)
    assert v.shape == (8, 6)  # image size read from the Resizing layer


@pytest.mark.slow  # Lite0 at 32 px, ImageNet weights and random ones: ~20 s
def test_a_frozen_backbone_model_embeds_from_the_backbones_feature_cache(tmp_path, image_catalog):
    """04's frozen candidate: with the backbone's finished cache, only the head runs over the
    catalog and gives what the whole model gives; with no cache, or a cache that is not its
    backbone's, every image runs through the model (the latter warns)."""
    from fashion_utils.vision import features
    from fashion_utils.training import recipes
    from fashion_utils.vision.backbones import feature_dim

    lite, names = "efficientnet_lite0", ["c0", "c1", "c2", "c3"]
    rng = np.random.default_rng(0)
    head = models.build_classifier_head(feature_dim(lite), len(names))
    head.set_weights([rng.normal(size=w.shape).astype("float32") for w in head.get_weights()])

    def frozen(weights, folder):
        path = folder / "kept_articleType.keras"
        recipes.FrozenBackbone().train(
            head, backbone=lite, class_names=names, image_size=32, model_path=path,
            val_accuracy=0.5, seconds=1.0, train_images=8, val_images=8, weights=weights)
        whole = embeddings.load_embedding_model(path)
        paths = image_catalog["image_path"].tolist()
        return path, similarity.l2_normalize(
            features.predict_image_files(whole, paths, image_size=32))

    def dirs(cache):
        return sorted(p.name for p in cache.iterdir() if p.is_dir())

    path, expected = frozen("imagenet", tmp_path)
    assert models.frozen_backbone_name(embeddings._load_model(path)) == lite
    cache = tmp_path / "cache"
    features.extract_features(image_catalog, lite, image_size=32, cache_dir=cache, progress=False)
    before = dirs(cache)
    ids, vectors = embeddings.model_embeddings(image_catalog, path, cache_dir=cache,
                                                   progress=False)
    assert dirs(cache) == before  # the model never ran over the catalog: nothing new cached
    assert list(ids) == image_catalog["id"].tolist() and vectors.shape == (8, 20)
    np.testing.assert_allclose(vectors, expected, atol=1e-4)

    empty = tmp_path / "no_cache"  # no backbone cache: the model embeds every image
    _, vectors = embeddings.model_embeddings(image_catalog, path, cache_dir=empty,
                                                 progress=False)
    np.testing.assert_allclose(vectors, expected, atol=1e-4)
    assert len(dirs(empty)) == 1 and dirs(empty)[0].startswith("kept_articleType")

    other = tmp_path / "random_backbone"  # named frozen Lite0, but not the cache's weights
    other.mkdir()
    path, expected = frozen(None, other)
    with pytest.warns(UserWarning, match="does not reproduce the model on 8 images"):
        _, vectors = embeddings.model_embeddings(image_catalog, path, cache_dir=cache,
                                                     progress=False)
    np.testing.assert_allclose(vectors, expected, atol=1e-4)
    assert len(dirs(cache)) == len(before) + 1


def test_query_latency_needs_query_ids():
    index = similarity.SimilarityIndex(["a", "b", "c"], np.eye(3))
    stats = similarity.query_latency(index, ["a", "b"], k=1)
    assert set(stats) == {"p50_ms", "p90_ms", "mean_ms"} and stats["p50_ms"] > 0
    with pytest.raises(ValueError, match="at least one query id"):
        similarity.query_latency(index, [])
