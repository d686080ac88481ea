"""The scale benchmark's light stages: loading, extraction, decoding (one fresh process each).

Each stage runs in its own spawned process (:func:`~fashion_utils.tools.bench.measure.run_isolated`),
which imports this module to find it: so this module imports only what these stages measure
(no index, no TensorFlow at import time), and a stage's peak RSS is that of its own work. The
index stage lives in :mod:`fashion_utils.tools.bench.recommender` (:func:`measure_index`).
"""

from __future__ import annotations

import time
from pathlib import Path

from PIL import Image

from fashion_utils.tools.bench.measure import cpu_seconds, load_average, peak_rss_mib
from fashion_utils.catalog.data import load_catalog
from fashion_utils.vision.features import backbone_model_key, extract_features, store_folder
from fashion_utils.catalog.image_files import read_image_rgb

__all__ = ["measure_decode", "measure_extraction", "measure_loading"]


def measure_loading(*, data_dir: str, cache_dir: str) -> dict:
    """``load_catalog`` with its image check (the check cache lives in ``cache_dir``)."""
    start, cpu = time.perf_counter(), cpu_seconds()
    catalog, report = load_catalog(data_dir, check_images=True, cache_dir=cache_dir)
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 2), "cpu_seconds": round(cpu_seconds() - cpu, 2),
            "load_average": load_average(), "n_rows_read": report.n_rows_read,
            "n_kept": report.n_kept, "n_excluded": report.n_excluded,
            "n_repaired": report.n_repaired, "n_from_cache": report.n_from_cache,
            "check_seconds": round(report.check_seconds, 2),
            "catalog_mib": round(float(catalog.memory_usage(deep=True).sum()) / 2**20, 1),
            "own_peak_rss_mib": peak_rss_mib()}


def measure_extraction(*, data_dir: str, check_cache_dir: str, feature_dir: str, backbone: str,
                       image_size: int, batch_size: int,
                       weights: str | None = "imagenet") -> dict:
    """``extract_features`` on the whole catalog (cold feature cache), then its cached rerun.

    ``seconds`` covers the extraction call (model build included); loading the catalog (its
    image checks served from the cache) is timed apart as ``load_seconds``. ``cpu_seconds`` is
    the process's CPU time during the extraction (all threads): on a shared, busy machine it
    says what the work costs when the wall time says mostly how busy the machine was.
    ``feature_cache`` is the cache folder written (for :func:`measure_index`).
    """
    start = time.perf_counter()
    catalog, _ = load_catalog(data_dir, check_images=True, cache_dir=check_cache_dir)
    load_seconds = time.perf_counter() - start
    kwargs = dict(image_size=image_size, cache_dir=feature_dir, batch_size=batch_size,
                  weights=weights, progress=False)
    start, cpu = time.perf_counter(), cpu_seconds()
    _, feats = extract_features(catalog, backbone, **kwargs)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    load = load_average()
    start = time.perf_counter()
    _, again = extract_features(catalog, backbone, **kwargs)
    cached = time.perf_counter() - start
    return {"n_images": len(catalog), "load_seconds": round(load_seconds, 2),
            "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 1), "load_average": load,
            "images_per_s": round(len(catalog) / seconds, 1),
            "cached_rerun_seconds": round(cached, 3), "feature_shape": list(feats.shape),
            "feature_cache": str(store_folder(feature_dir, image_size=image_size,
                                              model_key=backbone_model_key(backbone, weights))),
            "own_peak_rss_mib": peak_rss_mib()}


def measure_decode(*, data_dir: str, image_size: int, n_images: int = 40) -> dict:
    """ms per image: PIL full decode + resize vs DCT-scaled decode (``read_image_rgb``)."""
    files = sorted((Path(data_dir) / "images").glob("*.jpg"))[:n_images]
    start = time.perf_counter()
    for path in files:
        with Image.open(path) as img:
            img.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)
    full = (time.perf_counter() - start) / len(files)
    start = time.perf_counter()
    for path in files:
        read_image_rgb(path, size=image_size)
    scaled = (time.perf_counter() - start) / len(files)
    return {"n_images": len(files), "full_decode_ms": round(full * 1e3, 2),
            "dct_scaled_decode_ms": round(scaled * 1e3, 2), "speedup": round(full / scaled, 1)}
