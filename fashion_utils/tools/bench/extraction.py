"""The extraction benchmark (section ``extraction``): images/s of the streamed extractor.

Streamed feature extraction from disk vs the model alone (random tensors already in memory,
same batch size) vs a naive one-image-at-a-time loop, per image size; then the full catalog at
the default size, its cached rerun, and peak RSS at 10k and 70k images. Each measurement runs
in a fresh process (:func:`~fashion_utils.tools.bench.measure.run_isolated`) so that its peak RSS
is its own.
"""

from __future__ import annotations

import tempfile
import time
from typing import Sequence

import numpy as np
import pandas as pd

from fashion_utils import checks, config
from fashion_utils.vision.backbones import load_backbone
from fashion_utils.tools.markdown import markdown_lines
from fashion_utils.tools.bench.measure import run_isolated
from fashion_utils.catalog.data import load_catalog
from fashion_utils.catalog.fashion_mnist import prepare_fashion_mnist
from fashion_utils.vision.features import extract_embeddings
from fashion_utils.catalog.image_files import read_image_rgb

__all__ = [
    "bench_extraction",
    "extraction_markdown",
    "measure_model_only",
    "measure_naive",
    "measure_streamed",
]

#: Images streamed per size (the per-size rates) and images of the naive loop.
SAMPLE_IMAGES: dict[int, int] = {32: 20000, 64: 10000, 96: 5000, 224: 1500}
NAIVE_IMAGES: dict[int, int] = {32: 300, 64: 300, 96: 200, 224: 100}


def _catalog(n: int | None) -> pd.DataFrame:
    """The default catalog (Fashion-MNIST, prepared if needed), its first ``n`` rows."""
    prepare_fashion_mnist(config.default_data_dir())
    paths = config.get_paths()
    catalog, _ = load_catalog(paths.data_dir, cache_dir=paths.interim)
    return catalog if n is None else catalog.iloc[:n]


def measure_model_only(*, backbone: str, image_size: int, batch_size: int, n_batches: int) -> dict:
    """Images/s of the backbone on random tensors already in memory."""
    import tensorflow as tf

    model = load_backbone(backbone, image_size=image_size)
    infer = tf.function(lambda x: model(x, training=False))
    x = tf.random.uniform((batch_size, image_size, image_size, 3), 0, 255, seed=0)
    infer(x).numpy()  # trace + warm up
    times = []
    for _ in range(n_batches):
        start = time.perf_counter()
        infer(x).numpy()
        times.append(time.perf_counter() - start)
    return {"images_per_s": round(batch_size / float(np.median(times)), 1)}


def measure_streamed(*, backbone: str, image_size: int, batch_size: int, n_images: int | None,
                     cache_dir: str, repeat_cached: bool = False) -> dict:
    """Images/s of the streamed extractor reading the catalog's files from disk (cold cache).

    The backbone is built before the clock starts (``model_build_seconds`` reports it), so
    the rate compares like for like with :func:`measure_model_only`; ``seconds`` is the
    extraction's wall time, ``total_seconds`` adds the model build.
    """
    catalog = _catalog(n_images)
    start = time.perf_counter()
    model = load_backbone(backbone, image_size=image_size)
    build = time.perf_counter() - start
    kwargs = dict(model_factory=lambda: model, model_key=backbone, image_size=image_size,
                  batch_size=batch_size, cache_dir=cache_dir, progress=False)
    ids, files = catalog["id"].tolist(), catalog["image_path"].tolist()
    start = time.perf_counter()
    extract_embeddings(ids, files, **kwargs)
    seconds = time.perf_counter() - start
    out = {"n_images": len(catalog), "seconds": round(seconds, 2),
           "total_seconds": round(seconds + build, 2), "model_build_seconds": round(build, 2),
           "images_per_s": round(len(catalog) / seconds, 1)}
    if repeat_cached:
        start = time.perf_counter()
        _, feats = extract_embeddings(ids, files, **kwargs)
        out["cached_rerun_seconds"] = round(time.perf_counter() - start, 3)
        out["feature_shape"] = list(feats.shape)
    return out


def measure_naive(*, backbone: str, image_size: int, n_images: int) -> dict:
    """The naive way: open one image with PIL, predict it alone, repeat."""
    catalog = _catalog(n_images)
    model = load_backbone(backbone, image_size=image_size)
    model.predict(np.zeros((1, image_size, image_size, 3), np.float32), verbose=0)
    start = time.perf_counter()
    for path in catalog["image_path"]:
        img = read_image_rgb(path, size=image_size).astype(np.float32)
        model.predict(img[None], verbose=0)
    seconds = time.perf_counter() - start
    return {"n_images": n_images, "images_per_s": round(n_images / seconds, 1)}


def _per_size(*, backbone: str, size: int, batch_size: int) -> dict:
    """Streamed, model-only and naive rates at one image size (three fresh processes)."""
    n = SAMPLE_IMAGES.get(size, 2000)
    with tempfile.TemporaryDirectory() as tmp:
        streamed = run_isolated(measure_streamed, backbone=backbone, image_size=size,
                                batch_size=batch_size, n_images=n, cache_dir=tmp)
    model_only = run_isolated(measure_model_only, backbone=backbone, image_size=size,
                              batch_size=batch_size,
                              n_batches=max(3, min(10, n // batch_size)))
    naive = run_isolated(measure_naive, backbone=backbone, image_size=size,
                         n_images=NAIVE_IMAGES.get(size, 100))
    return {
        "streamed_images_per_s": streamed["images_per_s"], "n_images": streamed["n_images"],
        "model_only_images_per_s": model_only["images_per_s"],
        "streamed_over_model_only": round(streamed["images_per_s"]
                                          / model_only["images_per_s"], 3),
        "naive_images_per_s": naive["images_per_s"],
        "streamed_over_naive": round(streamed["images_per_s"] / naive["images_per_s"], 1),
        "peak_rss_mib": streamed["peak_rss_mib"]}


def bench_extraction(*, sizes: Sequence[int] = (32, 64, 96, 224),
                     backbone: str = config.DEFAULT_BACKBONE, batch_size: int = 256,
                     full_size: int = config.DEFAULT_IMAGE_SIZE) -> dict:
    """Streamed vs model-only vs naive images/s per size; the full catalog and its cache.

    Args:
        sizes: image sizes of the per-size comparison.
        backbone: the backbone measured.
        batch_size: images per forward pass.
        full_size: the image size of the whole-catalog runs (10k images, then all).

    Returns:
        A JSON-ready dict: ``per_size`` rates and ``catalog_at_default_size`` runs.
    """
    sizes = tuple(checks.positive_int("sizes", s, minimum=8) for s in sizes)
    batch_size = checks.positive_int("batch_size", batch_size)
    full_size = checks.positive_int("full_size", full_size, minimum=8)
    per_size = {}
    for size in sizes:
        per_size[str(size)] = _per_size(backbone=backbone, size=size, batch_size=batch_size)
        print(f"  {size:>3} px: {per_size[str(size)]}", flush=True)
    full = {}
    for n in (10000, None):
        with tempfile.TemporaryDirectory() as tmp:
            res = run_isolated(measure_streamed, backbone=backbone, image_size=full_size,
                               batch_size=batch_size, n_images=n, cache_dir=tmp,
                               repeat_cached=True)
        full[str(res["n_images"])] = res
        print(f"  full @ {full_size} px, {res['n_images']} images: {res}", flush=True)
    return {"backbone": backbone, "batch_size": batch_size, "per_size": per_size,
            "catalog_at_default_size": {"image_size": full_size, "runs": full}}


def extraction_markdown(result: dict) -> str:
    """The extraction section's table (on its page, ``measure.BENCH_PAGES``)."""
    per_size = markdown_lines(
        ["image size", "streamed from disk (img/s)", "model only (img/s)", "streamed / model",
         "naive loop (img/s)", "streamed / naive"],
        ([f"{size} px", f"{r['streamed_images_per_s']:,.0f}", f"{r['model_only_images_per_s']:,.0f}",
          f"{r['streamed_over_model_only']:.2f}", f"{r['naive_images_per_s']:,.0f}",
          f"{r['streamed_over_naive']:.0f}x"] for size, r in result["per_size"].items()))
    full = result["catalog_at_default_size"]
    whole = markdown_lines(
        ["images", "cold extraction (s)", "cached rerun (s)", "peak RSS (MiB)"],
        ([f"{int(n):,}", f"{r['seconds']:.0f}", f"{r['cached_rerun_seconds']:.2f}",
          f"{r['peak_rss_mib']:,.0f}"] for n, r in full["runs"].items()))
    return "\n".join([*per_size, "", f"Whole catalog at {full['image_size']} px:", "", *whole])
