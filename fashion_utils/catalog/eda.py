"""Exploration helpers for notebook 01: frequency tables, image properties, samples per class,
and the catalog profile 01 hands to the later notebooks."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
from PIL import Image

from fashion_utils import config
from fashion_utils.atomic import write_json_atomic
from fashion_utils.checks import positive_int

#: The catalog profile's file under ``paths.processed``: what notebook 01 measured that later
#: notebooks and the study's plan read (the image side, the number of products).
PROFILE_NAME = "catalog_profile.json"
#: What a profile must hold.
PROFILE_KEYS = ("n_products", "median_short_side", "image_size")


def catalog_profile_path(paths: config.Paths) -> Path:
    """Where notebook 01 writes the catalog profile."""
    return paths.processed / PROFILE_NAME


def write_catalog_profile(paths: config.Paths, profile: Mapping[str, Any]) -> Path:
    """Write what later notebooks need to know of the catalog (atomically).

    Raises:
        ValueError: a key of :data:`PROFILE_KEYS` is missing.
    """
    missing = [k for k in PROFILE_KEYS if k not in profile]
    if missing:
        raise ValueError(f"A catalog profile needs {list(PROFILE_KEYS)}. Missing: {missing}")
    return write_json_atomic(catalog_profile_path(paths), dict(profile), indent=1)


def read_catalog_profile(paths: config.Paths) -> dict[str, Any]:
    """The catalog profile notebook 01 wrote.

    Raises:
        FileNotFoundError: notebook 01 has not run on this catalog (says so).
    """
    path = catalog_profile_path(paths)
    if not path.is_file():
        raise FileNotFoundError(f"No catalog profile at {path}: run notebook 01_eda first")
    return json.loads(path.read_text(encoding="utf-8"))


def frequency_table(catalog: pd.DataFrame, column: str, *, within: str | None = None) -> pd.DataFrame:
    """Counts and shares of each value of ``column`` (largest first).

    Args:
        catalog: the catalog table.
        column: the attribute to count.
        within: optional parent column (e.g. ``masterCategory`` for ``subCategory``); it is
            added as the first column of the table.

    Returns:
        A table with ``[within,] column, count, percent``.
    """
    for col in filter(None, (column, within)):
        if col not in catalog.columns:
            raise ValueError(f"Unknown column {col!r}. Received columns: {list(catalog.columns)}")
    keys = [within, column] if within else [column]
    counts = catalog.groupby(keys, dropna=False).size().rename("count").reset_index()
    counts = counts.sort_values("count", ascending=False, kind="stable").reset_index(drop=True)
    counts["percent"] = (100 * counts["count"] / counts["count"].sum()).round(2)
    return counts


def image_properties(catalog: pd.DataFrame, *, sample_size: int | None = 2000,
                     seed: int = 0) -> pd.DataFrame:
    """Width, height, colour mode, format and file size of (a sample of) the catalog's images.

    Only image headers are read, so this is cheap.

    Args:
        catalog: table with ``id`` and ``image_path``.
        sample_size: how many images to look at (``None``: all).
        seed: sampling seed.

    Returns:
        One row per image: ``id, width, height, mode, format, bytes``.
    """
    if sample_size is not None and sample_size < 1:
        raise ValueError(f"sample_size must be >= 1 or None. Received: sample_size={sample_size!r}")
    rows = catalog if sample_size is None or sample_size >= len(catalog) else \
        catalog.sample(sample_size, random_state=seed)
    records = []
    for item_id, path in zip(rows["id"], rows["image_path"]):
        with Image.open(path) as img:
            records.append({"id": item_id, "width": img.width, "height": img.height,
                            "mode": img.mode, "format": img.format})
    out = pd.DataFrame.from_records(records, columns=["id", "width", "height", "mode", "format"])
    out["bytes"] = [os.path.getsize(p) for p in rows["image_path"]]
    return out


def samples_per_class(catalog: pd.DataFrame, column: str, *, per_class: int = 6,
                      seed: int = 0, classes: Sequence[str] | None = None,
                      max_classes: int | None = None) -> pd.DataFrame:
    """Up to ``per_class`` random rows of every class of ``column`` (classes in frequency order).

    Args:
        catalog: the catalog table.
        column: the class column.
        per_class: rows drawn from each class.
        seed: sampling seed.
        classes: the classes, in this order (default: every class, largest first).
        max_classes: keep only the first this many classes (``None``: all); a figure shows
            ``plots.MAX_CLASSES`` of them.

    Returns:
        The rows drawn, class after class.
    """
    if column not in catalog.columns:
        raise ValueError(f"Unknown column {column!r}. Received columns: {list(catalog.columns)}")
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1. Received: per_class={per_class!r}")
    max_classes = positive_int("max_classes", max_classes, allow_none=True)
    order = list(classes) if classes is not None else catalog[column].value_counts().index.tolist()
    order = order[:max_classes]
    parts = [catalog[catalog[column] == c].sample(min(per_class, int((catalog[column] == c).sum())),
                                                 random_state=seed) for c in order]
    return pd.concat(parts, ignore_index=True) if parts else catalog.head(0)
