"""Embeddings for the recommender: pretrained, a trained model's, and colour-histogram vectors.

Every embedding is L2-normalised, so cosine similarity is a dot product. A trained model's
embeddings (:func:`model_embeddings`) cut a saved end-to-end model (notebook 04's kept model,
whichever recipe made it) at its last hidden Dense layer;
:func:`histogram_embeddings` is the colour baseline.
"""

from __future__ import annotations
import functools
import hashlib
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence
import numpy as np
import pandas as pd
from fashion_utils.vision import features, models
from fashion_utils.atomic import save_npy_atomic
from fashion_utils.checks import columns_present
from fashion_utils.recommend.similarity import SimilarityIndex, l2_normalize
from fashion_utils.catalog.image_files import read_image_rgb
from fashion_utils.progress import track


# --------------------------------------------------------------------------- embeddings


def _dense_layers(model: Any, prefix: tuple = ()) -> list[tuple[tuple, Any]]:
    """Every Dense layer in order, descending into nested models: ``(path of sub-models, layer)``."""
    import keras

    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            found.append((prefix, layer))
        elif hasattr(layer, "layers"):
            found.extend(_dense_layers(layer, prefix + (layer,)))
    return found


def _cut(model: Any, path: tuple, output_of: Any) -> Any:
    """``model`` from its inputs to ``output_of`` (a layer's output tensor), possibly nested."""
    import keras

    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs  # a tensor, not [tensor]
    if not path:
        return keras.Model(inputs, output_of, name=f"{model.name}_embedding")
    sub = path[0]
    inner = _cut(sub, path[1:], output_of)
    outer_inputs = sub._inbound_nodes[0].input_tensors  # what feeds the sub-model in ``model``
    outer = outer_inputs[0] if len(outer_inputs) == 1 else outer_inputs
    return keras.Model(inputs, inner(outer), name=f"{model.name}_embedding")


def embedding_model(model: Any, *, layer_name: str | None = None) -> Any:
    """A Keras model that outputs the penultimate Dense layer of ``model`` (or ``layer_name``).

    A trained classifier's last Dense layer gives class scores; the Dense layer before it
    is a compact embedding trained to separate the classes. Dense layers inside a nested head
    (``backbone → head → …``) count too. With only one Dense layer, its input (the pooled
    features after any dropout) is used.

    Args:
        model: a functional or sequential ``keras.Model``.
        layer_name: take this layer's output instead (a top-level or nested layer name).

    Returns:
        A ``keras.Model`` with the same inputs.
    """
    dense = _dense_layers(model)
    if layer_name is not None:
        def find(mdl: Any, prefix: tuple) -> tuple[tuple, Any] | None:
            for layer in mdl.layers:
                if layer.name == layer_name:
                    return prefix, layer
                if hasattr(layer, "layers"):
                    hit = find(layer, prefix + (layer,))
                    if hit:
                        return hit
            return None

        hit = find(model, ())
        if hit is None:
            raise ValueError(f"model {model.name!r} has no layer {layer_name!r}. Received: "
                             f"layer_name={layer_name!r}; layers: {[layer.name for layer in model.layers]}")
        return _cut(model, hit[0], hit[1].output)
    if not dense:
        raise ValueError(f"model {model.name!r} has no Dense layer; pass layer_name=. "
                         f"Layers: {[layer.name for layer in model.layers]}")
    if len(dense) >= 2:
        path, layer = dense[-2]
        return _cut(model, path, layer.output)
    path, layer = dense[-1]
    return _cut(model, path, layer.input)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def pretrained_embeddings(catalog: pd.DataFrame, *, backbone: str, image_size: int,
                          cache_dir: str | os.PathLike, batch_size: int = 256,
                          progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """:func:`features.extract_features` of every catalog row (same arguments, same cache),
    L2-normalised: ``(ids, vectors)`` in catalog order, float32 unit rows."""

    ids, feats = features.extract_features(catalog, backbone, image_size=image_size, cache_dir=cache_dir,
                                  batch_size=batch_size, progress=progress)
    return ids, l2_normalize(feats)


def find_kept_model(models_dir: str | os.PathLike, *, target: str) -> Path | None:
    """The model notebook 04 kept (``kept_<target>.keras``), or ``None`` when there is none.

    Looks for ``kept_<target>.keras`` first, then any other ``kept_*.keras``
    (``articleType`` first: its embedding separates the finest classes).
    """
    folder = Path(models_dir)
    preferred = folder / f"kept_{target}.keras"
    if preferred.is_file():
        return preferred
    others = sorted(folder.glob("kept_*.keras"),
                    key=lambda p: (p.stem != "kept_articleType", p.name))
    return others[0] if others else None


def load_embedding_model(model_path: str | os.PathLike, *, layer_name: str | None = None) -> Any:
    """Load a saved ``.keras`` classifier and cut it at its embedding layer."""
    return embedding_model(_load_model(model_path), layer_name=layer_name)


def _load_model(model_path: str | os.PathLike) -> Any:
    """A saved ``.keras`` model, uncut, with the package's custom layers registered."""
    import keras

    for module in ("fashion_utils.vision.backbones", "fashion_utils.vision.models", "fashion_utils.training.multioutput"):
        try:  # registers the package's custom layers (e.g. ClassNames) before deserialising
            __import__(module)
        except ImportError:  # pragma: no cover - modules written by other notebooks' issues
            pass
    path = Path(model_path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {path}")
    return keras.models.load_model(path, compile=False)


#: Images the shortcut of :func:`_from_cached_features` is checked on against the whole model.
CHECK_IMAGES = 8


def _from_cached_features(catalog: pd.DataFrame, model: Any, embed: Any, *,
                          cache_dir: str | os.PathLike, image_size: int,
                          layer_name: str | None, batch_size: int,
                          name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """A frozen-backbone model's embeddings without running its backbone again: the head's
    embedding layer on the backbone's finished feature cache at the model's side, checked
    against ``embed`` (the whole model, cut) on :data:`CHECK_IMAGES` files. ``None`` (the
    caller runs ``embed`` on every image) for any other model, another side, no finished
    cache, or a failed check."""
    backbone_name = models.frozen_backbone_name(model)
    if backbone_name is None or image_size != models.model_image_size(model):
        return None
    try:
        cache = features.finished_feature_cache(catalog, backbone_name, image_size=image_size,
                                                cache_dir=cache_dir)
        head = [layer for layer in model.layers if hasattr(layer, "layers")][-1]
        head_embedding = embedding_model(head, layer_name=layer_name)
    except FileNotFoundError:
        return None
    except ValueError:  # the layer asked for is not in the head
        return None
    vectors = l2_normalize(head_embedding.predict(np.asarray(cache.features),
                                                  batch_size=batch_size, verbose=0))
    some = catalog["image_path"].astype(str).tolist()[:CHECK_IMAGES]
    whole = l2_normalize(features.predict_image_files(embed, some, image_size=image_size))
    if not np.allclose(whole, vectors[:len(some)], atol=1e-4):
        warnings.warn(f"{name}: its head on the cached {backbone_name} features does not "
                      f"reproduce the model on {len(some)} images; embedding every image instead")
        return None
    return cache.ids, vectors


def model_embeddings(catalog: pd.DataFrame, model_path: str | os.PathLike, *,
                     cache_dir: str | os.PathLike, image_size: int | None = None,
                     layer_name: str | None = None, batch_size: int = 256,
                     progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised penultimate-layer embeddings of a saved end-to-end model (fine-tuned,
    scratch CNN or frozen backbone + head), cached on disk.

    The cache key holds a digest of the model file, so a retrained model is never served
    stale vectors. A model whose backbone was never trained (``<backbone>_frozen``, notebook
    04's frozen candidate) reuses the backbone's finished feature cache instead: only its head
    runs, checked against the whole model on a few images.

    Args:
        catalog: a table with ``id`` and ``image_path``.
        model_path: the ``.keras`` file (e.g. ``models/.../kept_articleType.keras``).
        cache_dir: the feature cache folder.
        image_size: input side; default: the model's own input size.
        layer_name: embedding layer (default: the penultimate Dense layer).
        batch_size, progress: images per forward pass; show a progress bar.

    Returns:
        ``(ids, vectors)`` in catalog order, float32 unit rows.
    """

    columns_present(catalog, ["id", "image_path"], "catalog")
    path = Path(model_path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {path}")
    model = _load_model(path)  # loaded once: for the shortcut, its check, or every image
    embed = embedding_model(model, layer_name=layer_name)
    if image_size is None:
        image_size = models.model_image_size(embed)
    reused = _from_cached_features(catalog, model, embed, cache_dir=cache_dir,
                                   image_size=image_size, layer_name=layer_name,
                                   batch_size=batch_size, name=path.name)
    if reused is not None:
        return reused
    key = f"{path.stem}-{_file_digest(path)}-{layer_name or 'penultimate'}"
    ids, feats = features.extract_embeddings(
        catalog["id"].astype(str).tolist(), catalog["image_path"].astype(str).tolist(),
        model_factory=lambda: embed, model_key=key, image_size=image_size, cache_dir=cache_dir,
        batch_size=batch_size, progress=progress)
    return ids, l2_normalize(feats)


def histogram_vector(image: np.ndarray, *, bins: int = 4, intensity_bins: int = 32) -> np.ndarray:
    """A colour + intensity histogram of one RGB uint8 image, as a unit vector.

    A joint RGB histogram (``bins`` per channel, ``bins**3`` cells) and a grey-level histogram
    (``intensity_bins`` cells), each normalised to sum 1, square-rooted (so the cosine of two
    vectors is the Bhattacharyya coefficient), concatenated and L2-normalised.
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image must be an RGB uint8 array (H, W, 3). Received: shape={img.shape}, "
                         f"dtype={img.dtype}")
    for name, value in (("bins", bins), ("intensity_bins", intensity_bins)):
        if not isinstance(value, (int, np.integer)) or not 1 <= value <= 256:
            raise ValueError(f"{name} must be an integer in [1, 256]. Received: {name}={value!r}")
    pixels = img.reshape(-1, 3).astype(np.int64)
    q = pixels * bins // 256
    joint = np.bincount((q[:, 0] * bins + q[:, 1]) * bins + q[:, 2], minlength=bins ** 3)
    grey = (pixels @ np.array([299, 587, 114])) // 1000
    inten = np.bincount(grey * intensity_bins // 256, minlength=intensity_bins)
    parts = [np.sqrt(h / max(h.sum(), 1)) for h in (joint, inten)]
    return l2_normalize(np.concatenate(parts))


def histogram_embeddings(catalog: pd.DataFrame, *, cache_dir: str | os.PathLike,
                         image_size: int = 64, bins: int = 4, intensity_bins: int = 32,
                         progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The colour/intensity-histogram baseline embedding of every catalog image, cached.

    Args:
        catalog: a table with ``id`` and ``image_path``.
        cache_dir: folder for the cache file (keyed by the ordered ids and the settings).
        image_size: images are resized to this square side first (cheap, keeps proportions
            of colours).
        bins: bins per RGB channel of the joint colour histogram.
        intensity_bins: bins of the grey-level histogram.
        progress: show a progress bar.

    Returns:
        ``(ids, vectors)`` in catalog order; float32 unit rows of length
        ``bins**3 + intensity_bins``.
    """
    columns_present(catalog, ["id", "image_path"], "catalog")
    ids = catalog["id"].astype(str).tolist()
    digest = hashlib.sha256(
        f"hist|{image_size}|{bins}|{intensity_bins}|".encode() + "\n".join(ids).encode()).hexdigest()[:16]
    folder = Path(cache_dir)
    final = folder / f"histogram_{bins}x{intensity_bins}_{image_size}px_{len(ids)}_{digest}.npy"
    if final.exists():
        return np.asarray(ids), np.load(final)
    out = np.empty((len(ids), bins ** 3 + intensity_bins), dtype=np.float32)
    paths = catalog["image_path"].astype(str).tolist()
    for i, path in enumerate(track(paths, desc="colour histograms", unit="img", bar=progress)):
        out[i] = histogram_vector(read_image_rgb(path, size=image_size), bins=bins,
                                  intensity_bins=intensity_bins)
    save_npy_atomic(final, out)
    return np.asarray(ids), out


def embed_image_files(paths: Sequence[str | os.PathLike], *, model: Any, image_size: int,
                      batch_size: int = 64) -> np.ndarray:
    """Embed image files not in the catalog with the same model and decoding as the catalog.

    Args:
        paths: image files (JPEG, PNG, ...).
        model: a callable Keras model (e.g. the backbone or :func:`embedding_model`).
        image_size: the square input side used for the catalog.
        batch_size: images per forward pass.

    Returns:
        A float32 ``(len(paths), D)`` array of unit rows.

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: a file that cannot be decoded as an image.
    """
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("embed_image_files needs at least one path. Received: 0 paths")
    vectors = features.predict_image_files(model, paths, image_size=image_size,
                                           batch_size=batch_size)
    return l2_normalize(vectors)


def file_embedder(*, model: Any, image_size: int) -> Callable[[Sequence[str]], np.ndarray]:
    """:func:`embed_image_files` bound to one model and input size: the callable the explorer's
    upload embeds a photo with (``explorer.RecommendationExplorer(embed_files=...)``)."""
    return functools.partial(embed_image_files, model=model, image_size=image_size)


def query_image(index: SimilarityIndex, path: str | os.PathLike, *, model: Any, image_size: int,
                k: int = 5, filters: Mapping[str, Any] | None = None,
                as_frame: bool = True) -> pd.DataFrame | list[tuple[str, float]]:
    """Neighbours in ``index`` of a new photo (not in the catalog), embedded on the fly.

    Args:
        index: the similarity index of the catalog.
        path: an image file.
        model: the model that made the index's vectors (same source, same layer).
        image_size: the input size used for the catalog.
        k, filters, as_frame: as in ``SimilarityIndex.query`` (filters take values, not "same").
    """
    vector = embed_image_files([path], model=model, image_size=image_size)[0]
    if vector.shape != (index.dim,):
        raise ValueError(f"the model gives {vector.shape[0]}-d vectors but the index holds "
                         f"{index.dim}-d ones: use the model that built the index")
    return index.query(vector, k, filters=filters, as_frame=as_frame)
