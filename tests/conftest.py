"""Shared pytest fixtures: an isolated output root, image writers and tiny synthetic catalogs.

Everything is built under pytest's temporary folders, in milliseconds: no network, no real
data set. Append new fixtures at the end, grouped by topic, each with a one-line docstring.

Fixtures:
    output_root           a fresh ``FASHION_OUTPUT_ROOT`` for one test (the whole session
                          already writes into a temporary one, never into the repository).
    make_image            writes a small image in any PIL mode / format.
    make_kaggle_dir       builds a clean Kaggle-layout catalog (``styles.csv`` + ``images/``).
    tiny_kaggle_dir       ``make_kaggle_dir`` with its defaults: 24 products, 3 master categories.
    quirky_kaggle_dir     a Kaggle-layout catalog with every known quirk (see its docstring).
    fashion_mnist_idx     12 train + 4 test images as gzipped idx files, with the arrays.

Builders the catalog-kind tests call: ``build_folder_catalog`` (a folder per class whose labels
are not fashion) and ``build_csv_catalog`` (``styles.csv`` with ``id, label, tone`` +
``images/``, ids with spaces and accents). Helpers for the notebook runs: ``run_quick_study`` (every notebook, quick mode, outputs in a
throw-away root) and ``code_outputs`` (every output of an executed notebook's code cells); for
figures: the ``notebook_style`` fixture and ``saved_pixels`` (a figure's size as saved).
"""

from __future__ import annotations

import csv
import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

# --------------------------------------------------------------------------- running on every core

#: Modules whose tests share an expensive module-scoped fixture, heaviest first. Under
#: pytest-xdist (``make test``: ``-n auto --dist loadscope``) each module is one work unit on one
#: worker, so its fixture is built once; the heaviest start first, side by side.
HEAVY_MODULES = ("tests/test_notebooks.py", "tests/test_catalog_kinds.py",
                 "tests/test_real_sample.py", "tests/test_faults.py", "tests/test_distributed.py",
                 "tests/test_browser.py")
#: Modules whose module-scoped fixture is parametrized: one work unit per parameter, so that
#: the two catalog kinds' studies run on two workers at once.
UNIT_PER_PARAMETER = ("tests/test_catalog_kinds.py",)


def share_the_cores() -> None:
    """Under pytest-xdist, give each worker's TensorFlow (and the kernels and children it starts,
    which inherit the environment) its share of the cores instead of all of them: two workers
    each spinning threads on both cores of a 2-core machine slow each other down."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        share = str(max(1, (os.cpu_count() or 1) // workers))
        for name, value in (("TF_NUM_INTRAOP_THREADS", share), ("TF_NUM_INTEROP_THREADS", "1"),
                            ("OMP_NUM_THREADS", share)):
            os.environ.setdefault(name, value)


share_the_cores()


def work_unit(nodeid: str) -> str:
    """The xdist work unit of a test: its module, plus its parameter for
    :data:`UNIT_PER_PARAMETER`.

    >>> work_unit("tests/test_catalog_kinds.py::test_every_notebook_runs_and_draws[csv]")
    'tests/test_catalog_kinds.py[csv]'
    """
    module, _, rest = nodeid.partition("::")
    if module in UNIT_PER_PARAMETER and rest.endswith("]") and "[" in rest:
        return f"{module}[{rest[rest.index('[') + 1:-1]}]"
    return module


def pytest_collection_modifyitems(config, items):
    """Heaviest modules first (a stable sort: the rest keep pytest's order)."""
    rank = {module: i for i, module in enumerate(HEAVY_MODULES)}
    items.sort(key=lambda item: rank.get(item.nodeid.partition("::")[0], len(rank)))


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: fine when it is not loaded
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadscope`` with :func:`work_unit` as the scope, in collection order."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False  # keep the heaviest first
    return SharedFixtureScheduling(config, log)


# --------------------------------------------------------------------------- output folders


@pytest.fixture(scope="session", autouse=True)
def _session_output_root(tmp_path_factory: pytest.TempPathFactory):
    """Point ``FASHION_OUTPUT_ROOT`` at a session temp folder: no test writes into the repository."""
    root = tmp_path_factory.mktemp("output_root")
    patch = pytest.MonkeyPatch()
    patch.setenv("FASHION_OUTPUT_ROOT", str(root))
    yield root
    patch.undo()


@pytest.fixture
def output_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty ``FASHION_OUTPUT_ROOT`` for this test only."""
    root = tmp_path / "output_root"
    root.mkdir()
    monkeypatch.setenv("FASHION_OUTPUT_ROOT", str(root))
    return root


# --------------------------------------------------------------------------- images


def _pixels(size: tuple[int, int], seed: int, color: tuple[int, int, int] | None) -> np.ndarray:
    """A ``(H, W, 3)`` uint8 picture: a colour (or a gradient) plus a little noise."""
    width, height = size
    rng = np.random.default_rng(seed)
    if color is None:
        ys, xs = np.mgrid[0:height, 0:width]
        base = np.stack([xs * 255 // max(width - 1, 1), ys * 255 // max(height - 1, 1),
                         np.full_like(xs, 128)], axis=-1)
    else:
        base = np.broadcast_to(np.asarray(color), (height, width, 3))
    noise = rng.integers(-12, 13, size=(height, width, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def write_image(path: Path, *, mode: str = "RGB", size: tuple[int, int] = (32, 24),
                color: tuple[int, int, int] | None = None, seed: int = 0) -> Path:
    """Write a small image in ``mode`` (RGB, L, LA, RGBA, P, CMYK, I;16); format from the suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = Image.fromarray(_pixels(size, seed, color), mode="RGB")
    if mode == "P":
        img = rgb.quantize(colors=8)
    elif mode == "I;16":
        img = Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)  # 16-bit grey
    elif mode in ("RGBA", "LA"):
        img = rgb.convert(mode)
        alpha = Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0]), dtype=np.uint8))
        img.putalpha(alpha)
    else:
        img = rgb.convert(mode)
    img.save(path)
    return path


@pytest.fixture
def make_image() -> Callable[..., Path]:
    """``make_image(path, *, mode="RGB", size=(32, 24), color=None, seed=0) -> path``."""
    return write_image


# --------------------------------------------------------------------------- Kaggle-layout catalogs

KAGGLE_COLUMNS = ["id", "gender", "masterCategory", "subCategory", "articleType", "baseColour",
                  "season", "year", "usage", "productDisplayName"]

# (masterCategory, subCategory, articleType, colour of its pictures)
_TINY_TYPES = [
    ("Apparel", "Topwear", "Tshirts", (200, 40, 40)),
    ("Apparel", "Bottomwear", "Jeans", (40, 40, 200)),
    ("Footwear", "Shoes", "Casual Shoes", (40, 160, 40)),
    ("Footwear", "Sandal", "Sandals", (220, 200, 40)),
    ("Accessories", "Bags", "Handbags", (120, 60, 20)),
    ("Accessories", "Watches", "Watches", (30, 30, 30)),
]


def noisy_labels(n: int = 300, error_rate: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """3-class labels and predictions that are wrong (at random) about ``error_rate`` of the time."""
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 3, n)
    y_pred = np.where(rng.random(n) < error_rate, rng.integers(0, 3, n), y_true)
    return y_true, y_pred


def build_kaggle_dir(root: Path, *, n_per_type: int = 4, image_size: int = 32) -> Path:
    """A clean Kaggle-layout catalog: ``n_per_type`` products for each of 6 article types.

    Ids are ``"1000"``, ``"1001"``, ...; pictures are RGB JPEGs whose colour depends on the
    article type (so a model can tell them apart); gender alternates Men/Women.
    """
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for t, (master, sub, article, color) in enumerate(_TINY_TYPES):
        for k in range(n_per_type):
            row_id = str(1000 + t * n_per_type + k)
            gender = ("Men", "Women")[k % 2]
            rows.append([row_id, gender, master, sub, article, "Mixed", ("Summer", "Winter")[k % 2],
                         str(2011 + k % 5), "Casual", f"{gender} {article} {row_id}"])
            write_image(root / "images" / f"{row_id}.jpg", size=(image_size, image_size), color=color,
                        seed=int(row_id))
    return _write_styles(root, KAGGLE_COLUMNS, rows)


def _write_styles(root: Path, header: list[str], rows: list[list[str]]) -> Path:
    """Write ``root/styles.csv`` (a header, then the rows); returns ``root``."""
    with open(root / "styles.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return root


@pytest.fixture
def make_kaggle_dir(tmp_path: Path) -> Callable[..., Path]:
    """``make_kaggle_dir(name="catalog", *, n_per_type=4, image_size=32) -> folder`` under tmp_path."""
    def make(name: str = "catalog", **options) -> Path:
        return build_kaggle_dir(tmp_path / name, **options)
    return make


@pytest.fixture
def tiny_kaggle_dir(make_kaggle_dir: Callable[..., Path]) -> Path:
    """A clean Kaggle-layout catalog: 24 products, 6 article types, 3 master categories."""
    return make_kaggle_dir("tiny_kaggle")


# The quirky catalog's styles.csv, line by line (header first). Unquoted commas in the last
# column, surrounding whitespace and "2014.0" are written exactly as the real file has them.
QUIRKY_STYLES_LINES = [
    ",".join(KAGGLE_COLUMNS),
    "1001,Men,Apparel,Topwear,Tshirts,Navy Blue,Fall,2011,Casual,Turtle Check Men Navy Blue Shirt",
    "1002,Women,Apparel,Topwear,Tops,White,Summer,2012,Casual,Tokyo Talkies Women White, Top",
    "1003,Men,Footwear,Shoes,Casual Shoes,Black,Winter,2016,Sports,Puma Men Black, Grey, Casual Shoes",
    "  1004 , Women , Accessories , Bags , Handbags , Brown , Summer , 2014.0 , Casual , Lino Perros Handbag ",
    "1005,Men,Apparel,Bottomwear,Jeans,Blue,Fall,2012,Casual,First copy of 1005",
    "1006,Men,Apparel,Topwear,Shirts,White,Fall,2012,Formal,Shirt without an image file",
    "1007,Women,Apparel,Topwear,Kurtas,Red,Summer,2013,Ethnic,Zero-byte image",
    "1008,Women,Footwear,Sandal,Sandals,Tan,Summer,2013,Casual,Truncated JPEG",
    "1009,Men,Accessories,Watches,Watches,Silver,Winter,2015,Casual,Text file named .jpg",
    "1005,Men,Apparel,Bottomwear,Jeans,Blue,Fall,2012,Casual,Second copy of 1005",
    "1010,Men,Apparel,Topwear,Tshirts,Grey,Fall,2012,Casual,Grayscale JPEG",
    "1011,Women,Apparel,Dress,Dresses,Black,Fall,2012,Party,CMYK JPEG",
    "1012,Unisex,Accessories,Bags,Backpacks,Green,Fall,2012,Casual,RGBA PNG",
    "1013,Girls,Apparel,Topwear,Tshirts,Pink,Summer,2012,Casual,Palette PNG",
    "1014,Boys,Apparel,Topwear,Tshirts,Blue,,,,No season year or usage",
    "1015,Men,Apparel",
]


@pytest.fixture
def quirky_kaggle_dir(tmp_path: Path) -> Path:
    """A Kaggle-layout catalog with every quirk of the real data (see ``QUIRKY_STYLES_LINES``).

    - kept (10): 1001 (RGB JPEG), 1002 (one extra comma), 1003 (two extra commas), 1004
      (whitespace, year "2014.0"), 1005 (first of two rows), 1010 (L JPEG), 1011 (CMYK JPEG),
      1012 (RGBA PNG, ``images/1012.png``), 1013 (P PNG), 1014 (empty season/year/usage);
    - repaired: 1002, 1003;
    - excluded (6, in file order): 1006 (missing image file), 1007 (empty file), 1008
      (truncated JPEG), 1009 (text named .jpg, not an image), 1005's second row (duplicate
      id), 1015 (malformed row: 3 fields);
    - ``images/9999.jpg`` has no row (an orphan, reported in the notes).
    """
    root = tmp_path / "quirky_kaggle"
    images = root / "images"
    images.mkdir(parents=True)
    (root / "styles.csv").write_text("\n".join(QUIRKY_STYLES_LINES) + "\n", encoding="utf-8")
    for row_id in ("1001", "1002", "1003", "1004", "1005", "1014", "9999"):
        write_image(images / f"{row_id}.jpg", seed=int(row_id))
    (images / "1007.jpg").write_bytes(b"")
    full = write_image(images / "1008.jpg", size=(64, 64), seed=8).read_bytes()
    (images / "1008.jpg").write_bytes(full[: len(full) // 2])
    (images / "1009.jpg").write_text("this is not a picture\n")
    write_image(images / "1010.jpg", mode="L", seed=10)
    write_image(images / "1011.jpg", mode="CMYK", seed=11)
    write_image(images / "1012.png", mode="RGBA", seed=12)
    write_image(images / "1013.png", mode="P", seed=13)
    return root


# --------------------------------------------------------------------------- Fashion-MNIST idx files


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write a uint8 array as a gzipped idx file (the MNIST format)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.tobytes())
    return path


@dataclass
class IdxData:
    """The fixture's folder and the arrays written into it."""

    path: Path
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


@pytest.fixture
def fashion_mnist_idx(tmp_path: Path) -> IdxData:
    """12 train + 4 test 28x28 images (labels 0..9, all present) as the four gzipped idx files."""
    rng = np.random.default_rng(0)
    data = IdxData(
        path=tmp_path / "fashion_mnist_idx",
        train_images=rng.integers(0, 256, size=(12, 28, 28), dtype=np.uint8),
        train_labels=np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 9], dtype=np.uint8),
        test_images=rng.integers(0, 256, size=(4, 28, 28), dtype=np.uint8),
        test_labels=np.array([9, 5, 0, 8], dtype=np.uint8),
    )
    data.path.mkdir()
    write_idx(data.path / "train-images-idx3-ubyte.gz", data.train_images)
    write_idx(data.path / "train-labels-idx1-ubyte.gz", data.train_labels)
    write_idx(data.path / "t10k-images-idx3-ubyte.gz", data.test_images)
    write_idx(data.path / "t10k-labels-idx1-ubyte.gz", data.test_labels)
    return data


# --------------------------------------------------------------------------- other catalog kinds

# Non-fashion classes and the colour of their pictures (so a model can tell them apart).
OTHER_CLASSES = {"eight": (200, 40, 40), "three": (40, 40, 200), "forty two": (40, 160, 40),
                 "zero": (220, 200, 40)}


def build_folder_catalog(root: Path, *, n_per_class: int = 15, image_size: int = 32) -> Path:
    """A folder-per-class catalog: ``root/<class>/<k>.png``, every third file one folder down.

    Ids are the relative paths without extension (``"eight/3"``, ``"forty two/more/5"``):
    they hold ``/`` and spaces; the label column is ``label`` (``data.load_folder_catalog``).
    """
    root = Path(root)
    for c, (label, color) in enumerate(OTHER_CLASSES.items()):
        for k in range(n_per_class):
            folder = root / label / ("more" if k % 3 == 2 else "")
            write_image(folder / f"{k}.png", size=(image_size, image_size), color=color,
                        seed=100 * c + k)
    return root


def build_csv_catalog(root: Path, *, n_per_class: int = 15, image_size: int = 32) -> Path:
    """A catalog described by a CSV of non-fashion labels: ``styles.csv`` (``id, label, tone``)
    and ``images/<id>.jpg``. Ids hold spaces and non-ASCII letters (``"größe 7"``)."""
    root = Path(root)
    rows = []
    for c, (label, color) in enumerate(OTHER_CLASSES.items()):
        for k in range(n_per_class):
            row_id = f"{('größe', 'item', 'çà', 'ω')[c]} {k}"
            rows.append([row_id, label, ("light", "dark")[k % 2]])
            write_image(root / "images" / f"{row_id}.jpg", size=(image_size, image_size),
                        color=color, seed=100 * c + k)
    return _write_styles(root, ["id", "label", "tone"], rows)


# --------------------------------------------------------------------------- notebook runs


def run_quick_study(root: Path, parameters: dict) -> list[Path]:
    """Execute every notebook in quick mode with ``parameters``, writing under ``root`` (the
    kernels inherit ``FASHION_OUTPUT_ROOT``); returns the executed notebooks, in order."""
    from fashion_utils.tools import runner

    patch = pytest.MonkeyPatch()
    patch.setenv("FASHION_OUTPUT_ROOT", str(root))
    try:
        return runner.run_notebooks(quick=True, parameters=parameters,
                                    output_dir=Path(root) / "executed", html=False)
    finally:
        patch.undo()


def code_outputs(executed: Path) -> list[dict]:
    """Every output of the code cells of an executed notebook."""
    import json

    cells = json.loads(Path(executed).read_text(encoding="utf-8"))["cells"]
    return [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])]


# --------------------------------------------------------------------------- figures


@pytest.fixture
def notebook_style():
    """The notebooks' plot style (``plots.set_style``: dpi, theme) for one test, undone after."""
    import matplotlib

    from fashion_utils.views import plots

    with matplotlib.rc_context():
        plots.set_style()
        yield


def saved_pixels(fig) -> tuple[int, int]:
    """``(width, height)`` in pixels of ``fig`` saved as ``plots.save_fig`` saves it (with the
    ``notebook_style`` fixture: the notebooks' dpi); the figure is closed."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    with Image.open(buffer) as img:
        return img.size


EXPLORER_CLASSES = ["Shirt", "Sneaker", "Bag"]


@pytest.fixture
def explorer_data(tmp_path):
    """30 tiny PNG products in 3 classes, with class-structured 8-d vectors, and their index
    (metadata: articleType and gender): the explorer's and the figure views' catalog."""
    import pandas as pd

    from fashion_utils.recommend.similarity import SimilarityIndex

    rng = np.random.default_rng(0)
    rows, vectors = [], []
    for i in range(30):
        cls = i % 3
        img = np.full((12, 12, 3), 40 * cls, np.uint8)
        img[3:9, 3:9] = (rng.integers(0, 255, 3)).astype(np.uint8)
        path = tmp_path / f"{i}.png"
        Image.fromarray(img).save(path)
        rows.append({"id": str(100 + i), "image_path": str(path),
                     "articleType": EXPLORER_CLASSES[cls], "gender": "Men" if i % 2 else "Women",
                     "productDisplayName": f"Item {i} {EXPLORER_CLASSES[cls]}"})
        vectors.append(np.eye(8)[cls] * 3 + rng.standard_normal(8))
    catalog = pd.DataFrame(rows)
    index = SimilarityIndex(catalog["id"], np.array(vectors),
                            metadata=catalog[["id", "articleType", "gender"]])
    return catalog, index


# --------------------------------------------------------------------------- phone photos


def upright_picture(width: int = 48, height: int = 24) -> np.ndarray:
    """A landscape ``(height, width, 3)`` picture whose halves differ: red left, blue right,
    a green band along the top edge, so any turn or flip shows."""
    img = np.zeros((height, width, 3), np.uint8)
    img[:, : width // 2] = (220, 30, 30)
    img[:, width // 2:] = (30, 30, 220)
    img[: height // 4] = (30, 200, 30)
    return img


def write_phone_jpeg(path: Path, upright: np.ndarray, *, orientation: int = 6) -> Path:
    """Write ``upright`` as a phone camera does: the sensor's pixels (turned) and an EXIF
    orientation tag that says how to turn them back (6: rotate 90 degrees clockwise to view)."""
    undo = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90,
            8: Image.Transpose.ROTATE_270}[orientation]
    sensor = Image.fromarray(upright).transpose(undo)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sensor.save(path, format="JPEG", quality=95, exif=exif)
    return path
