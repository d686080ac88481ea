"""The scale benchmark (section ``scale``): a 44k-product Kaggle-layout catalog at full size.

The synthetic catalog (:mod:`fashion_utils.tools.bench.synthetic`: 1800x2400 JPEGs like the real
download's, and the 60x80 "small" variant) runs through the study's pipeline
(:func:`bench_scale`), one stage per fresh process
(:func:`~fashion_utils.tools.bench.measure.run_isolated`) so that each stage reports its own wall
time and peak RSS (the stages: :mod:`fashion_utils.tools.bench.stages` and
:func:`fashion_utils.tools.bench.recommender.measure_index`):

1. catalog loading with the image check, cold (no check cache) and cached;
2. feature extraction at the default size (96 px) via ``features.extract_features``, and its
   cached rerun;
3. the recommender index (``similarity.SimilarityIndex``): build, then a few hundred queries.

Command line (``make bench`` runs it with the defaults)::

    python -m fashion_utils.tools.bench scale --n 44000 --subset 10000
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from fashion_utils import checks, config
from fashion_utils.tools.markdown import markdown_lines
from fashion_utils.tools.bench.measure import run_isolated
from fashion_utils.tools.bench.recommender import measure_index
from fashion_utils.tools.bench.stages import measure_decode, measure_extraction, measure_loading
from fashion_utils.tools.bench.synthetic import (FULL_SIZE, SMALL_SIZE, bench_dir, catalog_info,
                                                 check_wh, make_synthetic_kaggle_catalog)

__all__ = ["FULL_SIZE", "RSS_TARGET_MIB", "SMALL_SIZE", "TIME_TARGET_S", "bench_scale",
           "scale_markdown"]

TIME_TARGET_S = 600.0       # 44k full-size products -> cached features at 96 px
RSS_TARGET_MIB = 4096.0     # peak RSS of any stage of the 44k run


def _call(fn: Callable[..., dict], isolated: bool, **kwargs: Any) -> dict:
    """Run a stage in a fresh process (its own peak RSS) or, for tests, in this one."""
    if isolated:
        return run_isolated(fn, **kwargs)
    result = fn(**kwargs)
    result["peak_rss_mib"] = None  # not measurable in a shared process
    return result


def _run_stages(data_dir: Path, *, image_size: int, backbone: str, batch_size: int,
                n_queries: int, weights: str | None, isolated: bool,
                log: Callable[[str], None]) -> dict:
    """Every stage on one catalog; work files live in a temporary folder, deleted after."""
    stages: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as work:
        checks_dir, feats = os.path.join(work, "checks"), os.path.join(work, "features")
        for name in ("load_cold", "load_cached"):
            stages[name] = _call(measure_loading, isolated, data_dir=str(data_dir),
                                 cache_dir=checks_dir)
            log(f"    {name}: {stages[name]}")
        stages["extract"] = _call(measure_extraction, isolated, data_dir=str(data_dir),
                                  check_cache_dir=checks_dir, feature_dir=feats,
                                  backbone=backbone, image_size=image_size,
                                  batch_size=batch_size, weights=weights)
        log(f"    extract: {stages['extract']}")
        stages["index"] = _call(measure_index, isolated,
                                feature_cache=stages["extract"].pop("feature_cache"),
                                n_queries=n_queries)
        log(f"    index: {stages['index']}")
    return stages


def _catalog_entry(folder: Path, *, size: int, wh: tuple[int, int], pool_size: int,
                   ready_seconds: float) -> dict:
    """The ``catalogs`` entry of one synthetic catalog (from its marker)."""
    info = catalog_info(folder)
    return {"folder": str(folder), "n": size, "image_size_wh": list(wh), "pool_size": pool_size,
            "file_kib_mean": round(info["file_bytes_mean"] / 1024, 1),
            "pool_file_kib_min": round(info["pool"]["file_bytes_min"] / 1024, 1),
            "pool_file_kib_max": round(info["pool"]["file_bytes_max"] / 1024, 1),
            "total_gib": round(info["total_bytes"] / 2**30, 2),
            "build_seconds": info["build_seconds"], "ready_seconds": round(ready_seconds, 1)}


def bench_scale(*, n: int = 44_000, subset: int | None = 10_000, measure_full: bool = True,
                image_size: int = config.DEFAULT_IMAGE_SIZE,
                backbone: str = config.DEFAULT_BACKBONE, batch_size: int = 256,
                full_image_size: tuple[int, int] = FULL_SIZE,
                small_image_size: tuple[int, int] | None = SMALL_SIZE, pool_size: int = 256,
                n_queries: int = 300, weights: str | None = "imagenet",
                root: str | os.PathLike | None = None, isolated: bool = True,
                log: Callable[[str], None] = print) -> dict:
    """Catalog loading, feature extraction and the index on a synthetic ``n``-product catalog.

    Args:
        n: products of the catalog (the real Kaggle download: 44,446).
        subset: also measure a catalog of this many products first (the 10k-vs-44k memory
            comparison and the extrapolation); ``None`` skips it.
        measure_full: measure the ``n``-product full-size catalog too (``False``: report the
            subset and its linear extrapolation only).
        image_size: the extraction size (the study's default: 96 px).
        backbone: the backbone of the extraction.
        batch_size: images per forward pass.
        full_image_size: ``(width, height)`` of the full-size pictures (Kaggle: 1800x2400).
        small_image_size: the "small" variant (Kaggle: 60x80), measured at ``n``; ``None`` skips.
        pool_size: distinct pictures each catalog is copied from.
        n_queries: recommender queries timed per catalog.
        weights: the backbone's weights (``None``: random, for tests).
        root: where the catalogs are made (default
            :func:`~fashion_utils.tools.bench.synthetic.bench_dir`).
        isolated: each stage in a fresh process with its own peak RSS (``False``: in this
            process, no RSS; for tests).
        log: progress messages.

    Returns:
        A JSON-ready dict: the catalogs, per-variant and per-size stages (wall seconds, peak
        RSS MiB), the extrapolation from ``subset`` to ``n``, and the targets met.
    """
    n = checks.positive_int("n", n)
    if subset is not None:
        subset = checks.positive_int("subset", subset)
        if subset >= n:
            raise ValueError(f"subset must be smaller than n={n}. Received: subset={subset!r}")
    if subset is None and not measure_full:
        raise ValueError("Nothing to measure: subset=None and measure_full=False")
    image_size = checks.positive_int("image_size", image_size, minimum=8)
    batch_size, pool_size, n_queries = checks.positive_int_values(
        batch_size=batch_size, pool_size=pool_size, n_queries=n_queries)
    root = Path(root) if root is not None else bench_dir()
    full_wh = check_wh("full_image_size", full_image_size)
    variants: list[tuple[str, tuple[int, int], list[int]]] = [
        ("full", full_wh, ([subset] if subset else []) + ([n] if measure_full else []))]
    if small_image_size is not None:
        variants.append(("small", check_wh("small_image_size", small_image_size), [n]))

    result: dict[str, Any] = {
        "n": n, "subset": subset, "image_size": image_size, "backbone": backbone,
        "batch_size": batch_size, "weights": weights, "cpus": os.cpu_count(), "catalogs": {},
        "runs": {},
        "note": (f"Synthetic Kaggle-layout catalogs: every product is a real JPEG file, a copy "
                 f"of one of {pool_size} distinct synthetic photos (white background, textured "
                 f"product, grain), JPEG quality 90. Files were just written, so 'cold' loading "
                 f"still reads them from the OS page cache where they fit."),
    }
    for variant, wh, sizes in variants:
        tag = f"{variant}-{wh[0]}x{wh[1]}"
        result["runs"][tag] = {}
        for size in sizes:
            folder = root / f"synthetic-kaggle-{size}-{wh[0]}x{wh[1]}"
            log(f"==> {tag}, {size:,} products: {folder}")
            start = time.perf_counter()
            make_synthetic_kaggle_catalog(folder, n=size, image_size=wh, pool_size=pool_size,
                                          pool_root=root)
            result["catalogs"][f"{tag}-{size}"] = _catalog_entry(
                folder, size=size, wh=wh, pool_size=pool_size,
                ready_seconds=time.perf_counter() - start)
            if variant == "full" and "decode" not in result:
                result["decode"] = _call(measure_decode, False, data_dir=str(folder),
                                         image_size=image_size)
                result["decode"].pop("peak_rss_mib")
                log(f"    decode: {result['decode']}")
            result["runs"][tag][str(size)] = _run_stages(
                folder, image_size=image_size, backbone=backbone, batch_size=batch_size,
                n_queries=n_queries, weights=weights, isolated=isolated, log=log)
    result["summary"] = _summarise(result, full_tag=f"full-{full_wh[0]}x{full_wh[1]}")
    return result


def _rss(stage: dict) -> float | None:
    """A stage's peak RSS: its own (``VmHWM``) when known, else ``run_isolated``'s figure."""
    own = stage.get("own_peak_rss_mib")
    return own if own is not None else stage.get("peak_rss_mib")


def _stage_seconds(stages: dict) -> dict[str, float]:
    return {"load_cold": stages["load_cold"]["seconds"],
            "load_cached": stages["load_cached"]["seconds"],
            "extract": stages["extract"]["seconds"],
            "index_build": stages["index"]["build_seconds"]}


def _summarise(result: dict, *, full_tag: str) -> dict:
    """Extrapolation from the subset to n, the memory growth, and whether the targets are met."""
    n, subset = result["n"], result["subset"]
    runs = result["runs"].get(full_tag, {})
    summary: dict[str, Any] = {"time_target_seconds": TIME_TARGET_S,
                               "rss_target_mib": RSS_TARGET_MIB}
    if subset and str(subset) in runs:
        sub = runs[str(subset)]
        factor = n / subset
        summary["extrapolated_to_n"] = {k: round(v * factor, 1)
                                        for k, v in _stage_seconds(sub).items()}
        summary["extrapolated_to_n"]["features_total"] = round(
            (sub["load_cold"]["seconds"] + sub["extract"]["seconds"]) * factor, 1)
    if str(n) in runs:
        full = runs[str(n)]
        rss = [_rss(s) for s in full.values()]
        summary["measured_features_total_seconds"] = round(
            full["load_cold"]["seconds"] + full["extract"]["seconds"], 1)
        summary["meets_time_target"] = summary["measured_features_total_seconds"] <= TIME_TARGET_S
        cpu = [full[s].get("cpu_seconds") for s in ("load_cold", "extract")]
        if all(c is not None for c in cpu):
            summary["features_total_cpu_seconds"] = round(sum(cpu), 1)
            # what the same work takes with every core to itself (perfect use: a lower bound)
            summary["features_total_if_cores_free_seconds"] = round(
                sum(cpu) / (result.get("cpus") or 1), 1)
        if all(r is not None for r in rss):
            summary["max_peak_rss_mib_at_n"] = max(rss)
            summary["meets_rss_target"] = max(rss) < RSS_TARGET_MIB
    elif "extrapolated_to_n" in summary:
        summary["meets_time_target_extrapolated"] = (
            summary["extrapolated_to_n"]["features_total"] <= TIME_TARGET_S)
    if subset and str(subset) in runs and str(n) in runs:
        summary["peak_rss_mib_by_size"] = {
            stage: {str(subset): _rss(runs[str(subset)][stage]), str(n): _rss(runs[str(n)][stage])}
            for stage in runs[str(n)]}
    return summary


def _stage_row(tag: str, size: str, stage: str, r: dict, names: dict[str, str]) -> list[str]:
    """One row of the scale table."""
    seconds = r["build_seconds"] if stage == "index" else r["seconds"]
    extra = ""
    if stage == "extract":
        extra = (f" ({r['images_per_s']:,.0f} img/s; "
                 f"cached rerun {r['cached_rerun_seconds']:.2f} s)")
    if stage == "index":
        extra = f" (+ {r['n_queries']} queries: p50 {r['query_p50_ms']:.1f} ms each)"
    rss = "–" if _rss(r) is None else f"{_rss(r):,.0f}"
    cpu = "–" if r.get("cpu_seconds") is None else f"{r['cpu_seconds']:,.1f}"
    load = "–" if r.get("load_average") is None else f"{r['load_average']:.1f}"
    return [tag, f"{int(size):,}", names[stage], f"{seconds:,.1f}{extra}", cpu, load, rss]


def _summary_lines(result: dict) -> list[str]:
    """The sentences under the scale table."""
    summary = result.get("summary", {})
    lines = []
    if "decode" in result:
        d = result["decode"]
        lines.append(f"Decoding one full-size JPEG to {result['image_size']} px: "
                     f"{d['full_decode_ms']:.1f} ms (PIL, full decode) vs "
                     f"{d['dct_scaled_decode_ms']:.1f} ms (DCT-scaled), {d['speedup']:.0f}x.")
    if "measured_features_total_seconds" in summary:
        lines.append(f"{result['n']:,} full-size products → cached features: "
                     f"{summary['measured_features_total_seconds']:,.0f} s measured "
                     f"(loading + extraction; target ≤ {summary['time_target_seconds']:.0f} s: "
                     f"{'met' if summary['meets_time_target'] else 'missed'}).")
    if "features_total_cpu_seconds" in summary:
        lines.append(f"That work used {summary['features_total_cpu_seconds']:,.0f} CPU-seconds: "
                     f"{summary['features_total_if_cores_free_seconds']:,.0f} s on "
                     f"{result['cpus']} cores with nothing else running (a lower bound; the "
                     f"load average column shows how busy the shared machine was).")
    if "extrapolated_to_n" in summary:
        lines.append(f"Extrapolated linearly from {result['subset']:,} products: "
                     f"{summary['extrapolated_to_n']['features_total']:,.0f} s.")
    if "max_peak_rss_mib_at_n" in summary:
        met = "met" if summary["meets_rss_target"] else "missed"
        lines.append(f"Largest peak RSS at {result['n']:,} products: "
                     f"{summary['max_peak_rss_mib_at_n']:,.0f} MiB "
                     f"(target < {summary['rss_target_mib']:,.0f}: {met}).")
    return lines


def scale_markdown(result: dict) -> str:
    """The table of :func:`bench_scale`'s result (on its page, ``measure.BENCH_PAGES``)."""
    names = {"load_cold": "load + image check (no check cache)",
             "load_cached": "load + image check (cached)",
             "extract": f"features @ {result['image_size']} px (cold cache)",
             "index": "index build"}
    lines = markdown_lines(
        ["catalog", "products", "stage", "wall time (s)", "CPU time (s)", "load avg",
         "peak RSS (MiB)"],
        (_stage_row(tag, size, stage, r, names) for tag, sizes in result["runs"].items()
         for size, stages in sizes.items() for stage, r in stages.items()))
    lines.append("")
    lines.extend(_summary_lines(result))
    lines.append(f"_{result['note']} Peak RSS: each stage's own process (VmHWM)._")
    return "\n".join(lines)
