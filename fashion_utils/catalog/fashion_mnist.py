"""Fashion-MNIST in the Kaggle layout: the study's default, offline data set.

Fashion-MNIST in the Kaggle layout (:func:`prepare_fashion_mnist`): ``images/<id>.png``
(the 28x28 grayscale pictures unchanged, PNG mode ``L``) and ``styles.csv`` with columns
``id, label, articleType, subCategory, masterCategory, split``. Ids 0..59999 are the official
training set, 60000..69999 the official test set. The mapping (:data:`FASHION_MNIST_ATTRIBUTES`):

=============  ============  ============  ==============
label          articleType   subCategory   masterCategory
=============  ============  ============  ==============
T-shirt/top    Tshirt        Topwear       Apparel
Trouser        Trousers      Bottomwear    Apparel
Pullover       Pullover      Topwear       Apparel
Dress          Dress         Dress         Apparel
Coat           Coat          Topwear       Apparel
Sandal         Sandals       Sandal        Footwear
Shirt          Shirt         Topwear       Apparel
Sneaker        Sneakers      Shoes         Footwear
Bag            Bag           Bags          Accessories
Ankle boot     Ankle Boots   Shoes         Footwear
=============  ============  ============  ==============
"""

from __future__ import annotations
import csv
import gzip
import json
import os
import struct
import time
from pathlib import Path
import numpy as np
from PIL import Image
from fashion_utils import config
from fashion_utils.atomic import atomic_dir


PathLike = str | os.PathLike


FASHION_MNIST_LABELS: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # index = the integer label in the idx files
# The Kaggle hierarchy of each label, in label order (the table in the module docstring).
_ARTICLE_TYPES = ("Tshirt", "Trousers", "Pullover", "Dress", "Coat", "Sandals", "Shirt",
                  "Sneakers", "Bag", "Ankle Boots")
_SUB_CATEGORIES = ("Topwear", "Bottomwear", "Topwear", "Dress", "Topwear", "Sandal", "Topwear",
                   "Shoes", "Bags", "Shoes")
_MASTER_CATEGORIES = ("Apparel",) * 5 + ("Footwear", "Apparel", "Footwear", "Accessories",
                                         "Footwear")
FASHION_MNIST_ATTRIBUTES: dict[str, dict[str, str]] = {
    label: {"articleType": a, "subCategory": s, "masterCategory": m}
    for label, a, s, m in zip(FASHION_MNIST_LABELS, _ARTICLE_TYPES, _SUB_CATEGORIES,
                              _MASTER_CATEGORIES)
}
FASHION_MNIST_COLUMNS: list[str] = ["id", "label", "articleType", "subCategory", "masterCategory", "split"]
# (split, kind) -> file name without ".gz", as published and as Debian ships them.
FASHION_MNIST_FILES: dict[tuple[str, str], str] = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
COMPLETION_MARKER = ".complete.json"  # written last by prepare_fashion_mnist
_PREPARED_ENTRIES = {"images", "styles.csv", COMPLETION_MARKER}


# --------------------------------------------------------------------------- Fashion-MNIST

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: PathLike) -> np.ndarray:
    """Read an idx file (the MNIST format), gzipped or not.

    Args:
        path: the file (``.gz`` files are recognised by their content).

    Returns:
        The array, e.g. ``(n, 28, 28)`` uint8 images or ``(n,)`` uint8 labels.
    """
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(f"Not an idx file (bad magic number {data[:4]!r}). Received: path={os.fspath(path)!r}")
    ndim = data[3]
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise ValueError(f"Truncated idx header. Received: path={os.fspath(path)!r}")
    shape = struct.unpack(f">{ndim}I", data[4:offset])
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - offset != expected:
        raise ValueError(f"idx file holds {len(data) - offset} data bytes, its header {shape} needs "
                         f"{expected}. Received: path={os.fspath(path)!r}")
    return np.frombuffer(data, dtype=dtype, offset=offset).reshape(shape)


def _find_idx_files(folder: Path) -> dict[tuple[str, str], Path] | None:
    """The four Fashion-MNIST files in ``folder`` (``.gz`` or not), or ``None`` if any is missing."""
    found = {}
    for key, name in FASHION_MNIST_FILES.items():
        dotted = name.replace("-idx", ".idx")  # "train-images.idx3-ubyte", as some mirrors name it
        candidates = [folder / f"{n}{gz}" for n in (name, dotted) for gz in (".gz", "")]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            return None
        found[key] = path
    return found


def _fashion_mnist_arrays(source_dir: PathLike | None) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str]:
    """``{"train": (images, labels), "test": (...)}`` and a description of the source."""
    explicit = [("source_dir", source_dir)] if source_dir is not None else []
    if os.environ.get("FASHION_MNIST_DIR"):
        explicit.append(("FASHION_MNIST_DIR", os.environ["FASHION_MNIST_DIR"]))
    if explicit:
        name, folder = explicit[0]
        files = _find_idx_files(Path(folder).expanduser())
        if files is None:
            names = ", ".join(f"{n}[.gz]" for n in FASHION_MNIST_FILES.values())
            raise FileNotFoundError(f"{name} must hold {names}. Received: {name}={os.fspath(folder)!r}")
        source = str(Path(folder).expanduser().resolve())
    else:
        files = _find_idx_files(config.DEBIAN_FASHION_MNIST_DIR)
        source = str(config.DEBIAN_FASHION_MNIST_DIR)
    if files is not None:
        arrays = {split: (read_idx(files[(split, "images")]), read_idx(files[(split, "labels")]))
                  for split in ("train", "test")}
        return arrays, source
    try:  # pragma: no cover - needs the network
        import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    except Exception as exc:  # pragma: no cover - needs the network
        raise RuntimeError("No Fashion-MNIST source: pass source_dir, set FASHION_MNIST_DIR, install "
                           f"Debian's dataset-fashion-mnist ({config.DEBIAN_FASHION_MNIST_DIR}) or go "
                           f"online for keras.datasets.fashion_mnist ({exc})") from exc
    return {"train": (x_train, y_train), "test": (x_test, y_test)}, "keras.datasets.fashion_mnist"


def _count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))


def _is_prepared(folder: Path) -> bool:
    """Complete: the marker (written last) exists and styles.csv and images/ hold its row count."""
    try:
        marker = json.loads((folder / COMPLETION_MARKER).read_text())
        n_rows = int(marker["n_rows"])
        n_images = sum(1 for _ in os.scandir(folder / "images"))
        return _count_lines(folder / "styles.csv") == n_rows + 1 and n_images == n_rows
    except (OSError, ValueError, KeyError, TypeError):
        return False


def written_by_prepare(folder: Path) -> bool:
    """Written by :func:`prepare_fashion_mnist` (possibly damaged since): marker or our header."""
    if (folder / COMPLETION_MARKER).is_file():
        return True
    try:
        with open(folder / "styles.csv", newline="", encoding="utf-8") as fh:
            return next(csv.reader(fh), None) == FASHION_MNIST_COLUMNS
    except (OSError, UnicodeDecodeError):
        return False


def _write_fashion_mnist(folder: Path, arrays: dict[str, tuple[np.ndarray, np.ndarray]], source: str) -> int:
    images_dir = folder / "images"
    images_dir.mkdir(parents=True)
    rows = []
    next_id = 0
    for split in ("train", "test"):
        images, labels = arrays[split]
        for image, label in zip(images, labels):
            name = FASHION_MNIST_LABELS[int(label)]
            Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), mode="L").save(
                images_dir / f"{next_id}.png", format="PNG", compress_level=1)
            attributes = FASHION_MNIST_ATTRIBUTES[name]
            rows.append((str(next_id), name, attributes["articleType"], attributes["subCategory"],
                         attributes["masterCategory"], split))
            next_id += 1
    with open(folder / "styles.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(FASHION_MNIST_COLUMNS)
        writer.writerows(rows)
    marker = {"n_rows": len(rows), "n_train": len(arrays["train"][1]), "n_test": len(arrays["test"][1]),
              "source": source, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (folder / COMPLETION_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    return len(rows)


def prepare_fashion_mnist(out_dir: PathLike, *, source_dir: PathLike | None = None) -> Path:
    """Write the real Fashion-MNIST in the Kaggle layout (see the module docstring).

    Sources, in order: ``source_dir``; env ``FASHION_MNIST_DIR``; Debian's files in
    ``config.DEBIAN_FASHION_MNIST_DIR``; ``keras.datasets.fashion_mnist`` (a download).
    Idempotent: a complete folder (marker file written last, row count matching) is returned
    at once. Atomic: written into ``.<name>.tmp-<pid>`` beside ``out_dir``, then renamed.

    Args:
        out_dir: the folder to create, e.g. ``config.default_data_dir()``.
        source_dir: a folder with the four idx files (gzipped or not).

    Returns:
        ``out_dir`` as an absolute path.
    """
    out = Path(out_dir).expanduser().resolve()
    if _is_prepared(out):
        return out
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or (
            written_by_prepare(out) and {p.name for p in out.iterdir()} <= _PREPARED_ENTRIES))):
        raise ValueError(f"out_dir exists and is not a (partial) Fashion-MNIST folder; not replacing it. "
                         f"Received: out_dir={os.fspath(out_dir)!r}")
    arrays, source = _fashion_mnist_arrays(source_dir)
    for split, (images, labels) in arrays.items():
        if images.ndim != 3 or images.dtype != np.uint8 or len(images) != len(labels):
            raise ValueError(f"Fashion-MNIST {split} data: expected (n, H, W) uint8 images and n labels. "
                             f"Received: images {images.shape} {images.dtype}, labels {labels.shape}")
        if len(labels) and (labels.min() < 0 or labels.max() >= len(FASHION_MNIST_LABELS)):
            raise ValueError(f"Fashion-MNIST {split} labels must be in 0..9. "
                             f"Received: labels in {labels.min()}..{labels.max()}")
    try:
        with atomic_dir(out, replace=True) as tmp:  # a partial folder of ours is replaced
            _write_fashion_mnist(tmp, arrays, source)
    except OSError:
        if not _is_prepared(out):  # else another process finished first
            raise
    return out


