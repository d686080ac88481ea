"""The scale benchmark: a 44k-product Kaggle-layout catalog at full size, end to end.

The real Kaggle "Fashion Product Images" download holds 44,446 products whose pictures are
1800x2400 (width x height) JPEGs of ~150–400 KB; the "small" variant is 60x80. This module
makes a synthetic catalog of that shape (:func:`make_synthetic_kaggle_catalog`) and runs it
through the study's pipeline (:func:`bench_scale`), one stage per fresh process
(``bench.run_isolated``) so that each stage reports its own wall time and peak RSS:

1. catalog loading with the image check, cold (no check cache) and cached;
2. feature extraction at the default size (96 px) via ``features.extract_features``, and its
   cached rerun;
3. the recommender index (``similarity.SimilarityIndex``): build, then a few hundred queries.

Encoding 44k photo-sized JPEGs would take longer than the benchmark itself, so the catalog is
made from a *pool* of a few hundred distinct synthetic product photos (white background, a
textured product shape, fine grain; at JPEG quality 90 the default pool of 256 ranges over
~130–480 KiB, mean ~280 KiB, like the real files' ~150–400 KB): every
product's file is a real copy of one pool image's bytes (not a link). Decoding cost per file is
that of a real photo of that size; the OS page cache sees 44k distinct files.

Everything lands under ``<output root>/data/bench/`` (git-ignored): made once, atomically
(built under a temporary name, then renamed), and reused by later runs.

Command line (``make bench`` runs it through ``fashion_utils.bench``)::

    python -m fashion_utils.scale --n 44000 --subset 10000
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from fashion_utils import config

__all__ = [
    "FULL_SIZE",
    "SMALL_SIZE",
    "bench_dir",
    "bench_scale",
    "make_synthetic_kaggle_catalog",
    "measure_extraction",
    "measure_index",
    "measure_loading",
    "scale_markdown",
    "synthetic_product_image",
]

FULL_SIZE: tuple[int, int] = (1800, 2400)  # width x height of the Kaggle full-size pictures
SMALL_SIZE: tuple[int, int] = (60, 80)     # the Kaggle "small" variant
KAGGLE_COLUMNS: list[str] = ["id", "gender", "masterCategory", "subCategory", "articleType", "baseColour",
                             "season", "year", "usage", "productDisplayName"]
GENERATOR_VERSION = 1  # bump when the generator changes: catalogs made before are not reused
MARKER = ".complete.json"
TIME_TARGET_S = 600.0       # 44k full-size products -> cached features at 96 px
RSS_TARGET_MIB = 4096.0     # peak RSS of any stage of the 44k run

# (masterCategory, subCategory, articleType, share of the catalog): the real catalog's big types.
PRODUCT_TYPES: list[tuple[str, str, str, float]] = [
    ("Apparel", "Topwear", "Tshirts", 0.16), ("Apparel", "Topwear", "Shirts", 0.07),
    ("Apparel", "Topwear", "Kurtas", 0.04), ("Apparel", "Topwear", "Tops", 0.04),
    ("Apparel", "Bottomwear", "Jeans", 0.02), ("Apparel", "Bottomwear", "Trousers", 0.01),
    ("Apparel", "Dress", "Dresses", 0.01), ("Apparel", "Innerwear", "Briefs", 0.02),
    ("Footwear", "Shoes", "Casual Shoes", 0.06), ("Footwear", "Shoes", "Sports Shoes", 0.05),
    ("Footwear", "Shoes", "Heels", 0.03), ("Footwear", "Flip Flops", "Flip Flops", 0.02),
    ("Footwear", "Sandal", "Sandals", 0.02), ("Accessories", "Watches", "Watches", 0.06),
    ("Accessories", "Bags", "Handbags", 0.04), ("Accessories", "Belts", "Belts", 0.02),
    ("Accessories", "Eyewear", "Sunglasses", 0.02), ("Accessories", "Wallets", "Wallets", 0.02),
    ("Personal Care", "Fragrance", "Perfume and Body Mist", 0.02),
    ("Personal Care", "Lips", "Lipstick", 0.01), ("Free Items", "Free Gifts", "Free Gifts", 0.002),
]
COLOURS: dict[str, tuple[int, int, int]] = {
    "Black": (30, 30, 32), "White": (238, 238, 236), "Blue": (40, 70, 170), "Brown": (110, 70, 40),
    "Grey": (128, 128, 130), "Red": (190, 30, 40), "Green": (40, 130, 60), "Pink": (230, 140, 170),
    "Navy Blue": (25, 35, 80), "Purple": (110, 50, 130), "Silver": (190, 190, 195), "Yellow": (225, 200, 50),
    "Beige": (220, 200, 170), "Gold": (200, 160, 60), "Maroon": (110, 20, 35), "Orange": (235, 120, 30),
}
GENDERS = (("Men", 0.50), ("Women", 0.42), ("Unisex", 0.05), ("Boys", 0.02), ("Girls", 0.01))
SEASONS = (("Summer", 0.48), ("Fall", 0.26), ("Winter", 0.19), ("Spring", 0.07))
USAGES = (("Casual", 0.78), ("Sports", 0.09), ("Ethnic", 0.07), ("Formal", 0.05), ("Party", 0.01))
BRANDS = ("Nike", "Puma", "Roadster", "Fastrack", "Titan", "Jealous 21", "Lino Perros", "Wrangler", "Adidas")
# Missing values per column, and unquoted commas in the name, at about the real file's rates.
MISSING_RATES: dict[str, float] = {"usage": 0.007, "season": 0.0005, "baseColour": 0.0004,
                                   "productDisplayName": 0.0002, "year": 0.0001}
EXTRA_COMMA_RATE = 0.0005


def bench_dir() -> Path:
    """``<output root>/data/bench``: where the synthetic catalogs live (git-ignored)."""
    return config.output_root() / "data" / "bench"


def _check_wh(name: str, value: Any) -> tuple[int, int]:
    ok = (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 8 for v in value))
    if not ok:
        raise ValueError(f"{name} must be (width, height), both integers >= 8. Received: {name}={value!r}")
    return int(value[0]), int(value[1])


def _check_int(name: str, value: Any, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}. Received: {name}={value!r}")
    return int(value)


# --------------------------------------------------------------------------- synthetic images


def synthetic_product_image(seed: int, *, image_size: tuple[int, int] = FULL_SIZE,
                            colour: tuple[int, int, int] = (40, 70, 170)) -> np.ndarray:
    """A photo-like product picture: light background, a textured product shape, fine grain.

    Shaped like a catalog photo so that JPEG compresses it like one: at 1800x2400, quality 90
    gives ~130–480 KiB, mean ~280 KiB over 256 seeds (the grain and background noise vary).

    Args:
        seed: picks the shape, texture and noise levels.
        image_size: ``(width, height)``.
        colour: the product's base RGB colour.

    Returns:
        A ``(height, width, 3)`` uint8 array.
    """
    from PIL import Image, ImageDraw, ImageFilter

    width, height = _check_wh("image_size", image_size)
    rng = np.random.default_rng(seed)
    # The product's silhouette, drawn at 1/4 scale, softened and enlarged.
    mw, mh = max(width // 4, 2), max(height // 4, 2)
    mask_img = Image.new("L", (mw, mh), 0)
    draw = ImageDraw.Draw(mask_img)
    cx, cy = mw / 2 + rng.uniform(-0.05, 0.05) * mw, mh / 2 + rng.uniform(-0.05, 0.05) * mh
    w, h = rng.uniform(0.27, 0.45) * mw, rng.uniform(0.27, 0.44) * mh
    kind = int(rng.integers(3))
    if kind == 0:
        draw.ellipse([cx - w, cy - h, cx + w, cy + h], fill=255)
    elif kind == 1:
        draw.rounded_rectangle([cx - w, cy - h, cx + w, cy + h], radius=int(rng.uniform(0.02, 0.3) * mw), fill=255)
    else:
        angles = np.linspace(0, 2 * np.pi, 9)[:-1]
        draw.polygon([(cx + w * np.cos(a) * rng.uniform(0.6, 1.1), cy + h * np.sin(a) * rng.uniform(0.6, 1.1))
                      for a in angles], fill=255)
    mask = mask_img.filter(ImageFilter.GaussianBlur(1)).resize((width, height), Image.Resampling.BILINEAR)
    alpha = np.asarray(mask, np.float32)[..., None] * (1 / 255)
    # Folds and fabric: smooth low-frequency texture; grain: fine noise (it sets the file size).
    lo = rng.normal(0, 40, (max(height // 24, 2), max(width // 24, 2))) + 128
    texture = Image.fromarray(lo.clip(0, 255).astype(np.uint8)).resize((width, height), Image.Resampling.BICUBIC)
    texture = (np.asarray(texture, np.float32)[..., None] - 128) * rng.uniform(0.5, 1.0)
    noise = rng.standard_normal((height, width, 1), dtype=np.float32)
    product = np.asarray(colour, np.float32) + texture + noise * rng.uniform(1.0, 3.0)
    gradient = np.linspace(0, rng.uniform(-10, 5), height, dtype=np.float32)[:, None, None]
    background = rng.uniform(235, 252) + gradient + noise * rng.uniform(0.0, 0.6)
    image = background + (product - background) * alpha
    return image.clip(0, 255).astype(np.uint8)


def _encode_jpeg(array: np.ndarray, *, quality: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _draw(rng: np.random.Generator, choices: Sequence[tuple[str, float]], n: int) -> np.ndarray:
    names = np.array([c for c, _ in choices], dtype=object)
    p = np.array([w for _, w in choices], dtype=float)
    return names[rng.choice(len(names), size=n, p=p / p.sum())]


def _pool_attributes(pool_size: int, seed: int) -> list[tuple[str, str, str, str]]:
    """(masterCategory, subCategory, articleType, baseColour) of each pool picture."""
    rng = np.random.default_rng([seed, 1])
    types = rng.choice(len(PRODUCT_TYPES), size=pool_size,
                       p=np.array([t[3] for t in PRODUCT_TYPES]) / sum(t[3] for t in PRODUCT_TYPES))
    colours = rng.choice(list(COLOURS), size=pool_size)
    return [(*PRODUCT_TYPES[t][:3], str(c)) for t, c in zip(types, colours)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's live process
        return True
    return True


def _remove_stale_temps(folder: Path) -> None:
    """Delete ``.<name>.tmp-<pid>`` siblings left by builders that died."""
    for tmp in folder.parent.glob(f".{folder.name}.tmp-*"):
        try:
            pid = int(tmp.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        if not _alive(pid):
            shutil.rmtree(tmp, ignore_errors=True)


def _read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _build_atomically(folder: Path, params: dict, build: Callable[[Path], dict]) -> tuple[Path, dict]:
    """Return ``folder`` made by ``build(tmp)`` once; reuse it when its marker matches ``params``."""
    marker = _read_marker(folder)
    if marker is not None:
        if marker.get("params") != params:
            raise ValueError(f"{folder} was made with other settings: {marker.get('params')}; "
                             f"delete it or choose another folder. Received: {params}")
        return folder, marker
    if folder.exists() and any(folder.iterdir()):
        raise ValueError(f"{folder} exists and was not made by this generator (no {MARKER}); "
                         f"refusing to overwrite it. Received: out_dir={os.fspath(folder)!r}")
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(folder)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        start = time.perf_counter()
        info = build(tmp)
        marker = {"params": params, **info, "build_seconds": round(time.perf_counter() - start, 1)}
        (tmp / MARKER).write_text(json.dumps(marker, indent=1) + "\n")
        if folder.exists():  # an empty folder left behind
            folder.rmdir()
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder, marker


def _make_pool(*, pool_size: int, image_size: tuple[int, int], quality: int, seed: int,
               root: Path) -> tuple[Path, dict]:
    """A cached folder of ``pool_size`` distinct JPEGs (``0000.jpg`` ...), with their attributes."""
    params = {"version": GENERATOR_VERSION, "pool_size": pool_size, "image_size": list(image_size),
              "quality": quality, "seed": seed}
    width, height = image_size
    folder = root / f"pool-{pool_size}-{width}x{height}-q{quality}-seed{seed}"

    def build(tmp: Path) -> dict:
        sizes = []
        for k, (_, _, _, colour) in enumerate(_pool_attributes(pool_size, seed)):
            data = _encode_jpeg(synthetic_product_image(seed * 100_003 + k, image_size=image_size,
                                                        colour=COLOURS[colour]), quality=quality)
            (tmp / f"{k:04d}.jpg").write_bytes(data)
            sizes.append(len(data))
        return {"file_bytes_mean": float(np.mean(sizes)), "file_bytes_min": int(min(sizes)),
                "file_bytes_max": int(max(sizes))}

    return _build_atomically(folder, params, build)


def _styles_rows(n: int, pool_size: int, seed: int) -> tuple[list[str], np.ndarray]:
    """The styles.csv lines (header first) and each row's pool picture."""
    rng = np.random.default_rng([seed, 2])
    attrs = _pool_attributes(pool_size, seed)
    pool_of = rng.integers(0, pool_size, size=n)
    gender = _draw(rng, GENDERS, n)
    season = _draw(rng, SEASONS, n)
    usage = _draw(rng, USAGES, n)
    year = rng.integers(2008, 2019, size=n)
    brand = rng.choice(len(BRANDS), size=n)
    missing = {col: rng.random(n) < rate for col, rate in MISSING_RATES.items()}
    extra_comma = rng.random(n) < EXTRA_COMMA_RATE
    lines = [",".join(KAGGLE_COLUMNS)]
    for i in range(n):
        master, sub, article, colour = attrs[pool_of[i]]
        name = f"{BRANDS[brand[i]]} {gender[i]} {colour} {article}"
        if extra_comma[i]:
            name = f"{BRANDS[brand[i]]} {gender[i]} {colour}, {article}"  # unquoted, as in the real file
        values = {"id": str(10_000 + i), "gender": gender[i], "masterCategory": master, "subCategory": sub,
                  "articleType": article, "baseColour": colour, "season": season[i], "year": str(year[i]),
                  "usage": usage[i], "productDisplayName": name}
        for col, rows in missing.items():
            if rows[i]:
                values[col] = ""
        lines.append(",".join(values[c] for c in KAGGLE_COLUMNS))
    return lines, pool_of


def make_synthetic_kaggle_catalog(out_dir: str | os.PathLike, *, n: int,
                                  image_size: tuple[int, int] = FULL_SIZE, pool_size: int = 256,
                                  quality: int = 90, seed: int = config.SEED,
                                  pool_root: str | os.PathLike | None = None) -> Path:
    """A Kaggle-layout catalog (``styles.csv`` + ``images/<id>.jpg``) of ``n`` products.

    ``styles.csv`` has the real file's ten columns and about its rates of empty values and of
    unquoted commas in ``productDisplayName``. Each product's picture is a real copy of the
    bytes of one of ``pool_size`` distinct synthetic photos (encoding 44k big JPEGs would take
    longer than the benchmark); its ``masterCategory``/``subCategory``/``articleType``/
    ``baseColour`` are those of its pool picture.

    Made once: the folder is built under a temporary name and renamed when complete (a
    ``.complete.json`` marker holds the settings), so a second call returns at once.

    Args:
        out_dir: the catalog folder to make.
        n: number of products (ids ``"10000"`` ...).
        image_size: ``(width, height)``: Kaggle's full size ``(1800, 2400)`` or small ``(60, 80)``.
        pool_size: distinct pictures.
        quality: JPEG quality.
        seed: picks attributes, pictures and noise.
        pool_root: where the picture pool is cached (default: ``out_dir``'s parent).

    Returns:
        ``out_dir`` as an absolute path.

    Raises:
        ValueError: bad settings, or ``out_dir`` holds something else (another generator's
            settings, or files without the marker).
    """
    n = _check_int("n", n)
    pool_size = _check_int("pool_size", pool_size)
    image_size = _check_wh("image_size", image_size)
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an integer in [1, 100]. Received: quality={quality!r}")
    folder = Path(out_dir).expanduser().resolve()
    params = {"version": GENERATOR_VERSION, "n": n, "image_size": list(image_size), "pool_size": pool_size,
              "quality": int(quality), "seed": int(seed)}
    if _read_marker(folder) is not None:  # fast path: made before (or a clear error)
        return _build_atomically(folder, params, lambda tmp: {})[0]
    pool_dir, pool_info = _make_pool(pool_size=pool_size, image_size=image_size, quality=int(quality),
                                     seed=int(seed), root=Path(pool_root) if pool_root else folder.parent)

    def build(tmp: Path) -> dict:
        lines, pool_of = _styles_rows(n, pool_size, int(seed))
        pool = [(pool_dir / f"{k:04d}.jpg").read_bytes() for k in range(pool_size)]
        images = tmp / "images"
        images.mkdir()
        total = 0
        for i, k in enumerate(pool_of):
            with open(images / f"{10_000 + i}.jpg", "wb") as fh:  # a real copy, not a link
                fh.write(pool[k])
            total += len(pool[k])
        (tmp / "styles.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return {"pool_dir": str(pool_dir), "pool": pool_info, "total_bytes": int(total),
                "file_bytes_mean": total / n,
                "note": f"{n} real files copied from a pool of {pool_size} distinct synthetic photos"}

    return _build_atomically(folder, params, build)[0]


def catalog_info(folder: str | os.PathLike) -> dict:
    """What :func:`make_synthetic_kaggle_catalog` recorded about a catalog (its marker)."""
    marker = _read_marker(Path(folder))
    if marker is None:
        raise ValueError(f"{folder} is not a synthetic catalog made by this module (no {MARKER})")
    return marker


# --------------------------------------------------------------------------- stages (one process each)


def _cpu_seconds() -> float:
    """User + system CPU time of this process so far (all its threads)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _load_average() -> float | None:
    """The machine's 1-minute load average: how contended the measurement was."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # pragma: no cover - not available
        return None


def _own_peak_rss_mib() -> float | None:
    """This process's own peak RSS (``VmHWM``), in MiB; ``None`` where /proc is missing.

    ``getrusage``'s ``ru_maxrss`` of a spawned child starts at its parent's RSS at fork time
    (Linux carries it across ``exec``), so a light stage would report the parent's size;
    ``VmHWM`` belongs to the new address space only.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:  # pragma: no cover - not Linux
        pass
    return None


def measure_loading(*, data_dir: str, cache_dir: str) -> dict:
    """``load_catalog`` with its image check (the check cache lives in ``cache_dir``)."""
    from fashion_utils.data import load_catalog

    start, cpu = time.perf_counter(), _cpu_seconds()
    catalog, report = load_catalog(data_dir, check_images=True, cache_dir=cache_dir)
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 2), "cpu_seconds": round(_cpu_seconds() - cpu, 2),
            "load_average": _load_average(), "n_rows_read": report.n_rows_read, "n_kept": report.n_kept,
            "n_excluded": report.n_excluded, "n_repaired": report.n_repaired,
            "n_from_cache": report.n_from_cache, "check_seconds": round(report.check_seconds, 2),
            "catalog_mib": round(float(catalog.memory_usage(deep=True).sum()) / 2**20, 1),
            "own_peak_rss_mib": _own_peak_rss_mib()}


def measure_extraction(*, data_dir: str, check_cache_dir: str, feature_dir: str, backbone: str,
                       image_size: int, batch_size: int, weights: str | None = "imagenet") -> dict:
    """``extract_features`` on the whole catalog (cold feature cache), then its cached rerun.

    ``seconds`` covers the extraction call (model build included); loading the catalog (its
    image checks served from the cache) is timed apart as ``load_seconds``. ``cpu_seconds`` is
    the process's CPU time during the extraction (all threads): on a shared, busy machine it
    says what the work costs when the wall time says mostly how busy the machine was.
    """
    from fashion_utils.data import load_catalog
    from fashion_utils.features import extract_features

    start = time.perf_counter()
    catalog, _ = load_catalog(data_dir, check_images=True, cache_dir=check_cache_dir)
    load_seconds = time.perf_counter() - start
    kwargs = dict(image_size=image_size, cache_dir=feature_dir, batch_size=batch_size, weights=weights,
                  progress=False)
    start, cpu = time.perf_counter(), _cpu_seconds()
    _, feats = extract_features(catalog, backbone, **kwargs)
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    load = _load_average()
    start = time.perf_counter()
    _, again = extract_features(catalog, backbone, **kwargs)
    cached = time.perf_counter() - start
    files = sorted(Path(feature_dir).glob("*/features.npy"))
    return {"n_images": len(catalog), "load_seconds": round(load_seconds, 2), "seconds": round(seconds, 2),
            "cpu_seconds": round(cpu, 1), "load_average": load,
            "images_per_s": round(len(catalog) / seconds, 1), "cached_rerun_seconds": round(cached, 3),
            "feature_shape": list(feats.shape), "features_path": str(files[-1]) if files else "",
            "own_peak_rss_mib": _own_peak_rss_mib()}


def measure_index(*, features_path: str, n_queries: int, k: int = 5, seed: int = config.SEED) -> dict:
    """Build a ``SimilarityIndex`` on the cached features, then time single and batched queries."""
    from fashion_utils.similarity import SimilarityIndex
    from fashion_utils.bench_recommender import query_latency

    folder = Path(features_path).parent
    ids = (folder / "ids.txt").read_text().split("\n")[:-1]
    feats = np.load(features_path, mmap_mode="r")
    start = time.perf_counter()
    index = SimilarityIndex(ids, feats)
    build = time.perf_counter() - start
    rng = np.random.default_rng(seed)
    queries = [ids[i] for i in rng.choice(len(ids), size=min(n_queries, len(ids)), replace=False)]
    latency = query_latency(index, queries, k=k)
    start = time.perf_counter()
    index.query_many(queries, k)
    batched = time.perf_counter() - start
    return {"n": len(index), "dim": index.dim, "pruned": bool(index.prune), "build_seconds": round(build, 2),
            "n_queries": len(queries), "k": k, "query_p50_ms": round(latency["p50_ms"], 2),
            "query_p90_ms": round(latency["p90_ms"], 2),
            "single_queries_seconds": round(latency["mean_ms"] * len(queries) / 1e3, 2),
            "batched_queries_seconds": round(batched, 3),
            "index_mib": round(index.memory_bytes() / 2**20, 1), "own_peak_rss_mib": _own_peak_rss_mib()}


def measure_decode(*, data_dir: str, image_size: int, n_images: int = 40) -> dict:
    """ms per image: PIL full decode + resize vs DCT-scaled decode (``read_image_rgb``)."""
    from PIL import Image

    from fashion_utils.image_files import read_image_rgb

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


def _call(fn: Callable[..., dict], isolated: bool, **kwargs: Any) -> dict:
    """Run a stage in a fresh process (its own peak RSS) or, for tests, in this one."""
    if isolated:
        from fashion_utils.bench import run_isolated

        return run_isolated(fn, **kwargs)
    result = fn(**kwargs)
    result["peak_rss_mib"] = None  # not measurable in a shared process
    return result


def _run_stages(data_dir: Path, *, image_size: int, backbone: str, batch_size: int, n_queries: int,
                weights: str | None, isolated: bool, log: Callable[[str], None]) -> dict:
    """Every stage on one catalog; work files live in a temporary folder, deleted after."""
    stages: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as work:
        checks, feats = os.path.join(work, "checks"), os.path.join(work, "features")
        for name in ("load_cold", "load_cached"):
            stages[name] = _call(measure_loading, isolated, data_dir=str(data_dir), cache_dir=checks)
            log(f"    {name}: {stages[name]}")
        stages["extract"] = _call(measure_extraction, isolated, data_dir=str(data_dir), check_cache_dir=checks,
                                  feature_dir=feats, backbone=backbone, image_size=image_size,
                                  batch_size=batch_size, weights=weights)
        log(f"    extract: {stages['extract']}")
        stages["index"] = _call(measure_index, isolated, features_path=stages["extract"].pop("features_path"),
                                n_queries=n_queries)
        log(f"    index: {stages['index']}")
    return stages


def bench_scale(*, n: int = 44_000, subset: int | None = 10_000, measure_full: bool = True,
                image_size: int = config.DEFAULT_IMAGE_SIZE, backbone: str = config.DEFAULT_BACKBONE,
                batch_size: int = 256, full_image_size: tuple[int, int] = FULL_SIZE,
                small_image_size: tuple[int, int] | None = SMALL_SIZE, pool_size: int = 256,
                n_queries: int = 300, weights: str | None = "imagenet", root: str | os.PathLike | None = None,
                isolated: bool = True, log: Callable[[str], None] = print) -> dict:
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
        root: where the catalogs are made (default :func:`bench_dir`).
        isolated: each stage in a fresh process with its own peak RSS (``False``: in this
            process, no RSS; for tests).
        log: progress messages.

    Returns:
        A JSON-ready dict: the catalogs, per-variant and per-size stages (wall seconds, peak
        RSS MiB), the extrapolation from ``subset`` to ``n``, and the targets met.
    """
    n = _check_int("n", n)
    if subset is not None:
        subset = _check_int("subset", subset)
        if subset >= n:
            raise ValueError(f"subset must be smaller than n={n}. Received: subset={subset!r}")
    if subset is None and not measure_full:
        raise ValueError("Nothing to measure: subset=None and measure_full=False")
    root = Path(root) if root is not None else bench_dir()
    variants: list[tuple[str, tuple[int, int], list[int]]] = []
    full_sizes = ([subset] if subset else []) + ([n] if measure_full else [])
    variants.append(("full", _check_wh("full_image_size", full_image_size), full_sizes))
    if small_image_size is not None:
        variants.append(("small", _check_wh("small_image_size", small_image_size), [n]))

    result: dict[str, Any] = {
        "n": n, "subset": subset, "image_size": image_size, "backbone": backbone, "batch_size": batch_size,
        "weights": weights, "cpus": os.cpu_count(), "catalogs": {}, "runs": {},
        "note": (f"Synthetic Kaggle-layout catalogs: every product is a real JPEG file, a copy of one of "
                 f"{pool_size} distinct synthetic photos (white background, textured product, grain), "
                 f"JPEG quality 90. Files were just written, so 'cold' loading still reads them from the "
                 f"OS page cache where they fit."),
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
            info = catalog_info(folder)
            result["catalogs"][f"{tag}-{size}"] = {
                "folder": str(folder), "n": size, "image_size_wh": list(wh), "pool_size": pool_size,
                "file_kib_mean": round(info["file_bytes_mean"] / 1024, 1),
                "pool_file_kib_min": round(info["pool"]["file_bytes_min"] / 1024, 1),
                "pool_file_kib_max": round(info["pool"]["file_bytes_max"] / 1024, 1),
                "total_gib": round(info["total_bytes"] / 2**30, 2),
                "build_seconds": info["build_seconds"], "ready_seconds": round(time.perf_counter() - start, 1)}
            if variant == "full" and "decode" not in result:
                result["decode"] = _call(measure_decode, False, data_dir=str(folder), image_size=image_size)
                result["decode"].pop("peak_rss_mib")
                log(f"    decode: {result['decode']}")
            result["runs"][tag][str(size)] = _run_stages(
                folder, image_size=image_size, backbone=backbone, batch_size=batch_size, n_queries=n_queries,
                weights=weights, isolated=isolated, log=log)
    result["summary"] = _summarise(result, full_tag=f"full-{full_image_size[0]}x{full_image_size[1]}")
    return result


def _rss(stage: dict) -> float | None:
    """A stage's peak RSS: its own (``VmHWM``) when known, else ``run_isolated``'s figure."""
    own = stage.get("own_peak_rss_mib")
    return own if own is not None else stage.get("peak_rss_mib")


def _stage_seconds(stages: dict) -> dict[str, float]:
    return {"load_cold": stages["load_cold"]["seconds"], "load_cached": stages["load_cached"]["seconds"],
            "extract": stages["extract"]["seconds"], "index_build": stages["index"]["build_seconds"]}


def _summarise(result: dict, *, full_tag: str) -> dict:
    """Extrapolation from the subset to n, the memory growth, and whether the targets are met."""
    n, subset = result["n"], result["subset"]
    runs = result["runs"].get(full_tag, {})
    summary: dict[str, Any] = {"time_target_seconds": TIME_TARGET_S, "rss_target_mib": RSS_TARGET_MIB}
    if subset and str(subset) in runs:
        sub = runs[str(subset)]
        scale = n / subset
        summary["extrapolated_to_n"] = {k: round(v * scale, 1) for k, v in _stage_seconds(sub).items()}
        summary["extrapolated_to_n"]["features_total"] = round(
            (sub["load_cold"]["seconds"] + sub["extract"]["seconds"]) * scale, 1)
    if str(n) in runs:
        full = runs[str(n)]
        rss = [_rss(s) for s in full.values()]
        summary["measured_features_total_seconds"] = round(full["load_cold"]["seconds"] + full["extract"]["seconds"], 1)
        summary["meets_time_target"] = summary["measured_features_total_seconds"] <= TIME_TARGET_S
        cpu = [full[s].get("cpu_seconds") for s in ("load_cold", "extract")]
        if all(c is not None for c in cpu):
            summary["features_total_cpu_seconds"] = round(sum(cpu), 1)
            # what the same work takes with every core to itself (perfect use: a lower bound)
            summary["features_total_if_cores_free_seconds"] = round(sum(cpu) / (result.get("cpus") or 1), 1)
        if all(r is not None for r in rss):
            summary["max_peak_rss_mib_at_n"] = max(rss)
            summary["meets_rss_target"] = max(rss) < RSS_TARGET_MIB
    elif "extrapolated_to_n" in summary:
        summary["meets_time_target_extrapolated"] = summary["extrapolated_to_n"]["features_total"] <= TIME_TARGET_S
    if subset and str(subset) in runs and str(n) in runs:
        summary["peak_rss_mib_by_size"] = {
            stage: {str(subset): _rss(runs[str(subset)][stage]), str(n): _rss(runs[str(n)][stage])}
            for stage in runs[str(n)]}
    return summary


def scale_markdown(result: dict) -> str:
    """The README table of :func:`bench_scale`'s result."""
    names = {"load_cold": "load + image check (no check cache)", "load_cached": "load + image check (cached)",
             "extract": f"features @ {result['image_size']} px (cold cache)", "index": "index build"}
    lines = ["| catalog | products | stage | wall time (s) | CPU time (s) | load avg | peak RSS (MiB) |",
             "|---|---|---|---|---|---|---|"]
    for tag, sizes in result["runs"].items():
        for size, stages in sizes.items():
            for stage, r in stages.items():
                seconds = r["build_seconds"] if stage == "index" else r["seconds"]
                extra = ""
                if stage == "extract":
                    extra = f" ({r['images_per_s']:,.0f} img/s; cached rerun {r['cached_rerun_seconds']:.2f} s)"
                if stage == "index":
                    extra = f" (+ {r['n_queries']} queries: p50 {r['query_p50_ms']:.1f} ms each)"
                rss = "–" if _rss(r) is None else f"{_rss(r):,.0f}"
                cpu = "–" if r.get("cpu_seconds") is None else f"{r['cpu_seconds']:,.1f}"
                load = "–" if r.get("load_average") is None else f"{r['load_average']:.1f}"
                lines.append(f"| {tag} | {int(size):,} | {names[stage]} | {seconds:,.1f}{extra} | {cpu} | {load} | {rss} |")
    summary = result.get("summary", {})
    lines.append("")
    if "decode" in result:
        d = result["decode"]
        lines.append(f"Decoding one full-size JPEG to {result['image_size']} px: {d['full_decode_ms']:.1f} ms "
                     f"(PIL, full decode) vs {d['dct_scaled_decode_ms']:.1f} ms (DCT-scaled), "
                     f"{d['speedup']:.0f}x.")
    if "measured_features_total_seconds" in summary:
        lines.append(f"{result['n']:,} full-size products → cached features: "
                     f"{summary['measured_features_total_seconds']:,.0f} s measured (loading + extraction; "
                     f"target ≤ {summary['time_target_seconds']:.0f} s: "
                     f"{'met' if summary['meets_time_target'] else 'missed'}).")
    if "features_total_cpu_seconds" in summary:
        lines.append(f"That work used {summary['features_total_cpu_seconds']:,.0f} CPU-seconds: "
                     f"{summary['features_total_if_cores_free_seconds']:,.0f} s on {result['cpus']} cores "
                     f"with nothing else running (a lower bound; the load average column shows how "
                     f"busy the shared machine was).")
    if "extrapolated_to_n" in summary:
        lines.append(f"Extrapolated linearly from {result['subset']:,} products: "
                     f"{summary['extrapolated_to_n']['features_total']:,.0f} s.")
    if "max_peak_rss_mib_at_n" in summary:
        lines.append(f"Largest peak RSS at {result['n']:,} products: {summary['max_peak_rss_mib_at_n']:,.0f} MiB "
                     f"(target < {summary['rss_target_mib']:,.0f}: {'met' if summary['meets_rss_target'] else 'missed'}).")
    lines.append(f"_{result['note']} Peak RSS: each stage's own process (VmHWM)._")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The 44k-product scale benchmark")
    parser.add_argument("--n", type=int, default=44_000)
    parser.add_argument("--subset", type=int, default=10_000, help="0: none")
    parser.add_argument("--subset-only", action="store_true", help="measure the subset, extrapolate to n")
    parser.add_argument("--no-small", action="store_true", help="skip the 60x80 variant")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--out", type=Path, default=None, help="also write the result here (JSON)")
    parser.add_argument("--write", action="store_true", help="merge into reports/benchmarks.json (section 'scale')")
    args = parser.parse_args(argv)
    result = bench_scale(n=args.n, subset=args.subset or None, measure_full=not args.subset_only,
                         small_image_size=None if args.no_small else SMALL_SIZE, n_queries=args.queries)
    text = json.dumps(result, indent=2)
    print(text)
    print(scale_markdown(result))
    if args.out:
        args.out.write_text(text + "\n")
    if args.write:
        from fashion_utils.bench import write_results

        print(f"written to {write_results('scale', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
