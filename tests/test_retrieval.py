"""Retrieval metrics (by hand and by their properties), relevance levels and the evaluations.

Every metric takes a boolean relevance matrix, so the expected values below are worked out by
hand in the comments; the property tests draw random matrices and check what must always hold.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from fashion_utils.recommend import retrieval
from fashion_utils.views import plots
from fashion_utils.recommend.similarity import SimilarityIndex  # noqa: E402

# --------------------------------------------------------------------------- metrics


def test_precision_and_average_precision_by_hand():
    rel = np.array([[1, 0, 1, 0, 0],
                    [0, 0, 0, 0, 0],
                    [1, 1, 1, 1, 1]], dtype=bool)
    assert retrieval.precision_at_k(rel) == pytest.approx((2 / 5 + 0 + 1) / 3)
    assert retrieval.precision_at_k(rel, k=1) == pytest.approx(2 / 3)
    ap = retrieval.average_precision_at_k(rel, n_relevant=[2, 3, 10])
    np.testing.assert_allclose(ap, [(1 + 2 / 3) / 2, 0.0, 1.0])
    # R = 4 relevant items in the gallery, two found at ranks 2 and 4: (1/2 + 2/4) / 4
    assert retrieval.average_precision_at_k([[0, 1, 0, 1]], n_relevant=4)[0] == pytest.approx(0.25)
    # without R: averaged over the relevant items retrieved
    assert retrieval.average_precision_at_k([[0, 1, 0, 1]])[0] == pytest.approx(0.5)
    assert retrieval.mean_average_precision_at_k(rel, n_relevant=[2, 3, 10]) == pytest.approx(
        ((1 + 2 / 3) / 2 + 1) / 3)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_metrics_are_one_for_perfect_lists_and_zero_for_empty_ones(k):
    assert retrieval.precision_at_k(np.ones((4, 5), bool), k=k) == 1.0
    assert retrieval.mean_average_precision_at_k(np.ones((4, 5), bool), k=k, n_relevant=100) == 1.0
    assert retrieval.precision_at_k(np.zeros((4, 5), bool), k=k) == 0.0
    assert retrieval.mean_average_precision_at_k(np.zeros((4, 5), bool), k=k) == 0.0


def test_metric_errors():
    with pytest.raises(ValueError, match="k=6 exceeds the 5"):
        retrieval.precision_at_k(np.ones((2, 5)), k=6)
    with pytest.raises(ValueError, match="\\(queries, k\\) matrix"):
        retrieval.precision_at_k(np.ones(5))


def test_evaluate_neighbours_by_hand():
    labels = pd.DataFrame({"articleType": ["a", "a", "b", "b", "b"], "master": ["x"] * 5})
    neighbours = np.array([[1, 2], [4, 3]])  # query 0 (a): a, b ; query 2 (b): b, b
    table = retrieval.evaluate_neighbours(neighbours, [0, 2], labels, k=2, map_k=2, mrr_k=2,
                                          recall_k=2)
    assert table.loc["articleType", "precision@2"] == pytest.approx((1 / 2 + 1) / 2)
    # AP query 0: hit at rank 1, R = 1 -> 1; query 2: hits at 1, 2, R = 2 -> 1
    assert table.loc["articleType", "mAP@2"] == pytest.approx(1.0)
    assert table.loc["master", "precision@2"] == 1.0
    assert table.loc["articleType", "chance"] == pytest.approx((1 / 4 + 2 / 4) / 2)


def test_random_neighbours_skip_the_query_and_score_at_chance():
    labels = pd.DataFrame({"c": np.repeat(["a", "b", "c", "d"], 250)})
    queries = np.arange(0, 1000, 7)
    nb = retrieval.random_neighbours(1000, queries, 10, seed=0)
    assert nb.shape == (len(queries), 10) and (nb != queries[:, None]).all()
    assert all(len(set(row)) == 10 for row in nb) and nb.min() >= 0 and nb.max() < 1000
    np.testing.assert_array_equal(nb, retrieval.random_neighbours(1000, queries, 10, seed=0))
    table = retrieval.evaluate_neighbours(nb, queries, labels, k=10, map_k=10)
    assert abs(table.loc["c", "precision@10"] - table.loc["c", "chance"]) < 0.05


def test_evaluate_index_on_separable_classes():
    rng = np.random.default_rng(2)
    centres = np.eye(16)[:3] * 5  # orthogonal class centres, noise well below their distance
    labels = np.repeat(["x", "y", "z"], 50)
    x = centres[np.repeat(np.arange(3), 50)] + 0.5 * rng.standard_normal((150, 16))
    meta = pd.DataFrame({"id": np.arange(150).astype(str), "articleType": labels})
    index = SimilarityIndex(meta["id"], x, metadata=meta)
    table = retrieval.evaluate_index(index, meta["id"][::5], label_columns=["articleType"])
    assert table.loc["articleType", "precision@5"] == table.loc["articleType", "mAP@10"] == 1.0


def test_query_ids_for_evaluation_prefers_saved_splits(tmp_path):
    catalog = pd.DataFrame({"id": ["1", "2", "3", "4"],
                            "split": ["train", "test", "train", "test"]})
    splits = tmp_path / "splits.csv"
    pd.DataFrame({"id": ["1", "2", "3", "9"],
                  "split": ["test", "train", "test", "test"]}).to_csv(splits, index=False)
    assert retrieval.query_ids_for_evaluation(catalog, splits_path=splits)[0] == ["1", "3"]
    ids, source = retrieval.query_ids_for_evaluation(catalog, splits_path=tmp_path / "missing.csv")
    assert ids == ["2", "4"] and "split column" in source
    ids, source = retrieval.query_ids_for_evaluation(catalog.drop(columns="split"),
                                                     fraction=0.5, seed=1)
    assert len(ids) == 2 and "random" in source


def test_the_validation_side_comes_from_the_splits_and_is_never_drawn_at_random(tmp_path):
    catalog = pd.DataFrame({"id": ["1", "2", "3", "4"], "split": ["train", "val", "test", "val"]})
    splits = tmp_path / "splits.csv"
    pd.DataFrame({"id": ["1", "2", "3", "4"],
                  "split": ["val", "train", "test", "val"]}).to_csv(splits, index=False)
    ids, source = retrieval.query_ids_for_evaluation(catalog, splits_path=splits, split="val")
    assert ids == ["1", "4"] and "val split" in source
    assert retrieval.query_ids_for_evaluation(catalog, split="val")[0] == ["2", "4"]
    assert retrieval.query_ids_for_evaluation(catalog.drop(columns="split"), split="val") == (
        [], "no val side")


# --------------------------------------------------------------------------- MRR and recall


#: Four queries, five neighbours each; the relevant items each query has in the gallery (R).
REL = np.array([[0, 1, 0, 1, 0],
                [0, 0, 0, 0, 0],
                [1, 0, 0, 0, 0],
                [0, 0, 1, 1, 1]], dtype=bool)
R = np.array([4, 3, 1, 3])


def test_reciprocal_rank_by_hand():
    # first relevant neighbour at ranks 2, none, 1, 3
    np.testing.assert_allclose(retrieval.reciprocal_rank_at_k(REL), [1 / 2, 0, 1, 1 / 3])
    assert retrieval.mean_reciprocal_rank(REL) == pytest.approx((1 / 2 + 1 + 1 / 3) / 4)
    # within the first 2 the last query finds nothing
    assert retrieval.mean_reciprocal_rank(REL, k=2) == pytest.approx((1 / 2 + 1) / 4)
    assert np.isnan(retrieval.mean_reciprocal_rank(np.zeros((0, 3), bool)))


def test_recall_by_hand():
    # found 2 of 4, 0 of 3, 1 of 1, 3 of 3
    np.testing.assert_allclose(retrieval.recall_per_query(REL, n_relevant=R), [2 / 4, 0, 1, 1])
    assert retrieval.recall_at_k(REL, n_relevant=R) == pytest.approx((0.5 + 0 + 1 + 1) / 4)
    # first 2 only: 1 of 4, 0 of 3, 1 of 1, 0 of 3
    assert retrieval.recall_at_k(REL, n_relevant=R, k=2) == pytest.approx((1 / 4 + 1) / 4)


def test_recall_leaves_out_queries_with_nothing_to_find():
    rel = np.array([[1, 0], [0, 0]], dtype=bool)
    recall = retrieval.recall_per_query(rel, n_relevant=[2, 0])
    assert recall[0] == 0.5 and np.isnan(recall[1])
    assert retrieval.recall_at_k(rel, n_relevant=[2, 0]) == 0.5
    assert np.isnan(retrieval.recall_at_k(np.zeros((2, 2), bool), n_relevant=0))


@pytest.mark.parametrize("seed", range(5))
def test_metric_properties_on_random_relevance(seed):
    rng = np.random.default_rng(seed)
    rel = rng.random((50, 10)) < rng.uniform(0.05, 0.6)
    r = rel.sum(axis=1) + rng.integers(0, 20, size=50)  # R >= the relevant neighbours found
    mrr = [retrieval.mean_reciprocal_rank(rel, k=k) for k in range(1, 11)]
    recall = [retrieval.recall_at_k(rel, n_relevant=r, k=k) for k in range(1, 11)]
    assert mrr[0] == pytest.approx(retrieval.precision_at_k(rel, k=1))  # MRR@1 is precision@1
    assert np.all(np.diff(mrr) >= 0) and np.all(np.diff(recall) >= -1e-12)  # grow with k
    assert all(0 <= v <= 1 for v in mrr + recall)
    for k in (1, 5, 10):  # per query: recall@k · R = hits = precision@k · k
        hits = retrieval.recall_per_query(rel, n_relevant=r, k=k) * r
        np.testing.assert_allclose(hits[r > 0], rel[r > 0, :k].sum(axis=1))
    # everything relevant was retrieved: recall 1
    found = rel.sum(axis=1)
    assert retrieval.recall_at_k(rel, n_relevant=found) == pytest.approx(1.0)


def test_mrr_and_recall_errors():
    with pytest.raises(ValueError, match="query 0 has 2 relevant neighbours but n_relevant=1"):
        retrieval.recall_at_k([[1, 1]], n_relevant=1)
    with pytest.raises(ValueError, match="n_relevant must be >= 0"):
        retrieval.recall_at_k([[0, 0]], n_relevant=-1)
    with pytest.raises(ValueError, match="one count per query \\(2\\)"):
        retrieval.recall_at_k([[0, 0], [1, 0]], n_relevant=[1, 2, 3])
    with pytest.raises(ValueError, match="k=4 exceeds the 2"):
        retrieval.mean_reciprocal_rank([[0, 1]], k=4)


# --------------------------------------------------------------------------- relevance levels

LEVELS = {"articleType": ["articleType"], "strict": ["articleType", "baseColour", "usage"]}


@pytest.mark.parametrize("columns, kept, skipped", [
    (["id", "articleType", "baseColour", "usage"], LEVELS, {}),
    (["id", "articleType", "baseColour"],  # no usage: strict is type + colour
     {"articleType": ["articleType"], "strict": ["articleType", "baseColour"]}, {}),
    (["id", "articleType", "subCategory"],  # Fashion-MNIST: no colour
     {"articleType": ["articleType"]}, {"strict": ["baseColour"]}),
    (["id", "label"], {},
     {"articleType": ["articleType"], "strict": ["articleType", "baseColour"]}),
])
def test_usable_levels_keep_what_the_catalog_has(columns, kept, skipped):
    assert retrieval.usable_levels(LEVELS, columns) == (kept, skipped)


def test_usable_levels_errors():
    with pytest.raises(ValueError, match="non-empty list of columns. Received: 'type': 'artic"):
        retrieval.usable_levels({"type": "articleType"}, ["articleType"])
    with pytest.raises(ValueError, match="at least one level. Received: levels={}"):
        retrieval.usable_levels({}, ["articleType"])
    # a level of optional columns only, none present: skipped, not empty
    assert retrieval.usable_levels({"u": ["usage"]}, ["id"]) == ({}, {"u": ["usage"]})


def test_evaluate_neighbours_with_a_two_column_level_by_hand():
    labels = pd.DataFrame({"articleType": ["a", "a", "a", "b", "b"],
                           "baseColour": ["red", "red", "blue", "red", None]})
    neighbours = np.array([[1, 2], [0, 1], [3, 0]])  # of queries 0 (a red), 2 (a blue), 4 (b ?)
    levels = {"type": ["articleType"], "strict": ["articleType", "baseColour"]}
    table = retrieval.evaluate_neighbours(neighbours, [0, 2, 4], labels, levels=levels,
                                          k=2, map_k=2, mrr_k=2, recall_k=2)
    assert list(table.columns[:5]) == ["columns", "precision@2", "mAP@2", "MRR@2", "recall@2"]
    t = table.loc["type"]
    # type: rows (a, a) (a, a) (b, a); R = 2, 2, 1 -> each query found all it could
    assert t["precision@2"] == pytest.approx((1 + 1 + 1 / 2) / 3)
    assert t["mAP@2"] == t["MRR@2"] == t["recall@2"] == 1.0
    assert t["chance"] == pytest.approx((2 / 4 + 2 / 4 + 1 / 4) / 3)
    assert (t["n_queries"], t["n_skipped"]) == (3, 0)
    s = table.loc["strict"]
    # only query 0 is judged: query 2 (a blue) has no match, query 4 has no colour
    assert (s["n_queries"], s["n_skipped"], s["columns"]) == (1, 2, "articleType+baseColour")
    assert (s["precision@2"], s["MRR@2"], s["recall@2"], s["chance"]) == (0.5, 1.0, 1.0, 0.25)


def test_evaluate_neighbours_rejects_a_level_on_a_missing_column():
    labels = pd.DataFrame({"articleType": ["a", "a", "b"]})
    with pytest.raises(ValueError, match="lacks column\\(s\\) \\['baseColour'\\]"):
        retrieval.evaluate_neighbours(np.array([[1, 2]]), [0], labels,
                                      levels={"strict": ["articleType", "baseColour"]},
                                      k=1, map_k=1, mrr_k=1, recall_k=1)


# --------------------------------------------------------------------------- evaluations


def _catalog_with_wrong_twins(n_per_class: int = 20, seed: int = 0):
    """Test items in 3 separable classes, and one training item beside each of them that
    carries the next class's label: in the whole catalog every query's nearest item is wrong."""
    rng = np.random.default_rng(seed)
    cls = np.repeat(np.arange(3), n_per_class)
    test = np.eye(8)[cls] * 5 + 0.5 * rng.standard_normal((len(cls), 8))
    twins = test + 1e-3 * rng.standard_normal(test.shape)
    names = np.array(["x", "y", "z"])
    ids = [f"t{i}" for i in range(len(cls))] + [f"w{i}" for i in range(len(cls))]
    meta = pd.DataFrame({"id": ids,
                         "articleType": np.concatenate([names[cls], names[(cls + 1) % 3]])})
    return meta, np.vstack([test, twins]), meta["id"][:len(cls)].tolist()


def test_evaluate_sources_on_the_whole_catalog_and_held_out():
    meta, x, test_ids = _catalog_with_wrong_twins()
    levels = {"articleType": ["articleType"]}
    options = dict(sources={"embedding": x}, ids=meta["id"], metadata=meta, query_ids=test_ids,
                   levels=levels, seed=0)
    whole = retrieval.evaluate_sources(**options).set_index("source")
    held_out = retrieval.evaluate_sources(**options, gallery_ids=test_ids).set_index("source")
    assert list(whole.index) == list(held_out.index) == ["embedding", "random"]
    assert whole.loc["embedding", "MRR@10"] < 0.6  # the wrong twin comes first
    assert held_out.loc["embedding", "precision@5"] == held_out.loc["embedding", "MRR@10"] == 1.0
    # held out: 19 relevant items per query, 10 found
    assert held_out.loc["embedding", "recall@10"] == pytest.approx(10 / 19)
    assert held_out.loc["random", "chance"] == pytest.approx(19 / 59)
    assert (whole["n_gallery"].iloc[0], held_out["n_gallery"].iloc[0]) == (120, 60)
    for table in (whole, held_out):
        assert table[retrieval.metric_names()].apply(lambda v: v.between(0, 1)).all().all()


def test_precision_per_query_averages_to_evaluate_sources_precision():
    meta, x, test_ids = _catalog_with_wrong_twins()
    noise = np.random.default_rng(1).standard_normal(x.shape)
    for gallery in (None, test_ids):
        table = retrieval.evaluate_sources({"embedding": x, "noise": noise}, ids=meta["id"],
                                           metadata=meta, query_ids=test_ids, random_name=None,
                                           levels={"articleType": ["articleType"]},
                                           gallery_ids=gallery).set_index("source")
        per = {name: retrieval.precision_per_query(v, ids=meta["id"], metadata=meta,
                                                   query_ids=test_ids, columns=["articleType"],
                                                   gallery_ids=gallery)
               for name, v in {"embedding": x, "noise": noise}.items()}
        for name, values in per.items():
            assert len(values) == table.loc[name, "n_queries"] == len(test_ids)
            assert values.mean() == pytest.approx(table.loc[name, "precision@5"])
            assert set(np.round(values * 5)) <= set(range(6))  # k = 5: fifths
    with pytest.raises(ValueError, match="gallery ids not among ids"):
        retrieval.precision_per_query(x, ids=meta["id"], metadata=meta, query_ids=test_ids,
                                      columns=["articleType"], gallery_ids=["nope"])


def test_evaluate_sources_errors():
    meta, x, test_ids = _catalog_with_wrong_twins()
    options = dict(sources={"e": x}, ids=meta["id"], metadata=meta,
                   levels={"articleType": ["articleType"]})
    with pytest.raises(ValueError, match="every query must be in the gallery. Received 1"):
        retrieval.evaluate_sources(**options, query_ids=["w0"], gallery_ids=test_ids)
    with pytest.raises(ValueError, match="more than 10 items .* Received: 5 items"):
        retrieval.evaluate_sources(**options, query_ids=test_ids[:5], gallery_ids=test_ids[:5])
    with pytest.raises(ValueError, match="gallery ids not among ids, e.g. \\['nope'\\]"):
        retrieval.evaluate_sources(**options, query_ids=test_ids, gallery_ids=["nope"])
    with pytest.raises(ValueError, match="source 'e' has 3 vectors for 120 ids"):
        retrieval.evaluate_sources(**{**options, "sources": {"e": x[:3]}}, query_ids=test_ids)
    with pytest.raises(ValueError, match="exactly one of levels and label_columns"):
        index = SimilarityIndex(meta["id"], x, metadata=meta)
        retrieval.evaluate_index(index, test_ids)


def test_scores_by_source_nests_source_level_metric():
    meta, x, test_ids = _catalog_with_wrong_twins()
    table = retrieval.evaluate_sources({"e": x}, ids=meta["id"], metadata=meta,
                                       query_ids=test_ids, levels={"type": ["articleType"]})
    nested = retrieval.scores_by_source(table, metrics=retrieval.metric_names())
    assert set(nested) == {"e", "random"} and set(nested["e"]) == {"type"}
    assert set(nested["e"]["type"]) == {*retrieval.metric_names(), "chance", "n_queries"}
    assert nested["e"]["type"]["n_queries"] == 60
    with pytest.raises(ValueError, match="lacks column\\(s\\) \\['MRR@3'\\]"):
        retrieval.scores_by_source(table, metrics=["MRR@3"])


def test_retrieval_metrics_draws_a_row_per_evaluation():
    scores = pd.DataFrame({"evaluation": ["whole catalog"] * 4 + ["held out"] * 4,
                           "source": ["a", "a", "b", "b"] * 2, "level": ["t", "s"] * 4,
                           "MRR@10": np.linspace(0.1, 0.8, 8), "recall@10": np.linspace(0, 0.7, 8)})
    fig = plots.retrieval_metrics(scores, metrics=["MRR@10", "recall@10"], x="level",
                                  row="evaluation")
    assert [ax.get_title() for ax in fig.axes] == [
        "whole catalog: MRR@10", "whole catalog: recall@10",
        "held out: MRR@10", "held out: recall@10"]
    heights = sorted(round(p.get_height(), 2) for p in fig.axes[2].patches if p.get_height())
    assert heights == [0.5, 0.6, 0.7, 0.8]
    assert fig.get_size_inches()[0] * 110 <= 2000  # at plots.set_style's savefig.dpi
    plt.close(fig)


def test_comparison_table_groups_sources_under_each_level():
    table = pd.DataFrame({"source": ["a", "a", "b", "b"], "level": ["t", "s", "t", "s"],
                          "MRR@10": [0.9, 0.5, 0.4, 0.2], "chance": 0.1, "n_queries": 7})
    out = retrieval.comparison_table(table, metrics=["MRR@10"])
    assert list(out.index) == [("t", "a"), ("t", "b"), ("s", "a"), ("s", "b")]
    assert list(out.columns) == ["MRR@10", "chance", "n_queries"]
    assert list(out["MRR@10"]) == [0.9, 0.4, 0.5, 0.2]


def test_the_source_is_chosen_on_the_queries_it_is_given():
    """The embedding that separates the classes wins over noise, whatever their order; with
    ten or fewer queries nothing can be judged and the default stays."""
    meta, x, test_ids = _catalog_with_wrong_twins()
    noise = np.random.default_rng(1).standard_normal(x.shape)
    level = {"articleType": ["articleType"]}
    for sources in ({"pretrained": noise, "kept model": x}, {"kept model": x, "pretrained": noise}):
        chosen, scores = retrieval.choose_source(sources, ids=meta["id"], metadata=meta,
                                                 query_ids=test_ids, level=level, k=5)
        assert chosen == "kept model" and scores["kept model"] == 1.0
        assert scores["pretrained"] < 0.6 and set(scores) == set(sources)
    tie, _ = retrieval.choose_source({"pretrained": x, "kept model": x.copy()}, ids=meta["id"],
                                     metadata=meta, query_ids=test_ids, level=level)
    assert tie == "pretrained"  # ties: the earlier source
    few = retrieval.choose_source({"pretrained": noise, "kept model": x}, ids=meta["id"],
                                  metadata=meta, query_ids=test_ids[:10], level=level)
    assert few == ("pretrained", {})
    with pytest.raises(ValueError, match="exactly one relevance level"):
        retrieval.choose_source({"pretrained": x}, ids=meta["id"], metadata=meta,
                                query_ids=test_ids, level={**level, "b": ["articleType"]})
    with pytest.raises(ValueError, match="default='clip'"):
        retrieval.choose_source({"pretrained": x}, ids=meta["id"], metadata=meta,
                                query_ids=test_ids, level=level, default="clip")


def test_a_diversified_evaluation_scores_the_reranked_lists_and_their_likeness():
    """Each query has 3 near-copies of itself in its class and 40 looser class-mates: plain
    lists are mostly copies (alike); MMR at 0.5 swaps copies for class-mates (less alike,
    as relevant); trade-off 1 equals the plain evaluation."""
    rng = np.random.default_rng(3)
    base = np.eye(8)[np.repeat(np.arange(2), 40)] * 4 + rng.standard_normal((80, 8))
    copies = np.repeat(base[:10], 3, axis=0) + 0.01 * rng.standard_normal((30, 8))
    x = np.vstack([base, copies])
    labels = np.concatenate([np.repeat(["a", "b"], 40), np.repeat(["a"], 30)])
    meta = pd.DataFrame({"id": [str(i) for i in range(len(x))], "articleType": labels})
    index = SimilarityIndex(meta["id"], x, metadata=meta)
    queries = meta["id"][:10]
    plain = retrieval.evaluate_index(index, queries, label_columns=["articleType"])
    same = retrieval.evaluate_index(index, queries, label_columns=["articleType"], trade_off=1.0)
    varied = retrieval.evaluate_index(index, queries, label_columns=["articleType"], trade_off=0.5)
    metrics = retrieval.metric_names()
    pd.testing.assert_frame_equal(same[plain.columns], plain)
    assert varied.loc["articleType", "precision@5"] == plain.loc["articleType", "precision@5"]
    assert (varied.loc["articleType", "pairwise similarity@5"]
            < same.loc["articleType", "pairwise similarity@5"] - 0.1)
    assert "pairwise similarity@5" not in plain.columns
    assert varied[metrics].apply(lambda v: v.between(0, 1)).all().all()
    with pytest.raises(ValueError, match="groups or trade_off, not both"):
        retrieval.evaluate_index(index, queries, label_columns=["articleType"],
                                 groups=np.arange(len(x)), trade_off=0.5)
