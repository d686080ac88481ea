"""Streamed, cached feature extraction.

Images are streamed from disk with ``tf.data`` (read → decode any JPEG/PNG to RGB → resize →
batch → prefetch) through a backbone in a compiled ``tf.function`` (no XLA: ``jit_compile``
was measured 5–10x slower on this CPU). A JPEG whose EXIF orientation says it was taken
turned (a phone photo) is decoded again by PIL, the right way up. Decoded images are never all
held in memory: work goes chunk by chunk, and each finished chunk is written to disk, so an interrupted run
resumes where it stopped. The cache is keyed by the model key (backbone name), the image
size and the exact, ordered id list; a cache made for anything else is never reused. The
unfinished chunks of an interrupted run are reused only under the same chunk layout
(``chunks.json``): a rerun with another ``chunk_size`` discards them and says so, and every
chunk's shape is checked before the permanent ``features.npy`` is assembled. A file that
cannot be decoded stops the extraction with its path named.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from fashion_utils.checks import columns_present, positive_int
from fashion_utils.image_files import (SUPPORTED_FORMATS, exif_orientation, is_turned_jpeg,
                                       read_image_rgb)
from fashion_utils.atomic import (atomic_path, remove_stale_temporaries_in, save_npy_atomic,
                                  write_json_atomic, write_text_atomic)
from fashion_utils.backbones import load_backbone
from fashion_utils.progress import Progress

CACHE_FORMAT = 1
DEFAULT_CHUNK_SIZE = 4096


def decode_image_tensor(data, *, image_size: int, letterbox: bool = False):
    """Decode encoded image bytes (JPEG, PNG, GIF, BMP; any channel count) to float32 RGB 0–255.

    Args:
        data: a scalar string tensor with the file's bytes.
        image_size: output side length in pixels.
        letterbox: keep the aspect ratio and pad with white instead of stretching.

    Returns:
        A ``(image_size, image_size, 3)`` float32 tensor.
    """
    import tensorflow as tf

    img = tf.cond(tf.io.is_jpeg(data),
                  lambda: decode_jpeg_scaled(data, image_size=image_size),
                  lambda: tf.io.decode_image(data, channels=3, expand_animations=False))
    img.set_shape([None, None, 3])
    if letterbox:
        img = 255.0 - tf.image.resize_with_pad(255.0 - tf.cast(img, tf.float32), image_size, image_size,
                                               antialias=True)
        return tf.clip_by_value(img, 0.0, 255.0)
    # Antialiasing only matters when shrinking, and costs ~3x when enlarging small images
    # (Fashion-MNIST's 28 px); the bilinear kernel never leaves the 0-255 range.
    shape = tf.shape(img)
    shrink = tf.logical_or(shape[0] > image_size, shape[1] > image_size)
    return tf.cond(shrink,
                   lambda: tf.image.resize(img, [image_size, image_size], antialias=True),
                   lambda: tf.image.resize(img, [image_size, image_size]))


JPEG_SCALES = (1, 2, 4, 8)  # the DCT scale denominators libjpeg supports in decode_jpeg(ratio=...)


def jpeg_scale_index(height, width, *, image_size: int):
    """Index into :data:`JPEG_SCALES` of the largest scale whose output still covers
    ``image_size`` on both sides (a scalar int32 tensor)."""
    import tensorflow as tf

    index = tf.constant(0)
    for i, r in enumerate(JPEG_SCALES[1:], start=1):
        fits = tf.logical_and(height // r >= image_size, width // r >= image_size)
        index = tf.where(fits, i, index)
    return index


def decode_jpeg_scaled(data, *, image_size: int):
    """Decode a JPEG at the smallest DCT scale (1/8…1) that still covers ``image_size``.

    Decoding a 1800x2400 photo at 1/8 scale skips most of the inverse-DCT work: it is many
    times faster than a full decode followed by a resize, and the result after the final
    resize differs only slightly (tested in ``tests/test_features.py``).
    """
    import tensorflow as tf

    shape = tf.image.extract_jpeg_shape(data)
    index = jpeg_scale_index(shape[0], shape[1], image_size=image_size)
    return tf.switch_case(index, [lambda r=r: tf.io.decode_jpeg(data, channels=3, ratio=r)
                                  for r in JPEG_SCALES])


def image_dataset(paths: Sequence[str], *, image_size: int, batch_size: int = 256,
                  letterbox: bool = False):
    """A ``tf.data.Dataset`` of float32 RGB batches (0–255) streamed from image files.

    Args:
        paths: image file paths, in order.
        image_size: side length of the square output.
        batch_size: images per batch.
        letterbox: keep aspect ratio (pad) instead of stretching.

    Returns:
        A dataset yielding ``(batch, image_size, image_size, 3)`` float32 tensors.
    """
    import tensorflow as tf

    image_size = positive_int("image_size", image_size, minimum=8)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size!r}")
    ds = tf.data.Dataset.from_tensor_slices(tf.constant([str(p) for p in paths], dtype=tf.string))
    ds = ds.map(lambda p: decode_image_tensor(tf.io.read_file(p), image_size=image_size,
                                              letterbox=letterbox),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _tf_decodes(path: str) -> bool:
    """Whether TensorFlow decodes this file as it should be seen, judged from its header: a
    JPEG, PNG, GIF or BMP without an EXIF rotation (TensorFlow ignores EXIF; a phone photo
    turned on its side goes to PIL, which applies it). A file PIL cannot open either is left to
    TensorFlow (which then names it)."""
    try:
        with Image.open(path) as img:
            return img.format in SUPPORTED_FORMATS and exif_orientation(img) == 1
    except (OSError, ValueError):
        return True


def _pil_decoded(path: str, *, image_size: int, letterbox: bool):
    """A file TensorFlow cannot decode (WebP, TIFF, ...) or would decode sideways (EXIF
    orientation), read upright by PIL, then resized exactly as
    :func:`decode_image_tensor` resizes (through a lossless PNG in memory)."""
    import tensorflow as tf

    png = tf.io.encode_png(tf.constant(read_image_rgb(path)))
    return decode_image_tensor(png, image_size=image_size, letterbox=letterbox)


def predict_image_files(model: Any, paths: Sequence[str | os.PathLike], *, image_size: int,
                        batch_size: int = 64, letterbox: bool = False) -> Any:
    """Run image files through ``model``, decoded exactly as the feature extraction decodes.

    The one way the package feeds image files to a model (classifiers, multi-output models,
    embedders): files stream through :func:`image_dataset`; formats TensorFlow cannot decode
    (WebP, TIFF) are read by PIL and resized the same way.

    Args:
        model: a callable Keras model taking ``(None, S, S, 3)`` float RGB 0–255.
        paths: image files.
        image_size: S, the square side the images are resized to.
        batch_size: images per forward pass.
        letterbox: keep the aspect ratio (pad) instead of stretching.

    Returns:
        The model's outputs, one row per path in order: a float32 array, or a dict of arrays
        for a model with named outputs.

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: no paths, or a file that cannot be decoded as an image (named).
    """
    import tensorflow as tf

    paths = [os.fspath(p) for p in paths]
    image_size = positive_int("image_size", image_size, minimum=8)
    batch_size = positive_int("batch_size", batch_size)
    if not paths:
        raise ValueError("predict_image_files needs at least one image. Received: 0 paths")
    for p in paths:
        if not Path(p).is_file():
            raise FileNotFoundError(f"No image file at {p}")
    by_tf = [i for i, p in enumerate(paths) if _tf_decodes(p)]
    by_pil = [i for i in range(len(paths)) if i not in set(by_tf)]
    order, outputs = [], []

    def run(batch) -> None:
        out = model(batch, training=False)
        outputs.append({k: np.asarray(v, dtype=np.float32) for k, v in out.items()}
                       if isinstance(out, dict) else np.asarray(out, dtype=np.float32))

    stream = image_dataset([paths[i] for i in by_tf], image_size=image_size,
                           batch_size=batch_size, letterbox=letterbox) if by_tf else []
    try:
        for batch in stream:
            run(batch)
    except tf.errors.InvalidArgumentError as err:
        raise ValueError(f"cannot decode image(s) among {[paths[i] for i in by_tf][:3]}: "
                         f"{err.message}") from err
    order.extend(by_tf)
    for lo in range(0, len(by_pil), batch_size):
        chunk = by_pil[lo:lo + batch_size]
        run(tf.stack([_pil_decoded(paths[i], image_size=image_size, letterbox=letterbox)
                      for i in chunk]))
        order.extend(chunk)
    back = np.argsort(np.asarray(order))
    if isinstance(outputs[0], dict):
        return {k: np.concatenate([o[k] for o in outputs])[back] for k in outputs[0]}
    return np.concatenate(outputs).reshape(len(paths), -1)[back]


def cache_key(model_key: str, image_size: int, ids: Sequence[str], *, letterbox: bool = False) -> str:
    """A folder name that changes whenever the model, size or the ordered id list changes."""
    digest = hashlib.sha256()
    digest.update(f"{CACHE_FORMAT}|{model_key}|{image_size}|{letterbox}|".encode())
    digest.update("\n".join(map(str, ids)).encode())
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in model_key)
    return f"{safe}_{image_size}px_{len(ids)}_{digest.hexdigest()[:16]}"


FEATURES_FILE, IDS_FILE, META_FILE = "features.npy", "ids.txt", "meta.json"
#: The chunk layout of an unfinished cache: chunk files are reused only under the same one.
LAYOUT_FILE = "chunks.json"


def _chunk_file(folder: Path, c: int) -> Path:
    return folder / f"chunk_{c:05d}.npy"


def _reusable_chunks(folder: Path, *, n: int, chunk_size: int) -> int:
    """Make the unfinished cache in ``folder`` follow the layout ``(n, chunk_size)``: chunk
    files written under another layout are deleted (with a warning). Returns how many."""
    import warnings

    layout = {"n": n, "chunk_size": chunk_size}
    path = folder / LAYOUT_FILE
    try:
        old = json.loads(path.read_text()) if path.is_file() else None
    except ValueError:
        old = None
    stale = sorted(folder.glob("chunk_*.npy")) if old != layout else []
    for f in stale:
        f.unlink()
    if stale:
        warnings.warn(f"{folder}: discarded {len(stale)} unfinished chunk(s) written under "
                      f"another chunk layout ({old}); now {layout}", stacklevel=3)
    if old != layout:
        write_json_atomic(path, layout)
    return len(stale)


def _checked_chunk(folder: Path, c: int, *, rows: int, dim: int | None) -> np.ndarray:
    """Chunk ``c`` (memory-mapped), checked to hold ``rows`` rows of ``dim`` values; a wrong
    one is deleted so that a rerun recomputes it."""
    f = _chunk_file(folder, c)
    part = np.load(f, mmap_mode="r")
    if part.ndim != 2 or len(part) != rows or (dim is not None and part.shape[1] != dim):
        shape = part.shape
        del part
        f.unlink()
        raise ValueError(f"The feature chunk {f} has shape {shape} (expected {rows} rows of "
                         f"{dim or 'any number of'} values); it was deleted: rerun to "
                         f"recompute it.")
    return part


def _undecodable(paths: Sequence[str], *, image_size: int, letterbox: bool) -> list[str]:
    """The files among ``paths`` that :func:`decode_image_tensor` cannot decode."""
    import tensorflow as tf

    bad = []
    for p in paths:
        try:
            decode_image_tensor(tf.io.read_file(p), image_size=image_size, letterbox=letterbox)
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError):
            bad.append(p)
    return bad


@dataclass(frozen=True)
class FeatureCache:
    """One finished feature cache: ``features[i]`` is the vector of ``ids[i]``.

    Attributes:
        folder: the cache folder (named by :func:`cache_key`).
        ids: the item ids, a string array, in row order.
        features: float32 ``(N, D)``, memory-mapped (read-only).
        meta: what :func:`extract_embeddings` recorded (``model_key``, ``image_size``, ``n``,
            ``dim``, ``letterbox``, ``seconds``).
    """

    folder: Path
    ids: np.ndarray
    features: np.ndarray
    meta: dict

    @property
    def path(self) -> Path:
        """The features file."""
        return self.folder / FEATURES_FILE


def open_feature_cache(folder: str | os.PathLike) -> FeatureCache:
    """Read one finished cache folder (the only reader of its files).

    Raises:
        FileNotFoundError: the folder holds no finished cache.
        ValueError: its id list and its features disagree in length.
    """
    folder = Path(folder)
    if not (folder / FEATURES_FILE).is_file():
        raise FileNotFoundError(f"No finished feature cache in {folder} (no {FEATURES_FILE})")
    ids = np.asarray((folder / IDS_FILE).read_text(encoding="utf-8").split("\n")[:-1])
    features = np.load(folder / FEATURES_FILE, mmap_mode="r")
    meta_file = folder / META_FILE
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    if len(ids) != len(features):
        raise ValueError(f"The cache {folder} holds {len(ids)} ids but {len(features)} feature rows")
    return FeatureCache(folder=folder, ids=ids, features=features, meta=meta)


def find_feature_caches(cache_dir: str | os.PathLike, *, model_key: str | None = None,
                        image_size: int | None = None) -> list[FeatureCache]:
    """Every finished cache below ``cache_dir`` (optionally of one model and image size),
    smallest first."""
    found = []
    root = Path(cache_dir)
    for meta_file in sorted(root.glob(f"*/{META_FILE}")) if root.is_dir() else []:
        try:
            cache = open_feature_cache(meta_file.parent)
        except FileNotFoundError:
            continue
        if model_key is not None and cache.meta.get("model_key") != model_key:
            continue
        if image_size is not None and cache.meta.get("image_size") != image_size:
            continue
        found.append(cache)
    return sorted(found, key=lambda c: (len(c.ids), c.folder.name))


def extract_embeddings(ids: Sequence[str], image_paths: Sequence[str], *,
                       model_factory: Callable[[], "object"], model_key: str, image_size: int,
                       cache_dir: str | os.PathLike, batch_size: int = 256,
                       chunk_size: int = DEFAULT_CHUNK_SIZE, letterbox: bool = False,
                       progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Run images through a model, chunk by chunk, caching the result on disk.

    Args:
        ids: unique item ids, in order (the cache is keyed by this exact list).
        image_paths: one image file per id.
        model_factory: returns the Keras model (called only when something must be computed).
        model_key: names the model in the cache key (e.g. ``"efficientnet_lite0"``).
        image_size: square input side in pixels.
        cache_dir: folder under which the cache lives.
        batch_size: images per forward pass.
        chunk_size: images per resumable chunk written to disk.
        letterbox: keep aspect ratio (pad) instead of stretching.
        progress: show a tqdm progress bar (the runner's terminal hears of the images done
            either way: :mod:`fashion_utils.progress`).

    Returns:
        ``(ids, features)``: a string array and a float32 ``(N, D)`` array (memory-mapped).
    """
    import tensorflow as tf

    ids = [str(i) for i in ids]
    image_paths = [str(p) for p in image_paths]
    image_size = positive_int("image_size", image_size, minimum=8)
    if len(ids) != len(image_paths):
        raise ValueError(f"ids and image_paths differ in length: {len(ids)} != {len(image_paths)}")
    if not ids:
        raise ValueError("Nothing to extract. Received: 0 ids")
    if len(set(ids)) != len(ids):
        dupes = pd.Series(ids)[pd.Series(ids).duplicated()].unique()[:5].tolist()
        raise ValueError(f"ids must be unique. Received duplicates such as {dupes}")
    if chunk_size < batch_size:
        raise ValueError(f"chunk_size must be >= batch_size. Received: chunk_size={chunk_size!r}, "
                         f"batch_size={batch_size!r}")

    folder = Path(cache_dir) / cache_key(model_key, image_size, ids, letterbox=letterbox)
    if (folder / FEATURES_FILE).exists():
        cache = open_feature_cache(folder)
        return cache.ids, cache.features
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries_in(folder)  # what a killed run was writing
    write_text_atomic(folder / IDS_FILE, "\n".join(ids) + "\n")
    _reusable_chunks(folder, n=len(ids), chunk_size=chunk_size)

    n_chunks = (len(ids) + chunk_size - 1) // chunk_size
    todo = [c for c in range(n_chunks) if not _chunk_file(folder, c).exists()]
    model = infer = None
    start = time.perf_counter()
    bar = Progress(total=len(ids), desc=f"extracting {model_key} @ {image_size}px", unit="img",
                   bar=progress)
    bar.update(len(ids) - sum(min(chunk_size, len(ids) - c * chunk_size) for c in todo))
    for c in todo:
        if model is None:
            model = model_factory()
            infer = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        lo, hi = c * chunk_size, min((c + 1) * chunk_size, len(ids))
        outputs = []
        try:
            for batch in image_dataset(image_paths[lo:hi], image_size=image_size,
                                       batch_size=batch_size, letterbox=letterbox):
                outputs.append(np.asarray(infer(batch), dtype=np.float32))
                bar.update(len(outputs[-1]))
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as err:
            bad = _undecodable(image_paths[lo:hi], image_size=image_size, letterbox=letterbox)
            raise ValueError(f"Cannot decode {len(bad) or 'an'} image file(s) of ids "
                             f"{lo}-{hi - 1}, e.g. {bad[:3] or image_paths[lo:hi][:3]}: "
                             f"{err.message.splitlines()[0]}. Fix or remove them from the catalog "
                             f"(the chunks done so far are kept).") from err
        rows = np.concatenate(outputs).reshape(hi - lo, -1)
        turned = [i for i, p in enumerate(image_paths[lo:hi]) if is_turned_jpeg(p)]
        for i in turned:  # a phone photo: TensorFlow ignores EXIF, PIL turns it upright
            upright = _pil_decoded(image_paths[lo + i], image_size=image_size, letterbox=letterbox)
            rows[i] = np.asarray(infer(upright[None]), dtype=np.float32).reshape(-1)
        save_npy_atomic(_chunk_file(folder, c), rows)
    bar.close()

    # Assemble into one memory-mapped file without holding every chunk at once.
    first = _checked_chunk(folder, 0, rows=min(chunk_size, len(ids)), dim=None)
    with atomic_path(folder / FEATURES_FILE, suffix=".npy") as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                        shape=(len(ids), first.shape[1]))
        for c in range(n_chunks):
            lo = c * chunk_size
            part = _checked_chunk(folder, c, rows=min(chunk_size, len(ids) - lo),
                                  dim=first.shape[1])
            out[lo:lo + len(part)] = part
        out.flush()
        del out
    write_json_atomic(folder / META_FILE, {
        "model_key": model_key, "image_size": image_size, "n": len(ids), "dim": int(first.shape[1]),
        "letterbox": letterbox, "seconds": round(time.perf_counter() - start, 2)}, indent=1)
    for c in range(n_chunks):
        _chunk_file(folder, c).unlink(missing_ok=True)
    (folder / LAYOUT_FILE).unlink(missing_ok=True)
    cache = open_feature_cache(folder)
    return cache.ids, cache.features


def extract_features(catalog: pd.DataFrame, backbone_name: str, *, image_size: int,
                     cache_dir: str | os.PathLike, batch_size: int = 256,
                     chunk_size: int = DEFAULT_CHUNK_SIZE, letterbox: bool = False,
                     weights: str | None = "imagenet",
                     progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Pooled backbone features for every row of a catalog, cached on disk.

    Args:
        catalog: a table with ``id`` and ``image_path`` columns (see ``data.load_catalog``).
        backbone_name: a name from ``backbones.BACKBONE_NAMES``.
        image_size: square input side in pixels.
        cache_dir: folder for the cache (notebooks pass ``paths.features``).
        batch_size: images per forward pass.
        chunk_size: images per resumable chunk.
        letterbox: keep aspect ratio (pad) instead of stretching.
        weights: ``"imagenet"`` or ``None`` (random weights, for tests).
        progress: show a progress bar.

    Returns:
        ``(ids, features)`` in the catalog's row order; features are float32 ``(N, D)``.
    """
    columns_present(catalog, ["id", "image_path"], "catalog")
    return extract_embeddings(
        catalog["id"].astype(str).tolist(), catalog["image_path"].astype(str).tolist(),
        model_factory=lambda: load_backbone(backbone_name, image_size=image_size, weights=weights),
        model_key=_backbone_key(backbone_name, weights), image_size=image_size,
        cache_dir=cache_dir, batch_size=batch_size, chunk_size=chunk_size, letterbox=letterbox,
        progress=progress)


def _backbone_key(backbone_name: str, weights: str | None) -> str:
    return backbone_name if weights == "imagenet" else f"{backbone_name}-{weights}"


def finished_feature_cache(catalog: pd.DataFrame, backbone_name: str, *, image_size: int,
                           cache_dir: str | os.PathLike, letterbox: bool = False,
                           weights: str | None = "imagenet") -> FeatureCache:
    """The finished cache :func:`extract_features` wrote for this catalog (same arguments),
    read without extracting anything: ``ids`` and ``features`` in the catalog's row order.

    Raises:
        FileNotFoundError: no finished cache for this catalog, backbone and size.
    """
    columns_present(catalog, ["id"], "catalog")
    key = cache_key(_backbone_key(backbone_name, weights), image_size,
                    catalog["id"].astype(str).tolist(), letterbox=letterbox)
    return open_feature_cache(Path(cache_dir) / key)


def extraction_seconds(catalog: pd.DataFrame, backbone_name: str, *, image_size: int,
                       cache_dir: str | os.PathLike, letterbox: bool = False,
                       weights: str | None = "imagenet") -> float:
    """The seconds :func:`extract_features` spent computing this catalog's finished cache (its
    ``meta.json``; an interrupted extraction counts its last run): the cost of a model that
    reuses the features, set against one trained on images.

    Raises:
        FileNotFoundError: no finished cache for this catalog, backbone and size.
        ValueError: the cache recorded no time.
    """
    cache = finished_feature_cache(catalog, backbone_name, image_size=image_size,
                                   cache_dir=cache_dir, letterbox=letterbox, weights=weights)
    if "seconds" not in cache.meta:
        raise ValueError(f"The feature cache {cache.folder} recorded no extraction time "
                         f"(meta: {cache.meta!r})")
    return float(cache.meta["seconds"])


def align_features(ids: Sequence[str], feature_ids: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Rows of ``features`` for the given ids, in that order.

    Raises:
        ValueError: naming ids that have no features.
    """
    index = pd.Index(np.asarray(feature_ids).astype(str))
    wanted = pd.Index([str(i) for i in ids])
    pos = index.get_indexer(wanted)
    if (pos < 0).any():
        missing = wanted[pos < 0][:5].tolist()
        raise ValueError(f"{int((pos < 0).sum())} id(s) have no cached features, e.g. {missing}")
    return np.asarray(features[pos])


def clear_cache(cache_dir: str | os.PathLike) -> None:
    """Delete every feature cache below ``cache_dir``."""
    shutil.rmtree(cache_dir, ignore_errors=True)


def invalidate_caches_with_ids(cache_dir: str | os.PathLike, ids: Sequence[str]) -> list[Path]:
    """Delete every cache below ``cache_dir`` whose id list holds one of ``ids``.

    Used when the images behind some ids were rewritten (e.g. augmented copies made again with
    other settings): the cache key covers ids, not pixels, so such caches would be stale.

    Returns:
        The cache folders deleted.
    """
    wanted = {str(i) for i in ids}
    removed = []
    for ids_file in sorted(Path(cache_dir).glob(f"*/{IDS_FILE}")) if Path(cache_dir).exists() else []:
        with open(ids_file) as fh:
            if any(line.rstrip("\n") in wanted for line in fh):
                shutil.rmtree(ids_file.parent, ignore_errors=True)
                removed.append(ids_file.parent)
    return removed
