"""Similar-product recommendation: embeddings, a similarity index and retrieval metrics.

Embeddings are L2-normalised, so cosine similarity is a dot product. :class:`SimilarityIndex`
answers "which products look most like this one?":

* ``backend="exact"`` (default) ranks every item by cosine similarity with chunked matrix
  products: memory stays bounded (never an N×N matrix). For large, wide catalogs it can also
  *prune* (``prune="auto"``): vectors are stored in an orthonormal PCA basis, the first
  ``prune_dims`` coordinates give a partial score, and the Cauchy–Schwarz bound on the rest
  (``|q_tail · x_tail| <= |q_tail| |x_tail|``) rules out most items before their full dot
  product is read. The result is still exact — the bound only skips items that provably
  cannot enter the top k — but a query reads a fraction of the memory.
* ``backend="faiss"`` builds an approximate FAISS index (IVF-Flat or HNSW, inner product) for
  catalogs too large to scan; :meth:`SimilarityIndex.recall_against` measures its recall
  against exact search.

Retrieval metrics (:func:`precision_at_k`, :func:`mean_average_precision_at_k`) take a boolean
relevance matrix, so they can be checked by hand; :func:`evaluate_neighbours` turns neighbour
lists into a table of precision@k and mAP@k per label column, and :func:`random_neighbours`
and :func:`histogram_embeddings` give the two baselines.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from fashion_utils.atomic import write_json_atomic
from fashion_utils.config import SEED

BACKENDS = ("exact", "faiss")
FAISS_KINDS = ("ivf", "hnsw", "flat")
_SCORE_BUDGET_BYTES = 64 * 2**20  # size of one block of scores in the exact search
_BOUND_TOLERANCE = 1e-4  # slack on the pruning bound, far above float32 rounding of a dot product


# --------------------------------------------------------------------------- embeddings


def l2_normalize(vectors: Any) -> np.ndarray:
    """Rows scaled to unit length (float32); all-zero rows stay zero.

    Args:
        vectors: a ``(N, D)`` or ``(D,)`` array of finite numbers.

    Returns:
        A new float32 array of the same shape.

    Raises:
        ValueError: non-finite values, or an array that is not 1-D or 2-D.
    """
    x = np.array(vectors, dtype=np.float32, copy=True)
    if x.ndim not in (1, 2):
        raise ValueError(f"vectors must be 1-D or 2-D. Received: shape={x.shape}")
    bad = ~np.isfinite(x)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])[:5].tolist() if x.ndim == 2 else []
        raise ValueError(f"vectors hold {int(bad.sum())} non-finite value(s) (rows {rows}...)")
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    return x


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

    The fine-tuned classifier's last Dense layer gives class scores; the Dense layer before it
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


def _check_catalog(catalog: pd.DataFrame) -> None:
    missing = {"id", "image_path"} - set(catalog.columns)
    if missing:
        raise ValueError(f"catalog lacks column(s) {sorted(missing)}. Received columns: "
                         f"{list(catalog.columns)}")


def pretrained_embeddings(catalog: pd.DataFrame, *, backbone: str, image_size: int,
                          cache_dir: str | os.PathLike, batch_size: int = 256,
                          progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised pooled backbone features for every catalog row (cached by ``features``).

    Args:
        catalog: a table with ``id`` and ``image_path``.
        backbone: a name from ``backbones.BACKBONE_NAMES``.
        image_size: square input side in pixels.
        cache_dir: the feature cache folder (notebooks pass ``paths.features``).
        batch_size: images per forward pass.
        progress: show a progress bar.

    Returns:
        ``(ids, vectors)`` in catalog order; vectors are float32 with unit rows.
    """
    from fashion_utils.features import extract_features

    ids, feats = extract_features(catalog, backbone, image_size=image_size, cache_dir=cache_dir,
                                  batch_size=batch_size, progress=progress)
    return ids, l2_normalize(feats)


def find_finetuned_model(models_dir: str | os.PathLike, *, target: str) -> Path | None:
    """The fine-tuned model notebook 04 saved, or ``None`` when there is none.

    Looks for ``finetuned_<target>.keras`` first, then any other ``finetuned_*.keras``
    (``articleType`` first: its embedding separates the finest classes).
    """
    folder = Path(models_dir)
    preferred = folder / f"finetuned_{target}.keras"
    if preferred.is_file():
        return preferred
    others = sorted(folder.glob("finetuned_*.keras"),
                    key=lambda p: (p.stem != "finetuned_articleType", p.name))
    return others[0] if others else None


def load_embedding_model(model_path: str | os.PathLike, *, layer_name: str | None = None) -> Any:
    """Load a saved ``.keras`` classifier and cut it at its embedding layer."""
    import keras

    for module in ("fashion_utils.backbones", "fashion_utils.models", "fashion_utils.multioutput"):
        try:  # registers the package's custom layers (e.g. ClassNames) before deserialising
            __import__(module)
        except ImportError:  # pragma: no cover - modules written by other notebooks' issues
            pass
    path = Path(model_path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {path}")
    model = keras.models.load_model(path, compile=False)
    return embedding_model(model, layer_name=layer_name)


def model_image_size(model: Any, default: int | None = None) -> int:
    """The square side a Keras model works at: its fixed input size, else the size of its first
    ``Resizing`` layer (end-to-end models resize any input), else ``default``."""
    import keras

    shape = tuple(model.input_shape)
    if len(shape) == 4 and shape[1] is not None and shape[1] == shape[2]:
        return int(shape[1])
    for layer in model.layers:
        if isinstance(layer, keras.layers.Resizing):
            return int(layer.get_config()["height"])
    if default is None:
        raise ValueError(f"model {model.name!r} has no fixed input size {shape} and no Resizing "
                         f"layer; pass image_size=")
    return int(default)


def finetuned_embeddings(catalog: pd.DataFrame, model_path: str | os.PathLike, *,
                         cache_dir: str | os.PathLike, image_size: int | None = None,
                         layer_name: str | None = None, batch_size: int = 256,
                         progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised penultimate-layer embeddings of a fine-tuned model, cached on disk.

    The cache key holds a digest of the model file, so a retrained model is never served
    stale vectors.

    Args:
        catalog: a table with ``id`` and ``image_path``.
        model_path: the ``.keras`` file (e.g. ``models/.../finetuned_articleType.keras``).
        cache_dir: the feature cache folder.
        image_size: input side; default: the model's own input size.
        layer_name: embedding layer (default: the penultimate Dense layer).
        batch_size: images per forward pass.
        progress: show a progress bar.

    Returns:
        ``(ids, vectors)`` in catalog order; vectors are float32 with unit rows.
    """
    from fashion_utils.features import extract_embeddings

    _check_catalog(catalog)
    path = Path(model_path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {path}")
    holder: dict[str, Any] = {}

    def factory() -> Any:
        holder.setdefault("model", load_embedding_model(path, layer_name=layer_name))
        return holder["model"]

    if image_size is None:
        image_size = model_image_size(factory())
    key = f"{path.stem}-{_file_digest(path)}-{layer_name or 'penultimate'}"
    ids, feats = extract_embeddings(
        catalog["id"].astype(str).tolist(), catalog["image_path"].astype(str).tolist(),
        model_factory=factory, model_key=key, image_size=image_size, cache_dir=cache_dir,
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
    from tqdm.auto import tqdm

    from fashion_utils.data import read_image_rgb

    _check_catalog(catalog)
    ids = catalog["id"].astype(str).tolist()
    digest = hashlib.sha256(
        f"hist|{image_size}|{bins}|{intensity_bins}|".encode() + "\n".join(ids).encode()).hexdigest()[:16]
    folder = Path(cache_dir)
    final = folder / f"histogram_{bins}x{intensity_bins}_{image_size}px_{len(ids)}_{digest}.npy"
    if final.exists():
        return np.asarray(ids), np.load(final)
    out = np.empty((len(ids), bins ** 3 + intensity_bins), dtype=np.float32)
    paths = catalog["image_path"].astype(str).tolist()
    for i, path in enumerate(tqdm(paths, desc="colour histograms", unit="img", disable=not progress)):
        out[i] = histogram_vector(read_image_rgb(path, size=image_size), bins=bins,
                                  intensity_bins=intensity_bins)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}.npy")
    np.save(tmp, out)
    os.replace(tmp, final)
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
    import tensorflow as tf

    from fashion_utils.features import image_dataset

    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("embed_image_files needs at least one path. Received: 0 paths")
    for p in paths:
        if not Path(p).is_file():
            raise FileNotFoundError(f"No image file at {p}")
    outputs = []
    try:
        for batch in image_dataset(paths, image_size=image_size, batch_size=batch_size):
            outputs.append(np.asarray(model(batch, training=False), dtype=np.float32))
    except tf.errors.InvalidArgumentError as err:
        raise ValueError(f"cannot decode image(s) {paths[:3]}: {err.message}") from err
    return l2_normalize(np.concatenate(outputs).reshape(len(paths), -1))


# --------------------------------------------------------------------------- the index


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer. Received: k={k!r}")
    return int(k)


_CONTROLLER: list[Any] = []


def _one_blas_thread() -> Any:
    """A context that runs BLAS on one thread.

    A single query is a matrix-vector product, bound by memory bandwidth: a second thread
    barely helps (25 vs 23 ms for 70,000 x 1280), and waking it costs milliseconds on a busy
    machine (the pruned search took 6 ms p50 on two threads, 2 ms on one).
    """
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


def _topk_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column positions and values of the k largest entries of each row (unsorted)."""
    kk = min(k, scores.shape[1])
    if kk == scores.shape[1]:
        pos = np.broadcast_to(np.arange(kk), scores.shape).copy()
    else:
        pos = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
    return pos, np.take_along_axis(scores, pos, axis=1)


def _sort_results(pos: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row by score (descending, ties by position), mark missing entries -1 / NaN."""
    order = np.lexsort((pos, -scores), axis=1) if scores.size else np.zeros_like(pos)
    pos = np.take_along_axis(pos, order, axis=1)[:, :k]
    scores = np.take_along_axis(scores, order, axis=1)[:, :k].astype(np.float32)
    missing = ~np.isfinite(scores) | (pos < 0)
    pos = np.where(missing, -1, pos)
    scores = np.where(missing, np.nan, scores).astype(np.float32)
    if pos.shape[1] < k:  # fewer items than k
        pad = k - pos.shape[1]
        pos = np.hstack([pos, np.full((len(pos), pad), -1)])
        scores = np.hstack([scores, np.full((len(scores), pad), np.nan, dtype=np.float32)])
    return pos.astype(np.int64), scores


class SimilarityIndex:
    """Nearest products by cosine similarity, with filters and self-exclusion.

    Args:
        ids: unique item ids (converted to strings).
        vectors: ``(N, D)`` embeddings, one row per id (normalised here unless ``normalize=False``).
        metadata: optional table of item attributes used by filters and shown in results;
            either indexed by id or with an ``id`` column; every id must be present.
        backend: ``"exact"`` (chunked matrix products) or ``"faiss"`` (approximate).
        normalize: L2-normalise the vectors (cosine similarity); ``False`` if they already are.
        prune: exact backend only: ``True``, ``False`` or ``"auto"`` (when N >= 20,000 and
            D >= 256) — exact search that skips provably distant items (see module docstring).
        prune_dims: coordinates of the partial score when pruning.
        faiss_index: ``"ivf"`` (IVF-Flat), ``"hnsw"`` (HNSW-Flat) or ``"flat"`` (exact FAISS).
        nlist: IVF lists (default ``sqrt(N)``, at most N/39 so k-means has enough points).
        nprobe: IVF lists scanned per query.
        hnsw_m: HNSW links per node.
        ef_construction: HNSW build breadth.
        ef_search: HNSW search breadth.
        exact_below: FAISS backend: filtered queries that leave at most this many candidates
            are answered exactly on that subset.
        seed: seed of the IVF k-means and its training sample.

    Attributes:
        ids: the ids (``numpy`` array of str); ``dim``; ``backend``; ``metadata``;
        n_zero_vectors: rows that were all zeros (kept; they score 0 against everything).
        build_seconds: time taken to build.
    """

    def __init__(self, ids: Sequence[Any], vectors: Any, *, metadata: pd.DataFrame | None = None,
                 backend: str = "exact", normalize: bool = True, prune: bool | str = "auto",
                 prune_dims: int = 64, faiss_index: str = "ivf", nlist: int | None = None,
                 nprobe: int = 16, hnsw_m: int = 32, ef_construction: int = 80,
                 ef_search: int = 128, exact_below: int = 50_000, seed: int = SEED) -> None:
        start = time.perf_counter()
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}. Received: backend={backend!r}")
        if faiss_index not in FAISS_KINDS:
            raise ValueError(f"faiss_index must be one of {FAISS_KINDS}. Received: "
                             f"faiss_index={faiss_index!r}")
        if prune not in (True, False, "auto"):
            raise ValueError(f"prune must be True, False or 'auto'. Received: prune={prune!r}")
        self.ids = np.asarray([str(i) for i in ids])
        x = l2_normalize(vectors) if normalize else np.ascontiguousarray(vectors, dtype=np.float32)
        if x.ndim != 2 or len(x) != len(self.ids):
            raise ValueError(f"vectors must be (N, D) with N = len(ids) = {len(self.ids)}. "
                             f"Received: shape={x.shape}")
        if len(x) == 0:
            raise ValueError("A SimilarityIndex needs at least one item. Received: 0 ids")
        self._pos = pd.Index(self.ids)
        if not self._pos.is_unique:
            dupes = self._pos[self._pos.duplicated()].unique()[:5].tolist()
            raise ValueError(f"ids must be unique. Received duplicates such as {dupes}")
        self.dim = int(x.shape[1])
        self.backend = backend
        self.n_zero_vectors = int((np.abs(x).sum(axis=1) == 0).sum())
        self.metadata = self._align_metadata(metadata)
        self.exact_below = int(exact_below)
        self._basis: np.ndarray | None = None
        self._faiss = None
        self.faiss_index = faiss_index if backend == "faiss" else None
        if prune == "auto":
            prune = backend == "exact" and len(x) >= 20_000 and self.dim >= 256
        self.prune = bool(prune) and backend == "exact" and self.dim > prune_dims
        self.prune_dims = int(prune_dims)
        self.nprobe, self.ef_search = int(nprobe), int(ef_search)
        if self.prune:
            self._build_pruning(x)
        else:
            self._x = x
        if backend == "faiss":
            self._build_faiss(x, kind=faiss_index, nlist=nlist, hnsw_m=hnsw_m,
                              ef_construction=ef_construction, seed=seed)
        self.build_seconds = time.perf_counter() - start

    # ----------------------------------------------------------------- construction

    def _align_metadata(self, metadata: pd.DataFrame | None) -> pd.DataFrame | None:
        if metadata is None:
            return None
        meta = metadata.copy()
        if "id" in meta.columns:
            meta = meta.set_index(meta["id"].astype(str)).drop(columns="id")
        meta.index = meta.index.astype(str)
        if not meta.index.is_unique:
            raise ValueError("metadata has duplicate ids, e.g. "
                             f"{meta.index[meta.index.duplicated()][:5].tolist()}")
        missing = self._pos.difference(meta.index)
        if len(missing):
            raise ValueError(f"metadata lacks {len(missing)} id(s) of the index, e.g. "
                             f"{missing[:5].tolist()}")
        meta = meta.loc[self.ids]
        meta.index.name = "id"
        return meta

    def _build_pruning(self, x: np.ndarray) -> None:
        """Rotate into the PCA basis (orthonormal: dot products unchanged) and keep the head."""
        gram = np.zeros((self.dim, self.dim), dtype=np.float32)
        for lo in range(0, len(x), 8192):
            block = x[lo:lo + 8192]
            gram += block.T @ block
        _, vecs = np.linalg.eigh(gram.astype(np.float64))
        self._basis = np.ascontiguousarray(vecs[:, ::-1], dtype=np.float32)  # largest first
        rot = np.empty_like(x)
        for lo in range(0, len(x), 8192):
            rot[lo:lo + 8192] = x[lo:lo + 8192] @ self._basis
        m = self.prune_dims
        self._x = rot
        self._head = np.ascontiguousarray(rot[:, :m])
        self._tail_norm = np.linalg.norm(rot[:, m:], axis=1).astype(np.float32)

    def _build_faiss(self, x: np.ndarray, *, kind: str, nlist: int | None, hnsw_m: int,
                     ef_construction: int, seed: int) -> None:
        import faiss

        n, d = x.shape
        if kind == "flat":
            index = faiss.IndexFlatIP(d)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, int(hnsw_m), faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = int(ef_construction)
            index.hnsw.efSearch = self.ef_search
        else:
            if nlist is None:
                nlist = int(max(1, min(round(math.sqrt(n)), n // 39)))
            if not 1 <= int(nlist) <= n:
                raise ValueError(f"nlist must be in [1, N={n}]. Received: nlist={nlist!r}")
            self.nlist = int(nlist)
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, self.nlist, faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = int(seed)
            n_train = min(n, max(40 * self.nlist, 10_000))  # k-means cost grows with n_train x nlist
            sample = np.random.default_rng(seed).choice(n, n_train, replace=False) if n_train < n else None
            index.train(x if sample is None else x[np.sort(sample)])
            index.nprobe = min(self.nprobe, self.nlist)
        index.add(x)
        self._faiss = index

    # ----------------------------------------------------------------- basic access

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        extra = f", faiss_index={self.faiss_index!r}" if self.backend == "faiss" else \
            f", prune={self.prune}"
        return f"SimilarityIndex(n={len(self)}, dim={self.dim}, backend={self.backend!r}{extra})"

    def positions(self, ids: Sequence[Any]) -> np.ndarray:
        """Row positions of ids; raises ``KeyError`` naming ids that are not indexed."""
        wanted = pd.Index([str(i) for i in ids])
        pos = self._pos.get_indexer(wanted)
        if (pos < 0).any():
            raise KeyError(f"{int((pos < 0).sum())} id(s) not in the index, e.g. "
                           f"{wanted[pos < 0][:5].tolist()}")
        return pos

    def vector(self, item_id: Any) -> np.ndarray:
        """The (normalised) vector stored for ``item_id``."""
        row = self._x[self.positions([item_id])[0]]
        return row @ self._basis.T if self._basis is not None else row.copy()

    @property
    def vectors(self) -> np.ndarray:
        """All stored vectors, in the original basis (a copy when pruning is on)."""
        return self._x @ self._basis.T if self._basis is not None else self._x

    def memory_bytes(self) -> int:
        """Bytes held by the search structures: vectors and pruning head, or the FAISS index
        (a FAISS-backed index also keeps the vectors, for filtered queries answered exactly)."""
        if self._faiss is not None:
            return faiss_index_bytes(self._faiss)
        total = self._x.nbytes
        if self._basis is not None:
            total += self._basis.nbytes + self._head.nbytes + self._tail_norm.nbytes
        return int(total)

    # ----------------------------------------------------------------- search

    def search(self, queries: Any, k: int = 5, *, exclude: Any = None,
               mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The k most similar rows for each query vector (the low-level search).

        Args:
            queries: ``(Q, D)`` or ``(D,)`` query vectors (normalised here).
            k: neighbours per query.
            exclude: ``(Q,)`` row positions to leave out per query (e.g. the query itself;
                ``-1`` for none), or ``None``.
            mask: ``(N,)`` booleans, ``True`` for rows that may be returned.

        Returns:
            ``(positions, scores)``, both ``(Q, k)``, best first; ``-1`` / NaN where fewer
            than k rows qualify.
        """
        q = l2_normalize(queries)
        q = q[None, :] if q.ndim == 1 else q
        if q.shape[1] != self.dim:
            raise ValueError(f"query vectors must have {self.dim} dimensions. Received: shape={q.shape}")
        if self._basis is not None:
            q = q @ self._basis
        return self._search_stored_basis(q, k, exclude=exclude, mask=mask)

    def _search_stored_basis(self, q: np.ndarray, k: int, *, exclude: Any = None,
                             mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search` for unit query rows already in the stored (possibly rotated) basis."""
        k = _check_k(k)
        excl = np.full(len(q), -1, dtype=np.int64) if exclude is None else \
            np.asarray(exclude, dtype=np.int64).reshape(-1)
        if len(excl) != len(q):
            raise ValueError(f"exclude must have one entry per query ({len(q)}). Received: {len(excl)}")
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (len(self),):
                raise ValueError(f"mask must have shape ({len(self)},). Received: {mask.shape}")
        if len(q) == 0:
            return np.empty((0, k), np.int64), np.empty((0, k), np.float32)
        if self._faiss is not None:
            if mask is not None and mask.sum() <= self.exact_below:
                return self._subset_search(q, k, excl, mask)
            return self._faiss_search(q, k, excl, mask)
        if len(q) == 1:  # one query: matrix-vector products, faster on one BLAS thread
            with _one_blas_thread():
                if self._basis is not None:
                    return self._pruned_search(q[0], k, int(excl[0]), mask)
                return self._exact_search(q, k, excl, mask)
        return self._exact_search(q, k, excl, mask)

    def _exact_search(self, q: np.ndarray, k: int, excl: np.ndarray,
                      mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        n = len(self._x)
        q_batch = max(1, min(len(q), 1024))
        rows = int(min(n, max(1024, _SCORE_BUDGET_BYTES // (4 * q_batch))))
        all_pos, all_scores = [], []
        for qlo in range(0, len(q), q_batch):
            qb, eb = q[qlo:qlo + q_batch], excl[qlo:qlo + q_batch]
            best_p = np.full((len(qb), 0), -1, dtype=np.int64)
            best_s = np.full((len(qb), 0), -np.inf, dtype=np.float32)
            for lo in range(0, n, rows):
                hi = min(n, lo + rows)
                s = qb @ self._x[lo:hi].T
                if mask is not None:
                    s[:, ~mask[lo:hi]] = -np.inf
                inside = np.flatnonzero((eb >= lo) & (eb < hi))
                s[inside, eb[inside] - lo] = -np.inf
                p, v = _topk_rows(s, k)
                best_p = np.hstack([best_p, p + lo])
                best_s = np.hstack([best_s, v])
                if best_p.shape[1] > k:
                    keep, best_s = _topk_rows(best_s, k)
                    best_p = np.take_along_axis(best_p, keep, axis=1)
            p, s = _sort_results(best_p, best_s, k)
            all_pos.append(p)
            all_scores.append(s)
        return np.vstack(all_pos), np.vstack(all_scores)

    def _pruned_search(self, q: np.ndarray, k: int, excl: int,
                       mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k of one rotated query, reading full rows only for items that may qualify."""
        n, m = len(self._x), self.prune_dims
        upper = self._head @ q[:m]
        upper += np.float32(np.linalg.norm(q[m:])) * self._tail_norm + np.float32(_BOUND_TOLERANCE)
        if mask is not None:
            upper[~mask] = -np.inf
        if 0 <= excl < n:
            upper[excl] = -np.inf
        n_ok = int(np.isfinite(upper).sum())
        if n_ok <= k:
            cand = np.flatnonzero(np.isfinite(upper))
        else:
            seeds = np.argpartition(-upper, min(n_ok, 4 * k + 32) - 1)[:min(n_ok, 4 * k + 32)]
            seeds = seeds[np.isfinite(upper[seeds])]
            exact = self._x[seeds] @ q
            threshold = np.partition(exact, len(exact) - k)[len(exact) - k]
            cand = np.flatnonzero(upper >= threshold)
            if len(cand) > n // 3:  # the bound prunes too little: a plain scan is cheaper
                return self._exact_search(q[None], k, np.array([excl]), mask)
        scores = (self._x[cand] @ q)[None]
        p, s = _topk_rows(scores, k)
        return _sort_results(cand[p], s, k)

    def _subset_search(self, q: np.ndarray, k: int, excl: np.ndarray,
                       mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = np.flatnonzero(mask)
        if len(rows) == 0:
            return np.full((len(q), k), -1, np.int64), np.full((len(q), k), np.nan, np.float32)
        s = q @ self._x[rows].T
        local = pd.Index(rows).get_indexer(excl)
        has = np.flatnonzero(local >= 0)
        s[has, local[has]] = -np.inf
        p, v = _topk_rows(s, k)
        return _sort_results(rows[p], v, k)

    def _faiss_search(self, q: np.ndarray, k: int, excl: np.ndarray,
                      mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        params = None
        if mask is not None:
            bitmap = np.packbits(mask, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bitmap))
            if self.faiss_index == "ivf":
                params = faiss.SearchParametersIVF(sel=selector, nprobe=self._faiss.nprobe)
            elif self.faiss_index == "hnsw":
                params = faiss.SearchParametersHNSW(sel=selector, efSearch=self.ef_search)
            else:
                params = faiss.SearchParameters(sel=selector)
        extra = int((excl >= 0).any())
        kk = min(k + extra, len(self))
        scores, pos = self._faiss.search(np.ascontiguousarray(q), kk, params=params)
        pos = pos.astype(np.int64)
        scores = np.where(pos < 0, -np.inf, scores).astype(np.float32)
        scores[pos == excl[:, None]] = -np.inf
        return _sort_results(pos, scores, k)

    # ----------------------------------------------------------------- queries

    def filter_mask(self, filters: Mapping[str, Any] | None, *,
                    query_position: int | None = None) -> np.ndarray | None:
        """Rows allowed by ``filters``; ``None`` when there are no filters.

        Each entry maps a metadata column to ``"same"`` or ``"different"`` (relative to the
        query item: needs an id query), a value, or a list of values.
        """
        if not filters:
            return None
        if not isinstance(filters, Mapping):
            raise ValueError(f"filters must be a dict such as {{'gender': 'same'}}. Received: "
                             f"filters={filters!r}")
        if self.metadata is None:
            raise ValueError(f"filters need metadata; this index has none. Received: filters={filters!r}")
        mask = np.ones(len(self), dtype=bool)
        for column, spec in filters.items():
            if column not in self.metadata.columns:
                raise ValueError(f"Unknown filter column {column!r}; metadata columns: "
                                 f"{list(self.metadata.columns)}. Received: filters={filters!r}")
            values = self.metadata[column].to_numpy()
            if isinstance(spec, str) and spec in ("same", "different"):
                if query_position is None:
                    raise ValueError(f"filter {column!r}: {spec!r} compares with the query item, so "
                                     f"the query must be an id; for a vector give a value, e.g. "
                                     f"{{{column!r}: {values[0]!r}}}")
                same = values == values[query_position]
                mask &= same if spec == "same" else ~same
            elif isinstance(spec, (list, tuple, set, frozenset, np.ndarray)):
                mask &= np.isin(values, list(spec))
            else:
                mask &= values == spec
        return mask

    def query(self, query: Any, k: int = 5, *, filters: Mapping[str, Any] | None = None,
              as_frame: bool = True) -> pd.DataFrame | list[tuple[str, float]]:
        """The k products most similar to ``query``, never the query itself.

        Args:
            query: an indexed id, or a ``(D,)`` vector (e.g. from :func:`embed_image_files`).
            k: how many neighbours.
            filters: e.g. ``{"gender": "same"}``, ``{"articleType": "different"}`` ("complete
                the look"), ``{"masterCategory": "Footwear"}``.
            as_frame: a DataFrame (rank, id, score and the metadata columns) or a list of
                ``(id, score)``.

        Returns:
            The neighbours, best first (fewer than k when the filters leave fewer).
        """
        vector, position = self._resolve(query)
        mask = self.filter_mask(filters, query_position=position)
        if position is None:
            pos, scores = self.search(vector, k, mask=mask)
        else:  # the stored row: already normalised and in the stored basis
            pos, scores = self._search_stored_basis(vector[None], k, exclude=[position], mask=mask)
        keep = pos[0] >= 0
        ids, vals = self.ids[pos[0][keep]], scores[0][keep]
        if not as_frame:
            return [(str(i), float(s)) for i, s in zip(ids, vals)]
        frame = pd.DataFrame({"rank": np.arange(1, len(ids) + 1), "id": ids, "score": vals})
        if self.metadata is not None:
            frame = frame.join(self.metadata, on="id")
        return frame

    def _resolve(self, query: Any) -> tuple[np.ndarray, int | None]:
        if isinstance(query, (str, int, np.integer)) and not isinstance(query, bool):
            pos = self._pos.get_indexer([str(query)])[0]
            if pos < 0:
                raise KeyError(f"id {query!r} is not in the index (a new image? use query_image)")
            return self._x[pos], int(pos)
        vec = np.asarray(query, dtype=np.float32)
        if vec.shape != (self.dim,):
            raise ValueError(f"a query is an id or a ({self.dim},) vector. Received: "
                             f"{type(query).__name__} with shape {getattr(vec, 'shape', None)}")
        return vec, None

    def query_many(self, query_ids: Sequence[Any], k: int = 10, *,
                   batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """Neighbours of many indexed items at once (batched; each query excludes itself).

        Args:
            query_ids: ids in the index.
            k: neighbours per query.
            batch_size: queries per matrix product.

        Returns:
            ``(positions, scores)``, both ``(Q, k)`` (row positions into :attr:`ids`; ``-1`` /
            NaN where fewer than k items exist).
        """
        k = _check_k(k)
        qpos = self.positions(query_ids)
        out_p, out_s = [], []
        for lo in range(0, len(qpos), batch_size):
            rows = qpos[lo:lo + batch_size]
            p, s = self._search_stored_basis(self._x[rows], k, exclude=rows)
            out_p.append(p)
            out_s.append(s)
        if not out_p:
            return np.empty((0, k), np.int64), np.empty((0, k), np.float32)
        return np.vstack(out_p), np.vstack(out_s)

    def query_image(self, path: str | os.PathLike, *, model: Any, image_size: int, k: int = 5,
                    filters: Mapping[str, Any] | None = None,
                    as_frame: bool = True) -> pd.DataFrame | list[tuple[str, float]]:
        """Neighbours of a new photo (not in the catalog), embedded on the fly.

        Args:
            path: an image file.
            model: the model that made the index's vectors (same source, same layer).
            image_size: the input size used for the catalog.
            k, filters, as_frame: as in :meth:`query` (filters take values, not "same").
        """
        vector = embed_image_files([path], model=model, image_size=image_size)[0]
        if vector.shape != (self.dim,):
            raise ValueError(f"the model gives {vector.shape[0]}-d vectors but the index holds "
                             f"{self.dim}-d ones: use the model that built the index")
        return self.query(vector, k, filters=filters, as_frame=as_frame)

    def recall_against(self, reference: "SimilarityIndex", query_ids: Sequence[Any], *,
                       k: int = 5) -> float:
        """Recall@k of this index against another (normally exact) one on the same items."""
        mine, _ = self.query_many(query_ids, k)
        truth, _ = reference.query_many(query_ids, k)
        return recall_at_k(mine, truth)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each true neighbour list (``(Q, k)``, ``-1`` = none) that was found."""
    found, truth = np.asarray(found), np.asarray(truth)
    if found.shape[0] != truth.shape[0]:
        raise ValueError(f"found and truth need the same number of queries. Received: "
                         f"{found.shape[0]} and {truth.shape[0]}")
    hits, total = 0, 0
    for f, t in zip(found, truth):
        t = set(t[t >= 0].tolist())
        hits += len(t & set(f[f >= 0].tolist()))
        total += len(t)
    return hits / total if total else float("nan")


def faiss_index_bytes(index: Any) -> int:
    """Bytes held by a FAISS Flat, IVF-Flat or HNSW-Flat index (vectors, lists, graph)."""
    import faiss

    d, n = index.d, index.ntotal
    if isinstance(index, faiss.IndexIVF):
        invlists = index.invlists
        return int(n * (invlists.code_size + 8) + index.nlist * d * 4)
    if isinstance(index, faiss.IndexHNSW):
        hnsw = index.hnsw
        return int(n * d * 4 + hnsw.neighbors.size() * 4 + hnsw.levels.size() * 4
                   + hnsw.offsets.size() * 8)
    return int(n * d * 4)


# --------------------------------------------------------------------------- metrics


def _relevance(relevance: Any) -> np.ndarray:
    rel = np.asarray(relevance)
    if rel.ndim != 2:
        raise ValueError(f"relevance must be a (queries, k) matrix. Received: shape={rel.shape}")
    return rel.astype(bool)


def precision_at_k(relevance: Any, *, k: int | None = None) -> float:
    """Mean over queries of the fraction of the first k neighbours that are relevant.

    Args:
        relevance: ``(Q, K)`` booleans, ``True`` where the i-th neighbour is relevant (missing
            neighbours count as not relevant).
        k: use the first k columns (default all); must not exceed K.
    """
    rel = _relevance(relevance)
    k = rel.shape[1] if k is None else _check_k(k)
    if k > rel.shape[1]:
        raise ValueError(f"k={k} exceeds the {rel.shape[1]} neighbours given")
    if len(rel) == 0:
        return float("nan")
    return float(rel[:, :k].sum(axis=1).mean() / k)


def average_precision_at_k(relevance: Any, *, k: int | None = None,
                           n_relevant: Any = None) -> np.ndarray:
    """AP@k of each query: ``sum_i P@i · rel_i / min(k, R)`` over the first k neighbours.

    Args:
        relevance: ``(Q, K)`` booleans.
        k: cut-off (default K).
        n_relevant: R, the number of relevant items in the gallery for each query (scalar or
            ``(Q,)``); ``None`` divides by the number of relevant neighbours retrieved instead.

    Returns:
        ``(Q,)`` floats in [0, 1]; 0 for a query with nothing relevant.
    """
    rel = _relevance(relevance)
    k = rel.shape[1] if k is None else _check_k(k)
    if k > rel.shape[1]:
        raise ValueError(f"k={k} exceeds the {rel.shape[1]} neighbours given")
    rel = rel[:, :k].astype(np.float64)
    precision_at_i = np.cumsum(rel, axis=1) / np.arange(1, k + 1)
    total = (precision_at_i * rel).sum(axis=1)
    if n_relevant is None:
        denom = rel.sum(axis=1)
    else:
        r = np.broadcast_to(np.asarray(n_relevant, dtype=np.float64), (len(rel),))
        if (r < 0).any():
            raise ValueError(f"n_relevant must be >= 0. Received: min={r.min()}")
        denom = np.minimum(k, r)
    return np.divide(total, denom, out=np.zeros(len(rel)), where=denom > 0)


def mean_average_precision_at_k(relevance: Any, *, k: int | None = None,
                                n_relevant: Any = None) -> float:
    """mAP@k: the mean of :func:`average_precision_at_k` over queries."""
    ap = average_precision_at_k(relevance, k=k, n_relevant=n_relevant)
    return float(ap.mean()) if len(ap) else float("nan")


def evaluate_neighbours(neighbours: np.ndarray, query_positions: Sequence[int],
                        labels: pd.DataFrame, *, k: int = 5, map_k: int = 10) -> pd.DataFrame:
    """precision@k and mAP@map_k per label column (relevant = same label as the query).

    Args:
        neighbours: ``(Q, K)`` row positions into ``labels`` (``-1`` = none), ``K >= max(k, map_k)``.
        query_positions: ``(Q,)`` row positions of the queries in ``labels`` (the gallery holds
            the queries; each was excluded from its own neighbours).
        labels: the gallery's label columns, one row per indexed item, in index order.
        k: precision cut-off.
        map_k: mAP cut-off.

    Returns:
        One row per label column: ``precision@k``, ``mAP@map_k``, ``chance`` (the mean share
        of the query's class in the gallery, what random neighbours score) and ``n_queries``.
    """
    nb = np.asarray(neighbours)
    qpos = np.asarray(query_positions, dtype=np.int64)
    if nb.ndim != 2 or len(nb) != len(qpos):
        raise ValueError(f"neighbours must be (Q, K) with Q = {len(qpos)}. Received: shape={nb.shape}")
    if nb.shape[1] < max(k, map_k):
        raise ValueError(f"need at least {max(k, map_k)} neighbours per query. Received: {nb.shape[1]}")
    rows = []
    for column in labels.columns:
        codes, _ = pd.factorize(labels[column], use_na_sentinel=True)
        counts = np.bincount(codes[codes >= 0], minlength=codes.max() + 1)
        qcode = codes[qpos]
        ncode = np.where(nb >= 0, codes[np.clip(nb, 0, None)], -1)
        rel = (ncode == qcode[:, None]) & (qcode[:, None] >= 0)
        n_rel = np.where(qcode >= 0, counts[np.clip(qcode, 0, None)] - 1, 0)
        rows.append({"label": column, f"precision@{k}": precision_at_k(rel, k=k),
                     f"mAP@{map_k}": mean_average_precision_at_k(rel, k=map_k, n_relevant=n_rel),
                     "chance": float(np.mean(n_rel / max(len(codes) - 1, 1))),
                     "n_queries": len(qpos)})
    return pd.DataFrame(rows).set_index("label")


def random_neighbours(n_items: int, query_positions: Sequence[int], k: int, *,
                      seed: int = SEED) -> np.ndarray:
    """The random baseline: k distinct random rows per query, never the query itself."""
    k = _check_k(k)
    if n_items - 1 < k:
        raise ValueError(f"need more than k={k} items. Received: n_items={n_items}")
    rng = np.random.default_rng(seed)
    qpos = np.asarray(query_positions, dtype=np.int64)
    out = np.empty((len(qpos), k), dtype=np.int64)
    for i, q in enumerate(qpos):
        draw = rng.choice(n_items - 1, size=k, replace=False)
        out[i] = draw + (draw >= q)  # skip the query's own row
    return out


def evaluate_index(index: SimilarityIndex, query_ids: Sequence[Any], *,
                   label_columns: Sequence[str], k: int = 5, map_k: int = 10) -> pd.DataFrame:
    """precision@k and mAP@map_k of an index's neighbours, queries against the whole index."""
    if index.metadata is None:
        raise ValueError("evaluate_index needs an index built with metadata (the label columns)")
    missing = [c for c in label_columns if c not in index.metadata.columns]
    if missing:
        raise ValueError(f"label column(s) {missing} not in the metadata {list(index.metadata.columns)}")
    nb, _ = index.query_many(query_ids, max(k, map_k))
    return evaluate_neighbours(nb, index.positions(query_ids), index.metadata[list(label_columns)],
                               k=k, map_k=map_k)


# --------------------------------------------------------------------------- query selection


def query_ids_for_evaluation(catalog: pd.DataFrame, *, splits_path: str | os.PathLike | None = None,
                             seed: int = SEED, fraction: float = 0.2) -> tuple[list[str], str]:
    """The test-split ids of the catalog, used as evaluation queries, and where they came from.

    Priority: notebook 02's ``splits.csv`` (ids with split ``"test"`` that are in the catalog),
    then the catalog's own ``split`` column, then a seeded random ``fraction``.
    """
    ids = catalog["id"].astype(str)
    if splits_path is not None and Path(splits_path).is_file():
        splits = pd.read_csv(splits_path, dtype={"id": str})
        test = set(splits.loc[splits["split"] == "test", "id"])
        chosen = ids[ids.isin(test)].tolist()
        if chosen:
            return chosen, f"{Path(splits_path).name} (test split)"
    if "split" in catalog.columns and (catalog["split"] == "test").any():
        return ids[catalog["split"].to_numpy() == "test"].tolist(), "catalog split column (test)"
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1]. Received: fraction={fraction!r}")
    n = max(1, int(round(fraction * len(ids))))
    return ids.sample(n, random_state=seed).tolist(), f"random {fraction:.0%} of the catalog"


# --------------------------------------------------------------------------- benchmark


def synthetic_embeddings(n: int, dim: int, *, seed: int = SEED, start: int = 0,
                         n_clusters: int = 1000, intrinsic_dim: int = 64, spread: float = 0.8,
                         noise: float = 0.35) -> np.ndarray:
    """Deterministic synthetic unit vectors shaped like CNN embeddings (for benchmarks).

    Items come from ``n_clusters`` Gaussian clusters (unit-variance centres, within-cluster
    standard deviation ``spread``) in a random ``intrinsic_dim``-dimensional subspace, plus
    isotropic noise in all ``dim`` coordinates (relative scale ``noise``). Row i
    is the same whatever ``start`` / ``n`` slice is asked for, so a large set can be made in
    chunks.
    """
    base = np.random.default_rng([seed, 0])
    basis = base.standard_normal((intrinsic_dim, dim)).astype(np.float32) / np.sqrt(intrinsic_dim)
    centres = base.standard_normal((n_clusters, intrinsic_dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    step = 65_536
    for lo in range(start - start % step, start + n, step):
        rng = np.random.default_rng([seed, 1, lo // step])
        size = step
        cluster = rng.integers(0, n_clusters, size)
        z = centres[cluster] + spread * rng.standard_normal((size, intrinsic_dim), dtype=np.float32)
        block = z @ basis
        block += (noise / np.sqrt(dim)) * np.linalg.norm(z, axis=1, keepdims=True) * \
            rng.standard_normal((size, dim), dtype=np.float32)
        a, b = max(lo, start), min(lo + size, start + n)
        if a < b:
            out[a - start:b - start] = block[a - lo:b - lo]
    return l2_normalize(out)


def relative_contrast(vectors: np.ndarray, *, k: int = 5, n_queries: int = 200, seed: int = SEED) -> float:
    """How hard nearest-neighbour search is on unit vectors: median over sample queries of the
    mean distance to all items divided by the distance to the k-th nearest (lower = harder).
    """
    x = np.asarray(vectors, dtype=np.float32)
    rows = np.random.default_rng(seed).choice(len(x), min(n_queries, len(x)), replace=False)
    s = x[rows] @ x.T
    s[np.arange(len(rows)), rows] = -2.0  # the query itself is never its own neighbour
    d = np.sqrt(np.clip(2.0 - 2.0 * s, 0.0, None))
    kth = np.partition(d, k - 1, axis=1)[:, k - 1]
    return float(np.median(d.mean(axis=1) / np.maximum(kth, 1e-12)))


def _rss_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return 0


def _latencies(fn: Callable[[int], Any], n: int) -> dict[str, float]:
    fn(0)  # warm-up
    times = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    ms = np.asarray(times) * 1e3
    return {"p50_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
            "mean_ms": float(ms.mean())}


def _one_thread_cpu_ms(fn: Callable[[int], Any], n: int) -> dict[str, float]:
    """Per-query CPU time with BLAS and FAISS on one thread: robust to other processes' load.

    On a shared machine, wall-clock latency mostly measures the other processes; the CPU time
    of a single-threaded query is what it costs on one idle core (an upper bound for two).
    """
    from threadpoolctl import threadpool_limits

    try:
        import faiss
        before = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
    except ImportError:  # pragma: no cover
        faiss = None
    try:
        with threadpool_limits(1):
            fn(0)
            cpu = []
            for i in range(n):
                t = time.process_time()
                fn(i)
                cpu.append(time.process_time() - t)
    finally:
        if faiss is not None:
            faiss.omp_set_num_threads(before)
    ms = np.asarray(cpu) * 1e3
    return {"one_thread_cpu_p50_ms": float(np.median(ms)), "one_thread_cpu_p90_ms": float(np.percentile(ms, 90))}


def query_latency(index: SimilarityIndex, query_ids: Sequence[Any], *, k: int = 5,
                  filters: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Latency of single :meth:`SimilarityIndex.query` calls, one id at a time (after a warm-up).

    Returns:
        ``p50_ms``, ``p90_ms`` and ``mean_ms``.
    """
    query_ids = [str(i) for i in query_ids]
    if not query_ids:
        raise ValueError("query_latency needs at least one query id. Received: 0")
    return _latencies(lambda i: index.query(query_ids[i % len(query_ids)], k, filters=filters,
                                            as_frame=False), len(query_ids))


def _bench_exact(vectors: np.ndarray | None, *, n_small: int, dim: int, n_queries: int, k: int,
                 seed: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Single-query latency of the exact index, scanning and pruning, at catalog size."""
    small = l2_normalize(vectors) if vectors is not None else synthetic_embeddings(n_small, dim, seed=seed)
    out: dict[str, Any] = {"n": len(small), "dim": small.shape[1],
                           "data": "real embeddings" if vectors is not None else "synthetic",
                           "relative_contrast": round(relative_contrast(small, k=k, seed=seed), 3)}
    qrows = np.random.default_rng(seed).choice(len(small), min(n_queries, len(small)), replace=False)
    ids = np.arange(len(small)).astype(str)
    for prune in (False, True):
        index = SimilarityIndex(ids, small, normalize=False, prune=prune)
        stats = query_latency(index, ids[qrows], k=k)
        stats.update(_one_thread_cpu_ms(lambda i: index.query(ids[qrows[i % len(qrows)]], k, as_frame=False),
                                        len(qrows)))
        stats.update(build_s=round(index.build_seconds, 2), memory_mb=index.memory_bytes() / 2**20)
        out["pruned" if prune else "scan"] = stats
        log(f"exact {'pruned' if prune else 'scan'} @ {len(small):,} x {small.shape[1]}: {stats}")
    return out


#: The synthetic sets of the million-item benchmark. "clustered" is about as hard as real CNN
#: embeddings (relative contrast 1.82 at 70,000 items, against 2.05 for the Lite0 features of
#: Fashion-MNIST; lower is harder); "cluster_free" has no clusters for the IVF lists to follow
#: (relative contrast 1.65): a stress case.
SYNTHETIC_SETS: dict[str, dict[str, Any]] = {
    "clustered": {"n_clusters": 1000, "intrinsic_dim": 64, "spread": 0.8, "noise": 0.35},
    "cluster_free": {"n_clusters": 1, "intrinsic_dim": 32, "spread": 1.0, "noise": 0.35},
}


def _cached_catalog_features() -> np.ndarray | None:
    """The default catalog's pretrained features, if notebook 05 (or 03) cached them."""
    from fashion_utils import config

    folder = config.get_paths().features
    found = sorted(folder.glob(f"{config.DEFAULT_BACKBONE}_{config.DEFAULT_IMAGE_SIZE}px_*/features.npy"),
                   key=lambda p: p.stat().st_size)
    return np.load(found[-1]) if found else None


def _bench_faiss_ivf(gen: Mapping[str, Any], *, n_large: int, dim: int, nlist: int,
                     nprobes: Sequence[int], n_queries: int, k: int, seed: int,
                     log: Callable[[str], None]) -> dict[str, Any]:
    """Build an IVF-Flat index on ``n_large`` synthetic vectors, sweep nprobe, measure recall."""
    import faiss

    cfg: dict[str, Any] = {"n": n_large, "dim": dim, "nlist": nlist, "synthetic": dict(gen)}
    sample = synthetic_embeddings(70_000, dim, seed=seed, **gen)
    cfg["relative_contrast_at_70k"] = round(relative_contrast(sample, k=k, seed=seed), 3)
    del sample
    queries = synthetic_embeddings(n_queries, dim, seed=seed, start=n_large, **gen)  # not in the index
    rss0 = _rss_bytes()
    t0 = time.perf_counter()
    train = synthetic_embeddings(min(n_large, 40 * nlist), dim, seed=seed, **gen)
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.train(train)
    del train
    cfg["train_s"] = round(time.perf_counter() - t0, 1)
    truth_s = np.full((n_queries, k), -np.inf, np.float32)
    truth_i = np.full((n_queries, k), -1, np.int64)
    chunk, t_add, t_truth = 131_072, 0.0, 0.0
    for lo in range(0, n_large, chunk):  # add in chunks; exact ground truth streamed alongside
        block = synthetic_embeddings(min(chunk, n_large - lo), dim, seed=seed, start=lo, **gen)
        t = time.perf_counter()
        index.add(block)
        t_add += time.perf_counter() - t
        t = time.perf_counter()
        p, s = _topk_rows(queries @ block.T, k)
        cat_s, cat_i = np.hstack([truth_s, s]), np.hstack([truth_i, p + lo])
        keep, truth_s = _topk_rows(cat_s, k)
        truth_i = np.take_along_axis(cat_i, keep, axis=1)
        t_truth += time.perf_counter() - t
        log(f"  added {lo + len(block):,} / {n_large:,}")
        del block
    cfg.update(add_s=round(t_add, 1), exact_ground_truth_s=round(t_truth, 1),
               exact_batched_scan_ms_per_query=round(1e3 * t_truth / n_queries, 2),
               index_memory_mb=round(faiss_index_bytes(index) / 2**20, 1),
               rss_growth_mb=round((_rss_bytes() - rss0) / 2**20, 1))
    sweep = []
    for nprobe in nprobes:
        index.nprobe = int(nprobe)
        _, found = index.search(queries, k)
        stats = _latencies(lambda i: index.search(queries[i % n_queries][None], k), n_queries)
        stats.update(_one_thread_cpu_ms(lambda i: index.search(queries[i % n_queries][None], k), n_queries))
        stats.update(nprobe=int(nprobe), recall_at_k=recall_at_k(found, truth_i))
        sweep.append(stats)
        log(f"  IVF nprobe={nprobe}: {stats}")
    cfg["sweep"] = sweep
    good = [s for s in sweep if s["recall_at_k"] >= 0.95]
    cfg["chosen"] = min(good, key=lambda s: s["p50_ms"]) if good else max(sweep, key=lambda s: s["recall_at_k"])
    return cfg


def bench_recommender(*, n_small: int = 70_000, n_large: int = 1_000_000, dim: int = 1280,
                      n_queries: int = 200, k: int = 5, vectors: np.ndarray | str | None = "auto",
                      nlist: int = 1024, nprobes: Sequence[int] = (4, 8, 16, 32, 64, 128),
                      synthetic_sets: Mapping[str, Mapping[str, Any]] | None = None,
                      seed: int = SEED, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Query latency of exact search at catalog size and of FAISS IVF at a million items.

    Takes about 10 minutes on 2 idle cores (mostly IVF training and adding, per synthetic set)
    and about 7 GB of memory (the 1280-d million-item index is 4.8 GiB).

    Args:
        n_small: items of the exact-search benchmark (real vectors are cut to this many; when
            synthetic, 0 skips it).
        n_large: synthetic items of the FAISS benchmark (0 skips it).
        dim: vector length (Lite0 features: 1280).
        n_queries: timed single queries per setting (latency = one query at a time).
        k: neighbours per query.
        vectors: embeddings for the exact benchmark; ``"auto"``: the default catalog's cached
            pretrained features when they exist, else ``n_small`` synthetic vectors.
        nlist: IVF lists of the large index.
        nprobes: IVF settings swept; recall@k against exact search is measured for each.
        synthetic_sets: name -> options of :func:`synthetic_embeddings` (default
            :data:`SYNTHETIC_SETS`).
        seed: seed of the synthetic data and the IVF k-means.
        log: progress messages.

    Returns:
        A JSON-ready dict: ``exact`` (scan and pruned search) and ``faiss_ivf`` per synthetic set,
        with wall-clock latencies (p50/p90 ms), the one-thread CPU time per query (robust to
        other processes' load), recall@k, index memory and build times.
    """
    result: dict[str, Any] = {"k": k, "n_queries": n_queries, "cpus": os.cpu_count(),
                              "loadavg_at_start": [round(v, 2) for v in os.getloadavg()]}
    if isinstance(vectors, str):
        if vectors != "auto":
            raise ValueError(f"vectors must be an array, None or 'auto'. Received: vectors={vectors!r}")
        vectors = _cached_catalog_features()
    if vectors is not None and n_small and len(vectors) > n_small:
        vectors = vectors[:n_small]  # the catalog size the target is stated for
    if n_small or vectors is not None:
        result["exact"] = _bench_exact(vectors, n_small=n_small, dim=dim, n_queries=n_queries, k=k,
                                       seed=seed, log=log)
    if n_large:
        result["faiss_ivf"] = {}
        for name, gen in (synthetic_sets or SYNTHETIC_SETS).items():
            log(f"FAISS IVF{nlist} on {n_large:,} x {dim} synthetic vectors ({name})")
            result["faiss_ivf"][name] = _bench_faiss_ivf(
                gen, n_large=n_large, dim=dim, nlist=nlist, nprobes=nprobes, n_queries=n_queries,
                k=k, seed=seed, log=log)
    result["loadavg_at_end"] = [round(v, 2) for v in os.getloadavg()]
    return result


def write_benchmark(result: Mapping[str, Any], path: str | os.PathLike, *, section: str = "recommend") -> Path:
    """Merge ``result`` into the JSON file at ``path`` under ``section`` (atomically)."""
    path = Path(path)
    data = json.loads(path.read_text()) if path.exists() else {}
    data[section] = result
    return write_json_atomic(path, data)
