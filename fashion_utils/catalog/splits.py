"""Train / validation / test splits: stratified, seeded, saved once and reused by every notebook.

The split is made on the whole (kept) catalog *before* anything is sampled or augmented, so an
augmented copy can only ever sit on its source's side (the original study augmented first and
split afterwards, letting copies of one product land on both sides).

- If the catalog has a ``split`` column (Fashion-MNIST's official 10,000-image test set), its
  ``"test"`` rows are the test side and ``test_size`` is not used.
- Otherwise ``test_size`` (default 20%, as in the original study) is drawn, stratified.
- Validation always comes out of the training side (default 10% of it), stratified too.

One split per catalog, for every target (:func:`catalog_splits`): it is stratified on the
finest label that has enough items (``stratify=["articleType", "subCategory",
"masterCategory"]``: an article type with fewer than ``min_per_stratum`` items is folded into
its sub-category, and so on; what is still too rare shares one stratum), so a test item of one
target is never a training or validation item of another — notebooks 03–06 and every target
read the same file. File: ``paths.processed / "splits.csv"``, columns ``id`` (string) and
``split`` (``train``/``val``/``test``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from fashion_utils.atomic import write_csv_atomic
from fashion_utils.checks import columns_present, positive_int
from fashion_utils import config
from fashion_utils.config import Paths

__all__ = ["SPLIT_NAMES", "attach_splits", "catalog_splits", "check_disjoint", "load_splits",
           "make_splits", "save_splits", "split_counts", "splits_path", "strata"]

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
OFFICIAL_SPLIT_COLUMN = "split"


def _check_fraction(name: str, value: float, *, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    low_ok = ok and (value >= 0 if allow_zero else value > 0)
    if not (low_ok and value < 1):
        bound = "0 <= x < 1" if allow_zero else "0 < x < 1"
        raise ValueError(f"{name} must be a fraction with {bound}. Received: {name}={value!r}")
    return float(value)


def _stratified_pick(ids: pd.Series, labels: pd.Series, *, fraction: float, seed: int,
                     what: str) -> np.ndarray:
    """Boolean mask: the ``fraction`` of rows drawn, stratified by ``labels``."""
    from sklearn.model_selection import train_test_split

    mask = np.zeros(len(ids), dtype=bool)
    if fraction == 0:
        return mask
    counts = labels.value_counts()
    too_small = counts[counts < 2]
    if len(too_small):
        raise ValueError(
            f"Cannot stratify the {what} split: every class needs at least 2 items. Received: "
            f"{too_small.to_dict()} (drop rare classes first: sampling.drop_rare_classes)")
    positions = np.arange(len(ids))
    n_pick = max(int(round(fraction * len(ids))), len(counts))
    if n_pick >= len(ids):
        raise ValueError(f"The {what} split would take every item: {len(ids)} items, "
                         f"{len(counts)} classes, fraction={fraction!r}")
    _, picked = train_test_split(positions, test_size=n_pick, stratify=labels.to_numpy(),
                                 random_state=seed, shuffle=True)
    mask[picked] = True
    return mask


#: A stratum needs this many items to keep its own (about 2 test and 1 validation item).
MIN_PER_STRATUM = 10


def strata(catalog: pd.DataFrame, columns: Sequence[str], *,
           min_per_stratum: int = MIN_PER_STRATUM) -> pd.Series:
    """The stratum of each row: its finest label (``columns``, finest first) whose class still
    has at least ``min_per_stratum`` items among the rows no finer label has taken; rows with
    none share the stratum ``"(rare)"`` (folded into the largest stratum when even that is a
    single row). Every stratum but ``"(rare)"`` therefore holds ``min_per_stratum`` items.

    Raises:
        ValueError: no columns, or a column the catalog lacks.
    """
    columns = list(columns)
    if not columns:
        raise ValueError("strata needs at least one label column. Received: columns=[]")
    columns_present(catalog, columns, "catalog")
    min_per_stratum = positive_int("min_per_stratum", min_per_stratum, minimum=2)
    key = pd.Series(pd.NA, index=catalog.index, dtype=object)
    for column in columns:  # counted among the rows no finer label has taken
        values = catalog[column].astype("string")
        open_rows = key.isna().to_numpy()
        counts = values[open_rows].value_counts()
        fill = open_rows & (values.map(counts).fillna(0).to_numpy() >= min_per_stratum)
        key[fill] = column + "=" + values[fill].astype(str)
    rare = key.isna()
    key[rare] = "(rare)"
    if rare.sum() == 1 and len(key) > 1:
        key[rare] = key[~rare].value_counts().index[0]
    return key.astype(str)


def make_splits(catalog: pd.DataFrame, *, target: str | None = None,
                stratify: Sequence[str] | None = None, seed: int = config.SEED,
                test_size: float = 0.2, val_size: float = 0.1,
                use_official_split: bool = True,
                min_per_stratum: int = MIN_PER_STRATUM) -> pd.DataFrame:
    """Assign every catalog row to ``train``, ``val`` or ``test``, stratified.

    Args:
        catalog: a table with ``id`` and the label columns (and optionally ``split``).
        target: stratify by this one column (every row labelled, every class >= 2 items).
        stratify: or by these label columns, finest first, rare classes folded
            (:func:`strata`): the one split of a catalog for every target.
        seed: random seed; the result depends only on the seed and the (id, label) pairs,
            not on the row order.
        test_size: fraction drawn as the test side when there is no official split.
        val_size: fraction of the training side drawn as validation (0 for none).
        use_official_split: take the test side from the ``split`` column when there is one.
        min_per_stratum: with ``stratify``, the smallest class that keeps its own stratum.

    Returns:
        A table ``[id, split]`` in the catalog's row order.

    Raises:
        ValueError: missing columns, duplicate ids, missing labels, a bad fraction, an
            official ``split`` column with values other than ``train``/``test``, or a
            class too small to stratify.
    """
    if (target is None) == (stratify is None):
        raise ValueError(f"Pass exactly one of target= and stratify=. Received: target={target!r}, "
                         f"stratify={stratify!r}")
    for column in ("id", target) if target is not None else ("id",):
        if column not in catalog.columns:
            raise ValueError(f"catalog lacks column {column!r}. Received columns: "
                             f"{list(catalog.columns)}")
    test_size = _check_fraction("test_size", test_size)
    val_size = _check_fraction("val_size", val_size, allow_zero=True)
    ids = catalog["id"].astype(str)
    if ids.duplicated().any():
        raise ValueError(f"ids must be unique. Received duplicates such as "
                         f"{ids[ids.duplicated()].unique()[:5].tolist()}")
    if target is not None and catalog[target].isna().any():
        raise ValueError(f"{int(catalog[target].isna().sum())} row(s) have no {target!r} label: "
                         f"drop them first (sampling.drop_rare_classes does).")
    stratum = (catalog[target].astype(str) if target is not None
               else strata(catalog, stratify, min_per_stratum=min_per_stratum))

    # Sort by id so that the split does not depend on the order the rows were read in.
    order = np.argsort(ids.to_numpy(), kind="stable")
    ids_sorted = ids.iloc[order].reset_index(drop=True)
    labels = stratum.iloc[order].reset_index(drop=True)
    split = np.full(len(ids_sorted), "train", dtype=object)

    if use_official_split and OFFICIAL_SPLIT_COLUMN in catalog.columns:
        official = catalog[OFFICIAL_SPLIT_COLUMN].iloc[order].reset_index(drop=True)
        bad = sorted(set(official.fillna("<missing>").astype(str)) - {"train", "test"})
        if bad:
            raise ValueError(f"The official {OFFICIAL_SPLIT_COLUMN!r} column may hold only 'train' "
                             f"and 'test'. Received: {bad}")
        split[(official == "test").to_numpy()] = "test"
    else:
        split[_stratified_pick(ids_sorted, labels, fraction=test_size, seed=seed, what="test")] = "test"

    train_side = np.flatnonzero(split == "train")
    train_labels = labels.iloc[train_side]
    if stratify is not None:  # the strata again, on what the test draw left (rare ones fold)
        rows = catalog.iloc[order].reset_index(drop=True).iloc[train_side]
        train_labels = strata(rows, stratify, min_per_stratum=min_per_stratum)
    val_mask = _stratified_pick(ids_sorted.iloc[train_side], train_labels,
                                fraction=val_size, seed=seed, what="validation")
    split[train_side[val_mask]] = "val"

    result = pd.DataFrame({"id": ids_sorted, "split": split})
    return result.set_index("id").loc[ids.to_numpy()].reset_index()


def attach_splits(catalog: pd.DataFrame, splits: pd.DataFrame) -> pd.DataFrame:
    """The catalog with its ``split`` column set from ``splits`` (an official column is replaced:
    its test side is kept as is, its training side is now ``train``/``val``).

    Raises:
        ValueError: naming catalog ids that have no split.
    """
    check_disjoint(splits)
    side = splits.set_index(splits["id"].astype(str))["split"]
    ids = catalog["id"].astype(str)
    missing = ~ids.isin(side.index)
    if missing.any():
        raise ValueError(f"{int(missing.sum())} catalog id(s) have no split, e.g. {ids[missing].head(5).tolist()}")
    return catalog.assign(split=ids.map(side).to_numpy())


def split_counts(splits: pd.DataFrame, catalog: pd.DataFrame | None = None, *,
                 target: str | None = None) -> pd.DataFrame:
    """Items per split (and per class when ``catalog`` and ``target`` are given), with totals."""
    if catalog is None or target is None:
        return splits["split"].value_counts().reindex(SPLIT_NAMES, fill_value=0).to_frame("items")
    merged = catalog[["id", target]].astype({"id": str}).merge(splits, on="id", how="inner")
    table = pd.crosstab(merged[target], merged["split"], margins=True, margins_name="total")
    return table.reindex(columns=[*SPLIT_NAMES, "total"], fill_value=0)


def check_disjoint(splits: pd.DataFrame) -> None:
    """Raise unless every id has exactly one split name from :data:`SPLIT_NAMES`.

    Raises:
        ValueError: an unknown split name, or an id listed more than once (which could put one
            item on two sides).
    """
    unknown = sorted(set(splits["split"].astype(str)) - set(SPLIT_NAMES))
    if unknown:
        raise ValueError(f"Unknown split name(s) {unknown}; expected {list(SPLIT_NAMES)}")
    ids = splits["id"].astype(str)
    if ids.duplicated().any():
        dupes = ids[ids.duplicated()].unique()[:5].tolist()
        raise ValueError(f"Ids listed more than once in the splits, e.g. {dupes}")


def splits_path(paths: Paths) -> Path:
    """The catalog's one ``splits.csv`` (every target reads it)."""
    return paths.processed / "splits.csv"


def save_splits(splits: pd.DataFrame, paths: Paths) -> Path:
    """Write the splits (``id, split``) atomically; returns the file."""
    check_disjoint(splits)
    return write_csv_atomic(splits[["id", "split"]], splits_path(paths))


def catalog_splits(catalog: pd.DataFrame, paths: Paths, *, stratify: Sequence[str],
                   seed: int = config.SEED, test_size: float = 0.2, val_size: float = 0.1,
                   min_per_stratum: int = MIN_PER_STRATUM) -> tuple[pd.DataFrame, str]:
    """The catalog's one split: the saved ``splits.csv`` when it covers exactly the catalog's
    ids (so a second target, or a rerun, never moves an item to another side), else drawn
    with :func:`make_splits` (``stratify``) and saved.

    Returns:
        ``(splits, how)``: the table and ``"reused <file>"`` or ``"drawn, saved to <file>"``.
    """
    path = splits_path(paths)
    ids = set(catalog["id"].astype(str))
    if path.exists():
        saved = load_splits(paths)
        if set(saved["id"]) == ids:
            return saved, f"reused {config.display_path(path)}"
    table = make_splits(catalog, stratify=stratify, seed=seed, test_size=test_size,
                        val_size=val_size, min_per_stratum=min_per_stratum)
    return table, f"drawn, saved to {config.display_path(save_splits(table, paths))}"


def read_table_of_02(path: Path, *, what: str, target: str | None = None,
                     **read_csv: Any) -> pd.DataFrame:
    """Read a CSV that notebook 02 writes (``pandas.read_csv`` options in ``read_csv``).

    Raises:
        FileNotFoundError: naming the file and the notebook to run, when it is missing.
    """
    if not path.exists():
        with_target = f" with TARGET={target!r}" if target is not None else ""
        raise FileNotFoundError(f"No {what} at {path}: run notebook 02_sampling_augmentation"
                                f"{with_target} first.")
    return pd.read_csv(path, **read_csv)


def load_splits(paths: Paths) -> pd.DataFrame:
    """Read the split that notebook 02 saved (ids as strings).

    Raises:
        FileNotFoundError: notebook 02 has not run for this data set yet.
    """
    splits = read_table_of_02(splits_path(paths), what="splits",
                              dtype={"id": str, "split": str}, keep_default_na=False)
    check_disjoint(splits)
    return splits
