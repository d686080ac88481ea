"""Speed and memory benchmarks (``make bench``), written to ``reports/benchmarks.json``.

Each measurement runs in a fresh subprocess so that its peak RSS is its own. Sections:

- ``extraction``: streamed feature extraction from disk vs the model alone (random tensors
  already in memory, same batch size) vs a naive one-image-at-a-time loop, per image size;
  the full catalog at the default size, its cached rerun, and peak RSS at 10k and 70k images.
- further sections (recommender, tuning) are added by ``bench_<name>`` functions registered
  in :data:`SECTIONS`.

Usage::

    python -m fashion_utils.bench                  # every section
    python -m fashion_utils.bench extraction --sizes 32 64
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fashion_utils.atomic import write_json_atomic
from fashion_utils import config

README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"


def _peak_rss_mib() -> float:
    """This process's own peak RSS (VmHWM). ``ru_maxrss`` would be wrong here: Linux carries it
    over from the parent through fork and exec, so a light child reports its parent's peak."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _child(conn, fn: Callable[..., dict], kwargs: dict) -> None:
    try:
        result = fn(**kwargs)
        result["peak_rss_mib"] = round(_peak_rss_mib(), 1)
        conn.send(("ok", result))
    except BaseException as err:  # report any failure to the parent
        conn.send(("error", f"{type(err).__name__}: {err}"))
    finally:
        conn.close()


def run_isolated(fn: Callable[..., dict], **kwargs: Any) -> dict:
    """Run ``fn(**kwargs)`` in a fresh process; returns its dict plus ``peak_rss_mib``."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, fn, kwargs))
    proc.start()
    child.close()
    status, payload = parent.recv()
    proc.join()
    if status != "ok":
        raise RuntimeError(f"{fn.__name__}({kwargs}) failed: {payload}")
    return payload


def _catalog(n: int | None):
    from fashion_utils.data import load_catalog
    from fashion_utils.fashion_mnist import prepare_fashion_mnist

    prepare_fashion_mnist(config.default_data_dir())
    paths = config.get_paths()
    catalog, _ = load_catalog(paths.data_dir, cache_dir=paths.interim)
    return catalog if n is None else catalog.iloc[:n]


def measure_model_only(*, backbone: str, image_size: int, batch_size: int, n_batches: int) -> dict:
    """Images/s of the backbone on random tensors already in memory."""
    import tensorflow as tf

    from fashion_utils.backbones import load_backbone

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
    from fashion_utils.backbones import load_backbone
    from fashion_utils.features import extract_embeddings

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
    from fashion_utils.backbones import load_backbone
    from fashion_utils.image_files import read_image_rgb

    catalog = _catalog(n_images)
    model = load_backbone(backbone, image_size=image_size)
    model.predict(np.zeros((1, image_size, image_size, 3), np.float32), verbose=0)
    start = time.perf_counter()
    for path in catalog["image_path"]:
        img = read_image_rgb(path, size=image_size).astype(np.float32)
        model.predict(img[None], verbose=0)
    seconds = time.perf_counter() - start
    return {"n_images": n_images, "images_per_s": round(n_images / seconds, 1)}


def bench_extraction(*, sizes=(32, 64, 96, 224), backbone: str = config.DEFAULT_BACKBONE,
                     batch_size: int = 256, full_size: int = config.DEFAULT_IMAGE_SIZE) -> dict:
    """Streamed vs model-only vs naive images/s per size; the full catalog and its cache."""
    per_size = {}
    sample = {32: 20000, 64: 10000, 96: 5000, 224: 1500}
    naive_n = {32: 300, 64: 300, 96: 200, 224: 100}
    for size in sizes:
        n = sample.get(size, 2000)
        with tempfile.TemporaryDirectory() as tmp:
            streamed = run_isolated(measure_streamed, backbone=backbone, image_size=size,
                                    batch_size=batch_size, n_images=n, cache_dir=tmp)
        model_only = run_isolated(measure_model_only, backbone=backbone, image_size=size,
                                  batch_size=batch_size, n_batches=max(3, min(10, n // batch_size)))
        naive = run_isolated(measure_naive, backbone=backbone, image_size=size,
                             n_images=naive_n.get(size, 100))
        per_size[str(size)] = {
            "streamed_images_per_s": streamed["images_per_s"], "n_images": streamed["n_images"],
            "model_only_images_per_s": model_only["images_per_s"],
            "streamed_over_model_only": round(streamed["images_per_s"] / model_only["images_per_s"], 3),
            "naive_images_per_s": naive["images_per_s"],
            "streamed_over_naive": round(streamed["images_per_s"] / naive["images_per_s"], 1),
            "peak_rss_mib": streamed["peak_rss_mib"]}
        print(f"  {size:>3} px: {per_size[str(size)]}", flush=True)
    full = {}
    for n in (10000, None):
        with tempfile.TemporaryDirectory() as tmp:
            res = run_isolated(measure_streamed, backbone=backbone, image_size=full_size,
                               batch_size=batch_size, n_images=n, cache_dir=tmp, repeat_cached=True)
        full[str(res["n_images"])] = res
        print(f"  full @ {full_size} px, {res['n_images']} images: {res}", flush=True)
    return {"backbone": backbone, "batch_size": batch_size, "per_size": per_size,
            "catalog_at_default_size": {"image_size": full_size, "runs": full}}


def bench_scale(**kwargs: Any) -> dict:
    """44k full-size Kaggle-layout products: loading, extraction, index (see ``scale.py``)."""
    from fashion_utils import scale

    return scale.bench_scale(**kwargs)


def bench_recommender(**kwargs: Any) -> dict:
    """Query latency of the exact index at 70k and of FAISS at 1M vectors (see ``recommend.py``)."""
    from fashion_utils import bench_recommender

    return bench_recommender.bench_recommender(**kwargs)


SECTIONS: dict[str, Callable[..., dict]] = {"extraction": bench_extraction, "scale": bench_scale,
                                            "recommender": bench_recommender}


def machine_info() -> dict:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d")}


def write_results(section: str, result: dict, *, path: Path | None = None) -> Path:
    """Merge one section into ``reports/benchmarks.json`` (atomic write)."""
    path = path or (config.PROJ_ROOT / "reports" / "benchmarks.json")
    data = json.loads(path.read_text()) if path.exists() else {}
    data["machine"] = machine_info()
    data[section] = result
    return write_json_atomic(path, data)


def extraction_markdown(result: dict) -> str:
    """The README table for the extraction section."""
    lines = ["| image size | streamed from disk (img/s) | model only (img/s) | streamed / model | naive loop (img/s) | streamed / naive |",
             "|---|---|---|---|---|---|"]
    for size, r in result["per_size"].items():
        lines.append(f"| {size} px | {r['streamed_images_per_s']:,.0f} | {r['model_only_images_per_s']:,.0f} | "
                     f"{r['streamed_over_model_only']:.2f} | {r['naive_images_per_s']:,.0f} | {r['streamed_over_naive']:.0f}x |")
    full = result["catalog_at_default_size"]
    lines.append("")
    lines.append(f"Whole catalog at {full['image_size']} px:")
    lines.append("")
    lines.append("| images | cold extraction (s) | cached rerun (s) | peak RSS (MiB) |")
    lines.append("|---|---|---|---|")
    for n, r in full["runs"].items():
        lines.append(f"| {int(n):,} | {r['seconds']:.0f} | {r['cached_rerun_seconds']:.2f} | {r['peak_rss_mib']:,.0f} |")
    return "\n".join(lines)


def update_readme(markdown: str, *, readme: Path | None = None, section: str = "extraction") -> None:
    """Replace the text between ``<!-- bench:<section>:start/end -->`` markers in the README."""
    readme = readme or (config.PROJ_ROOT / "README.md")
    start, end = f"<!-- bench:{section}:start -->", f"<!-- bench:{section}:end -->"
    text = readme.read_text()
    if start not in text or end not in text:
        raise ValueError(f"README lacks the markers {start} / {end}")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{markdown}\n{end}{tail}")


def _scale_markdown(result: dict) -> str:
    from fashion_utils import scale

    return scale.scale_markdown(result)


MARKDOWN: dict[str, Callable[[dict], str]] = {"extraction": extraction_markdown, "scale": _scale_markdown}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Speed and memory benchmarks")
    parser.add_argument("sections", nargs="*", default=list(SECTIONS), help=f"any of {list(SECTIONS)}")
    parser.add_argument("--sizes", nargs="+", type=int, default=[32, 64, 96, 224])
    args = parser.parse_args(argv)
    for name in args.sections:
        if name not in SECTIONS:
            parser.error(f"unknown section {name!r}; choose from {list(SECTIONS)}")
        print(f"==> {name}", flush=True)
        kwargs = {"sizes": tuple(args.sizes)} if name == "extraction" else {}
        result = SECTIONS[name](**kwargs)
        out = write_results(name, result)
        if name in MARKDOWN:
            try:
                update_readme(MARKDOWN[name](result), section=name)
            except ValueError as err:
                print(f"  (README not updated: {err})")
        print(f"    written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
