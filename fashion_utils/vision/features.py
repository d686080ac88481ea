"""Streamed feature extraction, and the store that runs each image through a model once.

Images are streamed from disk with ``tf.data`` (read → decode any JPEG/PNG to RGB → resize →
batch → prefetch) through a backbone in a compiled ``tf.function`` (no XLA: ``jit_compile``
was measured 5–10x slower on this CPU). A JPEG whose EXIF orientation says it was taken
turned (a phone photo) is decoded again by PIL, the right way up.

The store keeps one vector per image file and model and side (``<model>_<side>px/``): an
image is named by its real path, size, inode and modification time, so any id list, target or
notebook reads what was computed before, and a changed file is computed again. Work goes chunk
by chunk; each finished chunk is one shard file written whole (temporary name, then rename),
so a killed run loses at most the chunk in flight and resumes there. A shard that cannot be
read is deleted with a warning and its images computed again. A file that cannot be decoded
stops the extraction with its path named.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from fashion_utils.checks import columns_present, positive_int
from fashion_utils.catalog.image_files import (SUPPORTED_FORMATS, exif_orientation, is_turned_jpeg,
                                               read_image_rgb)
from fashion_utils.atomic import atomic_path, remove_stale_temporaries_in, write_json_atomic
from fashion_utils.vision.backbones import load_backbone
from fashion_utils.progress import Progress

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


#: The layout of a feature store folder (bump to ignore older ones).
STORE_FORMAT = 2
STORE_FILE = "store.json"
SHARD_GLOB = "shard-*.npz"


def store_folder(cache_dir: str | os.PathLike, *, model_key: str, image_size: int,
                 letterbox: bool = False) -> Path:
    """The folder that holds every image's vector for one model and input side."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in model_key)
    return Path(cache_dir) / f"{safe}_{image_size}px{'_letterbox' if letterbox else ''}"


def image_key(path: str | os.PathLike) -> str:
    """What names one image file's pixels in a store: its real path, size, inode and
    modification time (a rewritten or replaced file gets a new key, so never a stale vector)."""
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError:
        return f"{real}|missing"
    return f"{real}|{st.st_size}|{st.st_ino}|{st.st_mtime_ns}"


@dataclass(frozen=True)
class FeatureCache:
    """Cached vectors: ``features[i]`` belongs to ``ids[i]``.

    Attributes:
        folder: the store folder (:func:`store_folder`).
        ids: string array, in the order asked for (a whole store read by
            :func:`open_feature_store`: the image keys).
        features: float32 ``(N, D)``.
        seconds: what computing these rows cost (each shard's time shared over its rows).
        meta: the store's ``model_key``, ``image_size`` and ``letterbox``.
    """

    folder: Path
    ids: np.ndarray
    features: np.ndarray
    seconds: float
    meta: dict


@dataclass
class _Shard:
    path: Path
    keys: np.ndarray
    seconds: float


def _read_shards(folder: Path) -> tuple[dict[str, tuple[int, int]], list[_Shard]]:
    """Every shard of a store: ``key -> (shard number, row)`` and the shards. A shard that
    cannot be read is deleted (with a warning), so that a rerun recomputes its images."""
    import warnings
    import zipfile

    where: dict[str, tuple[int, int]] = {}
    shards: list[_Shard] = []
    for path in sorted(folder.glob(SHARD_GLOB)):
        try:
            with np.load(path, allow_pickle=False) as z:
                keys, seconds = z["keys"].astype(str), float(z["seconds"])
                rows = z["features"].shape[0] if z["features"].ndim == 2 else -1
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
            keys, rows, seconds = np.empty(0, str), -1, 0.0
            reason = str(err)
        else:
            reason = f"{rows} feature rows for {len(keys)} keys"
        if rows != len(keys):
            path.unlink(missing_ok=True)
            warnings.warn(f"The feature shard {path} could not be used ({reason}); it was "
                          f"deleted and its images will be computed again", stacklevel=3)
            continue
        for row, key in enumerate(keys):
            where.setdefault(key, (len(shards), row))
        shards.append(_Shard(path=path, keys=keys, seconds=seconds))
    return where, shards


def _gather(folder: Path, keys: Sequence[str], where: dict[str, tuple[int, int]],
            shards: list[_Shard]) -> tuple[np.ndarray, float]:
    """The stored vectors of ``keys`` (all present), in order, and what computing them cost."""
    spots = [where[k] for k in keys]
    by_shard: dict[int, list[int]] = {}
    for i, (shard, _) in enumerate(spots):
        by_shard.setdefault(shard, []).append(i)
    out: np.ndarray | None = None
    for shard, positions in by_shard.items():
        with np.load(shards[shard].path, allow_pickle=False) as z:
            block = z["features"]
        if out is None:
            out = np.empty((len(keys), block.shape[1]), dtype=np.float32)
        elif block.shape[1] != out.shape[1]:
            raise ValueError(f"The feature shard {shards[shard].path} holds {block.shape[1]} "
                             f"values a row, the store {folder} {out.shape[1]}: delete the store "
                             f"folder and run again")
        out[positions] = block[[spots[i][1] for i in positions]]
    out = out if out is not None else np.empty((0, 0), np.float32)
    return out, _seconds_of(keys, where, shards)


def _seconds_of(keys: Sequence[str], where: dict[str, tuple[int, int]],
                shards: list[_Shard]) -> float:
    """What computing the stored vectors of ``keys`` cost: each shard's time shared over its
    rows (no vector is read)."""
    return float(sum(shards[where[k][0]].seconds / max(len(shards[where[k][0]].keys), 1)
                     for k in keys))


def _store_meta(folder: Path, *, model_key: str, image_size: int, letterbox: bool) -> dict:
    meta = {"format": STORE_FORMAT, "model_key": model_key, "image_size": image_size,
            "letterbox": letterbox}
    if not (folder / STORE_FILE).is_file():
        write_json_atomic(folder / STORE_FILE, meta, indent=1)
    return meta


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


def _write_shard(folder: Path, keys: Sequence[str], rows: np.ndarray, seconds: float) -> Path:
    """One finished chunk, written whole or not at all (a unique name: writers never clash)."""
    path = folder / f"shard-{time.time_ns():020d}-{os.getpid()}.npz"
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, keys=np.asarray(keys, dtype=str), features=rows.astype(np.float32),
                 seconds=np.float64(seconds))
    return path


def extract_embeddings(ids: Sequence[str], image_paths: Sequence[str], *,
                       model_factory: Callable[[], "object"], model_key: str, image_size: int,
                       cache_dir: str | os.PathLike, batch_size: int = 256,
                       chunk_size: int = DEFAULT_CHUNK_SIZE, letterbox: bool = False,
                       progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Run images through a model, each image once, caching its vector on disk.

    The store (:func:`store_folder`) keeps one vector per image file (:func:`image_key`) for
    this model and side, so any id list, target or notebook reads what was computed before;
    only files it has never seen (or that changed) go through the model, chunk by chunk, each
    finished chunk written whole as a shard: a killed run resumes where it stopped.

    Args:
        ids: unique item ids, in order.
        image_paths: one image file per id.
        model_factory: returns the Keras model (called only when something must be computed).
        model_key: names the model in the store (e.g. ``"efficientnet_lite0"``).
        image_size: square input side in pixels.
        cache_dir: folder under which the stores live.
        batch_size: images per forward pass.
        chunk_size: images per shard written to disk.
        letterbox: keep aspect ratio (pad) instead of stretching.
        progress: show a tqdm progress bar (the runner's terminal hears of the images done
            either way: :mod:`fashion_utils.progress`).

    Returns:
        ``(ids, features)``: a string array and a float32 ``(N, D)`` array.
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

    folder = store_folder(cache_dir, model_key=model_key, image_size=image_size,
                          letterbox=letterbox)
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries_in(folder)  # what a killed run was writing
    _store_meta(folder, model_key=model_key, image_size=image_size, letterbox=letterbox)
    keys = [image_key(p) for p in image_paths]
    where, shards = _read_shards(folder)
    first: dict[str, int] = {}
    for i, key in enumerate(keys):
        if key not in where:
            first.setdefault(key, i)  # a file under two ids goes through the model once
    todo = list(first.values())
    model = infer = None
    bar = Progress(total=len(ids), desc=f"extracting {model_key} @ {image_size}px", unit="img",
                   bar=progress)
    bar.update(len(ids) - len(todo))
    for lo in range(0, len(todo), chunk_size):
        if model is None:
            model = model_factory()
            infer = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        chunk = todo[lo:lo + chunk_size]
        files = [image_paths[i] for i in chunk]
        start, outputs = time.perf_counter(), []
        try:
            for batch in image_dataset(files, image_size=image_size, batch_size=batch_size,
                                       letterbox=letterbox):
                outputs.append(np.asarray(infer(batch), dtype=np.float32))
                bar.update(len(outputs[-1]))
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as err:
            bad = _undecodable(files, image_size=image_size, letterbox=letterbox)
            raise ValueError(f"Cannot decode {len(bad) or 'an'} image file(s) of "
                             f"{len(files)} not yet in the store, e.g. {bad[:3] or files[:3]}: "
                             f"{err.message.splitlines()[0]}. Fix or remove them from the catalog "
                             f"(the vectors done so far are kept).") from err
        rows = np.concatenate(outputs).reshape(len(files), -1)
        for j, path in enumerate(files):  # a phone photo: TensorFlow ignores EXIF, PIL turns it
            if is_turned_jpeg(path):
                upright = _pil_decoded(path, image_size=image_size, letterbox=letterbox)
                rows[j] = np.asarray(infer(upright[None]), dtype=np.float32).reshape(-1)
        _write_shard(folder, [keys[i] for i in chunk], rows, time.perf_counter() - start)
    bar.close()
    if todo:
        where, shards = _read_shards(folder)
    feats, _ = _gather(folder, keys, where, shards)
    return np.asarray(ids), feats


def cached_embeddings(ids: Sequence[str], image_paths: Sequence[str], *, model_key: str,
                      image_size: int, cache_dir: str | os.PathLike, letterbox: bool = False,
                      partial: bool = False) -> FeatureCache:
    """The stored vectors of these images, read without running any model.

    Args:
        partial: return the images that have a stored vector (``ids`` tells which), instead of
            raising when some have none.

    Raises:
        FileNotFoundError: some image has no stored vector for this model and side (says how
            many); with ``partial``, none has.
    """
    ids = [str(i) for i in ids]
    folder, keys, where, shards = _stored(image_paths, model_key=model_key,
                                          image_size=image_size, cache_dir=cache_dir,
                                          letterbox=letterbox, partial=partial)
    found = [i for i, k in enumerate(keys) if k in where]
    feats, seconds = _gather(folder, [keys[i] for i in found], where, shards)
    return FeatureCache(folder=folder, ids=np.asarray([ids[i] for i in found]), features=feats,
                        seconds=seconds, meta={"model_key": model_key, "image_size": image_size,
                                               "letterbox": letterbox})


def _stored(image_paths: Sequence[str], *, model_key: str, image_size: int,
            cache_dir: str | os.PathLike, letterbox: bool, partial: bool = False):
    """The store's folder, these images' keys and the store's index, checked to hold them."""
    folder = store_folder(cache_dir, model_key=model_key, image_size=image_size,
                          letterbox=letterbox)
    where, shards = _read_shards(folder) if folder.is_dir() else ({}, [])
    keys = [image_key(p) for p in image_paths]
    found = sum(k in where for k in keys)
    missing = len(keys) - found
    if (missing and not partial) or not found:
        raise FileNotFoundError(f"No finished feature cache for {missing or 'the'} of "
                                f"{len(keys)} image(s) in {folder}: extract them first")
    return folder, keys, where, shards


def open_feature_store(folder: str | os.PathLike) -> FeatureCache:
    """Everything one store holds (ids: the image keys), e.g. for a benchmark's index.

    Raises:
        FileNotFoundError: the folder holds no store or no vector.
    """
    folder = Path(folder)
    if not (folder / STORE_FILE).is_file():
        raise FileNotFoundError(f"No finished feature cache in {folder} (no {STORE_FILE})")
    meta = json.loads((folder / STORE_FILE).read_text())
    where, shards = _read_shards(folder)
    if not where:
        raise FileNotFoundError(f"No finished feature cache in {folder} (no vector stored)")
    keys = list(where)
    feats, seconds = _gather(folder, keys, where, shards)
    return FeatureCache(folder=folder, ids=np.asarray(keys), features=feats, seconds=seconds,
                        meta=meta)


def find_feature_stores(cache_dir: str | os.PathLike, *, model_key: str | None = None,
                        image_size: int | None = None) -> list[Path]:
    """The store folders below ``cache_dir`` (optionally of one model and side)."""
    metas = {f.parent: json.loads(f.read_text())
             for f in sorted(Path(cache_dir).glob(f"*/{STORE_FILE}"))}
    return [folder for folder, meta in metas.items()
            if model_key in (None, meta.get("model_key"))
            and image_size in (None, meta.get("image_size"))]


def store_summary(cache_dir: str | os.PathLike) -> pd.DataFrame:
    """One row per store: the forward passes made into it (rows written), the distinct images
    they cover, and the seconds they took."""
    rows = []
    for folder in find_feature_stores(cache_dir):
        meta = json.loads((folder / STORE_FILE).read_text())
        where, shards = _read_shards(folder)
        rows.append({"store": folder.name, "model_key": meta.get("model_key"),
                     "image_size": meta.get("image_size"),
                     "forward_passes": int(sum(len(s.keys) for s in shards)),
                     "distinct_images": len(where),
                     "seconds": round(sum(s.seconds for s in shards), 1)})
    return pd.DataFrame(rows, columns=["store", "model_key", "image_size", "forward_passes",
                                       "distinct_images", "seconds"])


def extract_features(catalog: pd.DataFrame, backbone_name: str, *, image_size: int,
                     cache_dir: str | os.PathLike, batch_size: int = 256,
                     chunk_size: int = DEFAULT_CHUNK_SIZE, letterbox: bool = False,
                     weights: str | None = "imagenet",
                     progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Pooled backbone features for every row of a catalog, stored on disk
    (:func:`extract_embeddings`, whose options it passes on).

    Args:
        catalog: a table with ``id`` and ``image_path`` columns (see ``data.load_catalog``).
        backbone_name: a name from ``backbones.BACKBONE_NAMES``.
        weights: ``"imagenet"`` or ``None`` (random weights, for tests).

    Returns:
        ``(ids, features)`` in the catalog's row order; features are float32 ``(N, D)``.
    """
    columns_present(catalog, ["id", "image_path"], "catalog")
    return extract_embeddings(
        catalog["id"].astype(str).tolist(), catalog["image_path"].astype(str).tolist(),
        model_factory=lambda: load_backbone(backbone_name, image_size=image_size, weights=weights),
        model_key=backbone_model_key(backbone_name, weights), image_size=image_size,
        cache_dir=cache_dir, batch_size=batch_size, chunk_size=chunk_size, letterbox=letterbox,
        progress=progress)


def backbone_model_key(backbone_name: str, weights: str | None = "imagenet") -> str:
    """The store's name for a backbone's pooled features (its weights named unless ImageNet)."""
    return backbone_name if weights == "imagenet" else f"{backbone_name}-{weights}"


def finished_feature_cache(catalog: pd.DataFrame, backbone_name: str, *, image_size: int,
                           cache_dir: str | os.PathLike, letterbox: bool = False,
                           weights: str | None = "imagenet") -> FeatureCache:
    """The vectors :func:`extract_features` stored for this catalog's images (same arguments),
    read without extracting anything: ``ids`` and ``features`` in the catalog's row order.

    Raises:
        FileNotFoundError: an image of the catalog has no stored vector at this side.
    """
    columns_present(catalog, ["id", "image_path"], "catalog")
    return cached_embeddings(catalog["id"].astype(str).tolist(),
                             catalog["image_path"].astype(str).tolist(),
                             model_key=backbone_model_key(backbone_name, weights),
                             image_size=image_size, cache_dir=cache_dir, letterbox=letterbox)


def extraction_seconds(catalog: pd.DataFrame, backbone_name: str, *, image_size: int,
                       cache_dir: str | os.PathLike, letterbox: bool = False,
                       weights: str | None = "imagenet") -> float:
    """The seconds :func:`extract_features` spent computing this catalog's vectors (each
    shard's time shared over its images): the cost of a model that reuses the features, set
    against one trained on images.

    Raises:
        FileNotFoundError: an image of the catalog has no stored vector at this side.
    """
    columns_present(catalog, ["image_path"], "catalog")
    _, keys, where, shards = _stored(catalog["image_path"].astype(str).tolist(),
                                     model_key=backbone_model_key(backbone_name, weights),
                                     image_size=image_size, cache_dir=cache_dir,
                                     letterbox=letterbox)
    return _seconds_of(keys, where, shards)


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
