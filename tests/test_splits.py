"""Train / validation / test splits: stratified, seeded, leak-free, saved and reloaded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fashion_utils import config
from fashion_utils.catalog import splits


def _catalog(sizes=(100, 50, 20), *, official=False, seed=0):
    labels = np.repeat([f"class{i}" for i in range(len(sizes))], sizes)
    rng = np.random.default_rng(seed)
    rng.shuffle(labels)
    cat = pd.DataFrame({"id": [str(i) for i in range(len(labels))], "masterCategory": labels})
    if official:
        cat["split"] = np.where(np.arange(len(cat)) % 5 == 0, "test", "train")
    return cat


@pytest.fixture()
def paths(tmp_path):
    return config.Paths(data_dir=tmp_path / "catalog", root=tmp_path).ensure()


def _sides(result):
    return {name: set(result.loc[result["split"] == name, "id"]) for name in splits.SPLIT_NAMES}


@pytest.mark.parametrize("official", [False, True])
def test_every_id_gets_exactly_one_side_and_no_test_id_leaks(official):
    cat = _catalog(official=official)
    result = splits.make_splits(cat, target="masterCategory", seed=1)
    assert result["id"].tolist() == cat["id"].tolist()  # catalog order, one row per item
    sides = _sides(result)
    assert not sides["test"] & (sides["train"] | sides["val"])
    assert not sides["train"] & sides["val"]
    assert set().union(*sides.values()) == set(cat["id"])


@pytest.mark.parametrize("seed", [0, 7, 42])
def test_split_is_stratified_by_target(seed):
    cat = _catalog()
    result = cat.merge(splits.make_splits(cat, target="masterCategory", seed=seed, test_size=0.2,
                                          val_size=0.1), on="id")
    for label, group in result.groupby("masterCategory"):
        n = len(group)
        n_test = (group["split"] == "test").sum()
        n_val = (group["split"] == "val").sum()
        assert abs(n_test - 0.2 * n) <= 1, label
        assert abs(n_val - 0.1 * (n - n_test)) <= 1, label


def test_official_test_side_is_respected_and_val_comes_from_train():
    cat = _catalog(official=True)
    result = cat.merge(splits.make_splits(cat, target="masterCategory", seed=3, test_size=0.5), on="id",
                       suffixes=("_official", ""))
    assert (result.loc[result["split_official"] == "test", "split"] == "test").all()
    assert (result.loc[result["split_official"] == "train", "split"] != "test").all()
    assert (result["split"] == "val").sum() == round(0.1 * (result["split_official"] == "train").sum())


def test_official_split_can_be_ignored():
    cat = _catalog(official=True)
    result = splits.make_splits(cat, target="masterCategory", seed=3, use_official_split=False)
    assert (result["split"] == "test").sum() == round(0.2 * len(cat))


def test_split_is_deterministic_and_independent_of_row_order():
    cat = _catalog()
    first = splits.make_splits(cat, target="masterCategory", seed=5)
    again = splits.make_splits(cat, target="masterCategory", seed=5)
    shuffled = splits.make_splits(cat.sample(frac=1, random_state=9), target="masterCategory", seed=5)
    other = splits.make_splits(cat, target="masterCategory", seed=6)
    pd.testing.assert_frame_equal(first, again)
    assert first.set_index("id")["split"].to_dict() == shuffled.set_index("id")["split"].to_dict()
    assert not first.equals(other)


def test_val_size_zero_gives_no_validation_side():
    result = splits.make_splits(_catalog(), target="masterCategory", seed=0, val_size=0)
    assert set(result["split"]) == {"train", "test"}


@pytest.mark.parametrize("kwargs, match", [
    ({"test_size": 0}, "test_size"),
    ({"test_size": 1.5}, "test_size"),
    ({"val_size": -0.1}, "val_size"),
    ({"target": "nope"}, "lacks column 'nope'"),
])
def test_bad_arguments_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        splits.make_splits(_catalog(), **{"target": "masterCategory", "seed": 0, **kwargs})


def test_bad_catalogs_are_rejected():
    tiny = _catalog(sizes=(10, 1))
    with pytest.raises(ValueError, match="at least 2 items"):
        splits.make_splits(tiny, target="masterCategory", seed=0)
    dupes = pd.concat([_catalog(), _catalog().head(2)])
    with pytest.raises(ValueError, match="unique"):
        splits.make_splits(dupes, target="masterCategory", seed=0)
    odd = _catalog(official=True).assign(split="holdout")
    with pytest.raises(ValueError, match="holdout"):
        splits.make_splits(odd, target="masterCategory", seed=0)
    unlabelled = _catalog().astype({"masterCategory": object})
    unlabelled.loc[3, "masterCategory"] = None
    with pytest.raises(ValueError, match="no 'masterCategory' label"):
        splits.make_splits(unlabelled, target="masterCategory", seed=0)


def test_save_and_load_round_trip_one_file_per_catalog(paths):
    with pytest.raises(FileNotFoundError, match="run notebook 02_sampling_augmentation first"):
        splits.load_splits(paths)
    result = splits.make_splits(_catalog(), target="masterCategory", seed=0)
    saved = splits.save_splits(result, paths)
    assert saved.name == "splits.csv" and saved == splits.splits_path(paths)
    loaded = splits.load_splits(paths)
    pd.testing.assert_frame_equal(loaded, result[["id", "split"]])
    assert not list(paths.processed.glob(".*tmp*"))


def test_check_disjoint_rejects_duplicates_and_unknown_sides():
    with pytest.raises(ValueError, match="more than once"):
        splits.check_disjoint(pd.DataFrame({"id": ["1", "1"], "split": ["train", "test"]}))
    with pytest.raises(ValueError, match="holdout"):
        splits.check_disjoint(pd.DataFrame({"id": ["1"], "split": ["holdout"]}))


def test_split_counts_per_class_has_totals():
    cat = _catalog()
    table = splits.split_counts(splits.make_splits(cat, target="masterCategory", seed=0), cat,
                                target="masterCategory")
    assert list(table.columns) == ["train", "val", "test", "total"]
    assert table.loc["total", "total"] == len(cat)


def test_attach_splits_replaces_the_official_column():
    cat = _catalog(official=True)
    result = splits.make_splits(cat, target="masterCategory", seed=0)
    attached = splits.attach_splits(cat, result)
    assert list(attached.columns) == list(cat.columns)
    assert attached["split"].tolist() == result["split"].tolist()
    assert (attached.loc[cat["split"] == "test", "split"] == "test").all()
    with pytest.raises(ValueError, match="have no split"):
        splits.attach_splits(cat, result.iloc[1:])


def _hierarchy_catalog(seed=0):
    """A Kaggle-like catalog without a split column: 3 masters, 10 article types (5 rare)."""
    rows = [("Tshirts", "Topwear", "Apparel", 60), ("Shirts", "Topwear", "Apparel", 40),
            ("Jeans", "Bottomwear", "Apparel", 25), ("Kurtis", "Topwear", "Apparel", 4),
            ("Tops", "Topwear", "Apparel", 8), ("Watches", "Watches", "Accessories", 30),
            ("Belts", "Belts", "Accessories", 3), ("Caps", "Headwear", "Accessories", 9),
            ("Shoes", "Shoes", "Footwear", 35), ("Socks", "Socks", "Footwear", 2)]
    records = [{"articleType": a, "subCategory": s, "masterCategory": m}
               for a, s, m, n in rows for _ in range(n)]
    cat = pd.DataFrame(records).sample(frac=1, random_state=seed).reset_index(drop=True)
    return cat.assign(id=[f"p{i}" for i in range(len(cat))])


HIERARCHY = ["articleType", "subCategory", "masterCategory"]


def test_strata_fold_rare_article_types_into_coarser_labels():
    cat = _hierarchy_catalog()
    key = splits.strata(cat, HIERARCHY, min_per_stratum=10)
    assert set(key[cat["articleType"] == "Tshirts"]) == {"articleType=Tshirts"}
    # Kurtis (4) and Tops (8) are too rare alone; together they are Topwear's 12 leftovers.
    assert set(key[cat["articleType"].isin(["Kurtis", "Tops"])]) == {"subCategory=Topwear"}
    # Belts (3) and Caps (9) differ in sub-category: they meet as Accessories (12 leftovers).
    assert set(key[cat["articleType"].isin(["Belts", "Caps"])]) == {"masterCategory=Accessories"}
    assert set(key[cat["articleType"] == "Socks"]) == {"(rare)"}  # 2 left of Footwear
    sizes = key.value_counts().drop("(rare)")
    assert (sizes >= 10).all()  # a coarse stratum counts only the rows finer ones left over
    leftovers = pd.DataFrame({"a": ["t1"] * 12 + ["t2"] * 3 + ["t3"], "m": ["M"] * 15 + ["N"]})
    assert splits.strata(leftovers, ["a", "m"], min_per_stratum=10).value_counts().to_dict() == {
        "a=t1": 12, "(rare)": 4}  # M has 15 rows, but only 3 are left once t1 took its 12
    tiny = pd.DataFrame({"id": ["a", "b", "c"], "label": ["x", "x", "y"]})
    assert splits.strata(tiny, ["label"], min_per_stratum=2).tolist() == ["label=x"] * 3
    with pytest.raises(ValueError, match="lacks column"):
        splits.strata(cat, ["usage"])
    with pytest.raises(ValueError, match="exactly one of target= and stratify="):
        splits.make_splits(cat, target="masterCategory", stratify=HIERARCHY)


def test_one_split_serves_every_target_without_leaks(paths):
    """No test item of the shared split is a training or validation item of any target's study
    sample, and notebook 05's queries (the test side) are unseen by every target's model."""
    from fashion_utils.catalog import sampling
    from fashion_utils.recommend import retrieval

    cat = _hierarchy_catalog()
    table, how = splits.catalog_splits(cat, paths, stratify=HIERARCHY, seed=3)
    assert how.startswith("drawn") and splits.splits_path(paths).is_file()
    test_ids = set(table.loc[table["split"] == "test", "id"])
    for target in HIERARCHY:
        kept, _ = sampling.drop_rare_classes(cat, target=target, min_per_class=5)
        sample = splits.attach_splits(kept, table)
        fitted = set(sample.loc[sample["split"].isin(["train", "val"]), "id"])
        assert not fitted & test_ids, target
        assert (sample.groupby(target)["split"].nunique() >= 2).all()  # stratified per class
    queries, source = retrieval.query_ids_for_evaluation(cat, splits_path=splits.splits_path(paths))
    assert set(queries) == test_ids and "splits.csv" in source
    again, how = splits.catalog_splits(cat.iloc[::-1], paths, stratify=HIERARCHY, seed=99)
    assert how.startswith("reused")  # a second target or a rerun never moves an item
    pd.testing.assert_frame_equal(again.sort_values("id").reset_index(drop=True),
                                  table.sort_values("id").reset_index(drop=True))
    grown = pd.concat([cat, cat.iloc[:1].assign(id="new")])
    _, how = splits.catalog_splits(grown, paths, stratify=HIERARCHY, seed=3)
    assert how.startswith("drawn")  # another catalog: drawn afresh


def test_stratified_split_keeps_each_stratum_on_every_side():
    cat = _hierarchy_catalog(seed=1)
    table = cat.merge(splits.make_splits(cat, stratify=HIERARCHY, seed=0), on="id")
    big = table[table["articleType"].isin(["Tshirts", "Shirts", "Watches", "Shoes", "Jeans"])]
    assert (big.groupby("articleType")["split"].nunique() == 3).all()
    share = (table["split"] == "test").mean()
    assert 0.17 < share < 0.23
