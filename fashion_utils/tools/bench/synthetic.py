"""A synthetic Kaggle-layout catalog at full size, for the scale benchmark.

The real Kaggle "Fashion Product Images" download holds 44,446 products whose pictures are
1800x2400 (width x height) JPEGs of ~150–400 KB; the "small" variant is 60x80. This module
makes a synthetic catalog of that shape (:func:`make_synthetic_kaggle_catalog`).

Encoding 44k photo-sized JPEGs would take longer than the benchmark itself, so the catalog is
made from a *pool* of a few hundred distinct synthetic product photos (white background, a
textured product shape, fine grain; at JPEG quality 90 the default pool of 256 ranges over
~130–480 KiB, mean ~280 KiB, like the real files' ~150–400 KB): every product's file is a
real copy of one pool image's bytes (not a link). Decoding cost per file is that of a real
photo of that size; the OS page cache sees 44k distinct files.

Everything lands under ``<output root>/data/bench/`` (git-ignored): made once, atomically
(built under a temporary name, then renamed by :func:`fashion_utils.atomic.atomic_dir`), and
reused by later runs.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from fashion_utils import checks, config
from fashion_utils.atomic import atomic_dir, write_json_atomic

__all__ = [
    "FULL_SIZE",
    "KAGGLE_COLUMNS",
    "MARKER",
    "SMALL_SIZE",
    "bench_dir",
    "catalog_info",
    "check_wh",
    "make_synthetic_kaggle_catalog",
    "synthetic_product_image",
]

FULL_SIZE: tuple[int, int] = (1800, 2400)  # width x height of the Kaggle full-size pictures
SMALL_SIZE: tuple[int, int] = (60, 80)     # the Kaggle "small" variant
KAGGLE_COLUMNS: list[str] = ["id", "gender", "masterCategory", "subCategory", "articleType",
                             "baseColour", "season", "year", "usage", "productDisplayName"]
GENERATOR_VERSION = 1  # bump when the generator changes: catalogs made before are not reused
MARKER = ".complete.json"

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
    "Black": (30, 30, 32), "White": (238, 238, 236), "Blue": (40, 70, 170),
    "Brown": (110, 70, 40), "Grey": (128, 128, 130), "Red": (190, 30, 40),
    "Green": (40, 130, 60), "Pink": (230, 140, 170), "Navy Blue": (25, 35, 80),
    "Purple": (110, 50, 130), "Silver": (190, 190, 195), "Yellow": (225, 200, 50),
    "Beige": (220, 200, 170), "Gold": (200, 160, 60), "Maroon": (110, 20, 35),
    "Orange": (235, 120, 30),
}
GENDERS = (("Men", 0.50), ("Women", 0.42), ("Unisex", 0.05), ("Boys", 0.02), ("Girls", 0.01))
SEASONS = (("Summer", 0.48), ("Fall", 0.26), ("Winter", 0.19), ("Spring", 0.07))
USAGES = (("Casual", 0.78), ("Sports", 0.09), ("Ethnic", 0.07), ("Formal", 0.05),
          ("Party", 0.01))
BRANDS = ("Nike", "Puma", "Roadster", "Fastrack", "Titan", "Jealous 21", "Lino Perros",
          "Wrangler", "Adidas")
# Missing values per column, and unquoted commas in the name, at about the real file's rates.
MISSING_RATES: dict[str, float] = {"usage": 0.007, "season": 0.0005, "baseColour": 0.0004,
                                   "productDisplayName": 0.0002, "year": 0.0001}
EXTRA_COMMA_RATE = 0.0005


def bench_dir() -> Path:
    """``<output root>/data/bench``: where the synthetic catalogs live (git-ignored)."""
    return config.output_root() / "data" / "bench"


def check_wh(name: str, value: Any) -> tuple[int, int]:
    """``value`` as ``(width, height)`` if it is a pair of integers >= 8."""
    ok = (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 8
                  for v in value))
    if not ok:
        raise ValueError(f"{name} must be (width, height), both integers >= 8. "
                         f"Received: {name}={value!r}")
    return int(value[0]), int(value[1])


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
    width, height = check_wh("image_size", image_size)
    rng = np.random.default_rng(seed)
    # The product's silhouette, drawn at 1/4 scale, softened and enlarged.
    mw, mh = max(width // 4, 2), max(height // 4, 2)
    mask_img = Image.new("L", (mw, mh), 0)
    draw = ImageDraw.Draw(mask_img)
    cx = mw / 2 + rng.uniform(-0.05, 0.05) * mw
    cy = mh / 2 + rng.uniform(-0.05, 0.05) * mh
    w, h = rng.uniform(0.27, 0.45) * mw, rng.uniform(0.27, 0.44) * mh
    kind = int(rng.integers(3))
    if kind == 0:
        draw.ellipse([cx - w, cy - h, cx + w, cy + h], fill=255)
    elif kind == 1:
        draw.rounded_rectangle([cx - w, cy - h, cx + w, cy + h],
                               radius=int(rng.uniform(0.02, 0.3) * mw), fill=255)
    else:
        angles = np.linspace(0, 2 * np.pi, 9)[:-1]
        draw.polygon([(cx + w * np.cos(a) * rng.uniform(0.6, 1.1),
                       cy + h * np.sin(a) * rng.uniform(0.6, 1.1)) for a in angles], fill=255)
    mask = mask_img.filter(ImageFilter.GaussianBlur(1)).resize((width, height),
                                                               Image.Resampling.BILINEAR)
    alpha = np.asarray(mask, np.float32)[..., None] * (1 / 255)
    # Folds and fabric: smooth low-frequency texture; grain: fine noise (it sets the file size).
    lo = rng.normal(0, 40, (max(height // 24, 2), max(width // 24, 2))) + 128
    texture = Image.fromarray(lo.clip(0, 255).astype(np.uint8)).resize(
        (width, height), Image.Resampling.BICUBIC)
    texture = (np.asarray(texture, np.float32)[..., None] - 128) * rng.uniform(0.5, 1.0)
    noise = rng.standard_normal((height, width, 1), dtype=np.float32)
    product = np.asarray(colour, np.float32) + texture + noise * rng.uniform(1.0, 3.0)
    gradient = np.linspace(0, rng.uniform(-10, 5), height, dtype=np.float32)[:, None, None]
    background = rng.uniform(235, 252) + gradient + noise * rng.uniform(0.0, 0.6)
    image = background + (product - background) * alpha
    return image.clip(0, 255).astype(np.uint8)


def _encode_jpeg(array: np.ndarray, *, quality: int) -> bytes:
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
    shares = np.array([t[3] for t in PRODUCT_TYPES])
    types = rng.choice(len(PRODUCT_TYPES), size=pool_size,
                       p=shares / sum(t[3] for t in PRODUCT_TYPES))
    colours = rng.choice(list(COLOURS), size=pool_size)
    return [(*PRODUCT_TYPES[t][:3], str(c)) for t, c in zip(types, colours)]


# --------------------------------------------------------------------------- folders made once


def _read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _reuse(folder: Path, marker: dict, params: dict) -> tuple[Path, dict]:
    if marker.get("params") != params:
        raise ValueError(f"{folder} was made with other settings: {marker.get('params')}; "
                         f"delete it or choose another folder. Received: {params}")
    return folder, marker


def _build_atomically(folder: Path, params: dict,
                      build: Callable[[Path], dict]) -> tuple[Path, dict]:
    """Return ``folder`` made by ``build(tmp)`` once; reuse it when its marker matches
    ``params``."""
    marker = _read_marker(folder)
    if marker is not None:
        return _reuse(folder, marker, params)
    if folder.exists() and any(folder.iterdir()):
        raise ValueError(f"{folder} exists and was not made by this generator (no {MARKER}); "
                         f"refusing to overwrite it. Received: out_dir={os.fspath(folder)!r}")
    try:
        with atomic_dir(folder) as tmp:  # an empty folder left behind is replaced
            start = time.perf_counter()
            info = build(tmp)
            marker = {"params": params, **info,
                      "build_seconds": round(time.perf_counter() - start, 1)}
            write_json_atomic(tmp / MARKER, marker, indent=1)
    except FileExistsError:  # another process finished it first
        other = _read_marker(folder)
        if other is None:
            raise
        return _reuse(folder, other, params)
    return folder, marker


def _make_pool(*, pool_size: int, image_size: tuple[int, int], quality: int, seed: int,
               root: Path) -> tuple[Path, dict]:
    """A cached folder of ``pool_size`` distinct JPEGs (``0000.jpg`` ...), with their attributes."""
    params = {"version": GENERATOR_VERSION, "pool_size": pool_size,
              "image_size": list(image_size), "quality": quality, "seed": seed}
    width, height = image_size
    folder = root / f"pool-{pool_size}-{width}x{height}-q{quality}-seed{seed}"

    def build(tmp: Path) -> dict:
        sizes = []
        for k, (_, _, _, colour) in enumerate(_pool_attributes(pool_size, seed)):
            picture = synthetic_product_image(seed * 100_003 + k, image_size=image_size,
                                              colour=COLOURS[colour])
            data = _encode_jpeg(picture, quality=quality)
            (tmp / f"{k:04d}.jpg").write_bytes(data)  # inside the folder atomic_dir renames
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
        if extra_comma[i]:  # unquoted, as in the real file
            name = f"{BRANDS[brand[i]]} {gender[i]} {colour}, {article}"
        values = {"id": str(10_000 + i), "gender": gender[i], "masterCategory": master,
                  "subCategory": sub, "articleType": article, "baseColour": colour,
                  "season": season[i], "year": str(year[i]), "usage": usage[i],
                  "productDisplayName": name}
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
        image_size: ``(width, height)``: Kaggle's full size ``(1800, 2400)`` or small
            ``(60, 80)``.
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
    n = checks.positive_int("n", n)
    pool_size = checks.positive_int("pool_size", pool_size)
    image_size = check_wh("image_size", image_size)
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) \
            or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an integer in [1, 100]. Received: quality={quality!r}")
    folder = Path(out_dir).expanduser().resolve()
    params = {"version": GENERATOR_VERSION, "n": n, "image_size": list(image_size),
              "pool_size": pool_size, "quality": int(quality), "seed": int(seed)}
    if _read_marker(folder) is not None:  # fast path: made before (or a clear error)
        return _build_atomically(folder, params, lambda tmp: {})[0]
    pool_dir, pool_info = _make_pool(pool_size=pool_size, image_size=image_size,
                                     quality=int(quality), seed=int(seed),
                                     root=Path(pool_root) if pool_root else folder.parent)

    def build(tmp: Path) -> dict:
        lines, pool_of = _styles_rows(n, pool_size, int(seed))
        pool = [(pool_dir / f"{k:04d}.jpg").read_bytes() for k in range(pool_size)]
        images = tmp / "images"
        images.mkdir()
        total = 0
        for i, k in enumerate(pool_of):  # a real copy, not a link, inside the atomic folder
            (images / f"{10_000 + i}.jpg").write_bytes(pool[k])
            total += len(pool[k])
        (tmp / "styles.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return {"pool_dir": str(pool_dir), "pool": pool_info, "total_bytes": int(total),
                "file_bytes_mean": total / n,
                "note": f"{n} real files copied from a pool of {pool_size} distinct synthetic "
                        f"photos"}

    return _build_atomically(folder, params, build)[0]


def catalog_info(folder: str | os.PathLike) -> dict:
    """What :func:`make_synthetic_kaggle_catalog` recorded about a catalog (its marker)."""
    marker = _read_marker(Path(folder))
    if marker is None:
        raise ValueError(f"{folder} is not a synthetic catalog made by this module "
                         f"(no {MARKER}). Received: folder={os.fspath(folder)!r}")
    return marker
