"""Near-duplicate images: the hash, the groups, the collapsed top k."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fashion_utils.recommend import near_duplicates as nd

from conftest import write_image


def test_dhash_survives_recompression_and_resizing_but_not_another_picture(tmp_path):
    original = write_image(tmp_path / "a.png", size=(120, 90), seed=1)
    with Image.open(original) as img:
        img.convert("RGB").save(tmp_path / "a_small.jpg", quality=60)
        img.resize((60, 45)).save(tmp_path / "a_resized.png")
    other = write_image(tmp_path / "b.png", size=(120, 90), color=(30, 200, 60), seed=2)
    h = nd.image_hashes([original, tmp_path / "a_small.jpg", tmp_path / "a_resized.png", other])
    assert h.dtype == np.uint64
    d = nd.hamming(h[0], h)
    assert d[0] == 0 and d[1] <= 4 and d[2] <= 4 and d[3] > 10


def test_hamming_counts_differing_bits():
    a = np.array([0b1011, 0, 2 ** 64 - 1], dtype=np.uint64)
    b = np.array([0b0001, 0, 0], dtype=np.uint64)
    assert nd.hamming(a, b).tolist() == [2, 0, 64]


def test_groups_join_chains_within_the_distance_and_nothing_else():
    base = np.uint64(0x0F0F_F0F0_1234_5678)
    one_bit, two_bits = base ^ np.uint64(1), base ^ np.uint64(0b11 << 40)
    far = ~base  # 64 bits away
    hashes = np.array([base, far, one_bit, two_bits, base], dtype=np.uint64)
    groups = nd.near_duplicate_groups(hashes, max_distance=2)
    assert groups.tolist() == [0, 1, 0, 0, 0]
    exact = nd.near_duplicate_groups(hashes, max_distance=0)
    assert exact.tolist() == [0, 1, 2, 3, 0]
    summary = nd.group_summary(groups)
    assert summary == {"items": 5, "groups_of_two_or_more": 1, "items_in_such_groups": 4,
                       "largest_group": 4}


@pytest.mark.parametrize("confirm", [False, True])
def test_groups_equal_brute_force_on_random_hashes(confirm):
    rng = np.random.default_rng(0)
    seeds = rng.integers(0, 2 ** 63, 40, dtype=np.uint64)
    flips = np.uint64(1) << rng.integers(0, 64, (40, 3)).astype(np.uint64)
    hashes = np.concatenate([seeds, seeds ^ flips[:, 0], seeds ^ flips[:, 0] ^ flips[:, 1],
                             seeds[:10]])  # and 10 identical hashes
    thumbs = rng.integers(0, 256, (len(hashes), 16), dtype=np.uint8)
    thumbs[40:80] = np.clip(thumbs[:40].astype(int) + rng.integers(-6, 7, (40, 16)), 0, 255)
    groups = nd.near_duplicate_groups(hashes, max_distance=3,
                                      thumbnails=thumbs if confirm else None, max_difference=4)
    d = nd.hamming(hashes[:, None], hashes[None, :])
    if confirm:  # a pair needs its thumbnails within 4 grey levels on average, too
        diff = np.abs(thumbs[:, None, :].astype(int) - thumbs[None, :, :]).mean(axis=-1)
        d = np.where(diff <= 4, d, 99)
    parent = list(range(len(hashes)))  # brute-force connected components

    def find(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(d <= 3)):
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    assert groups.tolist() == [find(i) for i in range(len(hashes))]
    if confirm:  # some pairs were vetoed, some joined
        plain = nd.near_duplicate_groups(hashes, max_distance=3)
        assert 0 < nd.group_summary(groups)["items_in_such_groups"] < nd.group_summary(
            plain)["items_in_such_groups"]


def test_thumbnails_veto_a_hash_collision_between_different_pictures(tmp_path):
    """Two plain pictures with the same gradients (one hash) but another grey level are not
    one product; a re-encoded copy is."""
    dark, light = np.full((28, 28, 3), 40, np.uint8), np.full((28, 28, 3), 200, np.uint8)
    dark[8:20, 8:20], light[8:20, 8:20] = 90, 250
    paths = [tmp_path / "dark.png", tmp_path / "light.png", tmp_path / "dark_copy.jpg"]
    Image.fromarray(dark).save(paths[0])
    Image.fromarray(light).save(paths[1])
    Image.fromarray(dark).save(paths[2], quality=90)
    hashes, thumbs = nd.image_signatures(paths, cache_dir=tmp_path / "cache")
    assert hashes[0] == hashes[1] and nd.hamming(hashes[:1], hashes[2:])[0] <= 2
    assert thumbs.shape == (3, nd.THUMB_SIDE ** 2)
    assert nd.near_duplicate_groups(hashes, max_distance=2).tolist() == [0, 0, 0]
    assert nd.near_duplicate_groups(hashes, max_distance=2, thumbnails=thumbs).tolist() == [0, 1, 0]
    again = nd.image_signatures(paths, cache_dir=tmp_path / "cache")  # from the cache
    assert (again[0] == hashes).all() and (again[1] == thumbs).all()
    with pytest.raises(ValueError, match="max_difference=300"):
        nd.near_duplicate_groups(hashes, thumbnails=thumbs, max_difference=300)


def test_the_hash_cache_serves_unchanged_files_and_rehashes_changed_ones(tmp_path, monkeypatch):
    paths = [write_image(tmp_path / f"{i}.png", seed=i) for i in range(3)]
    first = nd.image_hashes(paths, cache_dir=tmp_path / "cache")
    calls = []
    real = nd.image_signature
    monkeypatch.setattr(nd, "image_signature", lambda p: calls.append(p) or real(p))
    np.testing.assert_array_equal(nd.image_hashes(paths, cache_dir=tmp_path / "cache"), first)
    assert calls == []
    write_image(paths[1], seed=99, size=(40, 30))  # changed file
    again = nd.image_hashes(paths, cache_dir=tmp_path / "cache")
    assert [str(p) for p in calls] == [str(paths[1])] and again[0] == first[0]
    # one decode gives both: the hash is dhash's, the thumbnail 16 x 16
    value, thumb = nd.image_signature(paths[1])
    assert value == nd.dhash(paths[1]) == again[1] and thumb.shape == (16, 16)


def test_collapse_keeps_the_first_of_each_group_and_skips_the_querys():
    groups = np.array([0, 1, 1, 3, 0, 5, 6])
    neighbours = np.array([[4, 1, 2, 3, 5, 6],  # query 0: 4 is its own group, 2 repeats 1
                           [2, 0, 4, 3, -1, -1]])  # query 1: 2 is its twin, 4 repeats 0
    out = nd.collapse_neighbours(neighbours, [0, 1], groups, k=3)
    assert out.tolist() == [[1, 3, 5], [0, 3, -1]]


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="max_distance"):
        nd.near_duplicate_groups(np.zeros(3, np.uint64), max_distance=20)
    with pytest.raises(ValueError, match="k"):
        nd.collapse_neighbours(np.zeros((1, 2), int), [0], np.zeros(3, int), k=0)


def test_evaluation_with_collapse_counts_distinct_products_only():
    """Four copies of one product around each query: precision@3 is perfect, but collapsed
    the copies count once and the query's own copies never."""
    import pandas as pd

    from fashion_utils.recommend import retrieval

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((2, 8))
    vectors, rows = [], []
    for cls in range(2):
        for product in range(4):  # 4 products per class ...
            base = centres[cls] + 0.3 * rng.standard_normal(8)
            for copy in range(3):  # ... each photographed 3 times (near-identical)
                vectors.append(base + 0.001 * rng.standard_normal(8))
                rows.append({"id": f"{cls}-{product}-{copy}", "articleType": f"c{cls}",
                             "group": cls * 12 + product * 3})
    meta = pd.DataFrame(rows)
    common = dict(ids=meta["id"], metadata=meta, query_ids=meta["id"][::3],
                  levels={"articleType": ["articleType"]}, k=3, map_k=3, mrr_k=3, recall_k=3,
                  random_name=None)
    common["levels"] = {"articleType": ["articleType"], "product": ["group"]}
    plain = retrieval.evaluate_sources({"x": np.array(vectors)}, **common).set_index("level")
    collapsed = retrieval.evaluate_sources({"x": np.array(vectors)}, groups=meta["group"],
                                           **common).set_index("level")
    assert plain.loc["articleType", "precision@3"] == 1.0  # two twins + another product
    assert collapsed.loc["articleType", "precision@3"] == 1.0  # 3 other products of the class
    # "the same product": plain, the two twins fill 2 of 3 places; collapsed, never shown
    assert plain.loc["product", "precision@3"] == pytest.approx(2 / 3)
    assert collapsed.loc["product", "precision@3"] == 0.0
    index = retrieval.SimilarityIndex(meta["id"], np.array(vectors), metadata=meta)
    deeper, _ = index.query_many(meta["id"][::3].tolist(), 9)
    kept = nd.collapse_neighbours(deeper, index.positions(meta["id"][::3].tolist()),
                                  meta["group"].to_numpy(), k=3)
    assert all(len(set(meta["group"].to_numpy()[row])) == 3 for row in kept)  # distinct
    assert not any(meta["group"].to_numpy()[q * 3] in meta["group"].to_numpy()[row]
                   for q, row in enumerate(kept))  # never the query's own product
