"""The arrays a head search runs on: synthetic blobs, or notebook 02's study sample with
notebook 03's cached features (train and validation only), and their ``.npz`` file, which the
distributed chief and workers read (:mod:`fashion_utils.tools.distributed`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from fashion_utils import config
from fashion_utils.catalog import sampling
from fashion_utils.vision import features, models
from fashion_utils.atomic import atomic_path
from fashion_utils.checks import positive_int


def synthetic_search_data(*, n: int = 600, dim: int = 16, num_classes: int = 4,
                          seed: int = config.SEED, val_fraction: float = 0.25) -> dict[str, Any]:
    """Gaussian blobs standing in for cached features (tests, demos, no data set).

    Returns:
        ``{"x_train", "y_train", "x_val", "y_val", "class_names", "source"}``.
    """
    n = positive_int("n", n, minimum=2 * num_classes)
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 1.0, size=(num_classes, dim)).astype(np.float32)
    y = np.arange(n) % num_classes
    rng.shuffle(y)
    x = (centers[y] + rng.normal(0.0, 1.0, size=(n, dim))).astype(np.float32)
    n_val = max(num_classes, int(round(n * val_fraction)))
    return {"x_train": x[n_val:], "y_train": y[n_val:].astype(np.int64), "x_val": x[:n_val],
            "y_val": y[:n_val].astype(np.int64),
            "class_names": [f"class_{i}" for i in range(num_classes)],
            "source": f"synthetic ({n} points, {dim} dims, {num_classes} classes, seed {seed})"}


def load_search_data(data_dir: str | os.PathLike | None = None, *,
                     backbone: str = config.DEFAULT_BACKBONE, target: str = config.DEFAULT_TARGET,
                     image_size: int | None = None) -> dict[str, Any]:
    """Train and validation features of a data set, as notebooks 03 and 04 read them.

    Rows and labels come from notebook 02's study sample (``sampling.load_study_sample``),
    features from the store notebook 03 filled (``features.finished_feature_cache`` at
    ``image_size``, default ``config.DEFAULT_IMAGE_SIZE``). The test side is never read.

    Returns:
        Like :func:`synthetic_search_data`, plus ``"missing"``: train/val rows without features
        (counted, not silently dropped).

    Raises:
        FileNotFoundError: no store of that backbone and side (run notebook 03), no study
            sample for ``target`` (run notebook 02), or a side without any stored row.
    """
    paths = config.get_paths(data_dir)
    size = image_size or config.DEFAULT_IMAGE_SIZE
    if not features.find_feature_stores(paths.features, model_key=backbone, image_size=size):
        raise FileNotFoundError(f"No finished {backbone!r} feature cache at {size} px under "
                                f"{paths.features} (run notebook 03 first).")
    sample = sampling.load_study_sample(paths, target=target)
    class_names = sorted(sample[target].astype(str).unique())
    out: dict[str, Any] = {"class_names": class_names, "missing": {}}
    for side in ("train", "val"):
        part = sample[sample["split"] == side]
        try:
            cache = features.cached_embeddings(part["id"], part["image_path"], model_key=backbone,
                                               image_size=size, cache_dir=paths.features,
                                               partial=True)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"The store holds no {side} row of the study sample: {err}"
                                    ) from err
        out["missing"][side] = int(len(part) - len(cache.ids))
        have = part[part["id"].astype(str).isin(set(cache.ids.tolist()))]
        out[f"x_{side}"], out[f"y_{side}"] = models.labelled_features(
            have, cache.ids, cache.features, target=target, class_names=class_names)
    out["source"] = (f"{paths.data_dir.name}: {backbone} features @ {size} px "
                     f"({cache.folder.name}), study sample, target {target}")
    return out


def save_search_data(data: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write search arrays to an ``.npz`` (atomically): what chief and workers read."""
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **{k: np.asarray(data[k]) for k in ("x_train", "y_train", "x_val", "y_val")},
                 class_names=np.asarray(data["class_names"], dtype=str),
                 source=np.asarray(str(data.get("source", ""))))
    return Path(path)


def read_search_data(path: str | os.PathLike) -> dict[str, Any]:
    """Read what :func:`save_search_data` wrote."""
    with np.load(path, allow_pickle=False) as npz:
        data = {k: npz[k] for k in ("x_train", "y_train", "x_val", "y_val")}
        data["class_names"] = [str(c) for c in npz["class_names"]]
        data["source"] = str(npz["source"])
    return data
