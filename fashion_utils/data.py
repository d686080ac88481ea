"""Catalogs of product images: loading, checking, and the Fashion-MNIST preparation.

A *catalog* is a :class:`pandas.DataFrame` with one row per usable product:

- ``id``: string, unique (Kaggle ``"15970"``, Fashion-MNIST ``"0"`` ... ``"69999"``);
- ``image_path``: absolute path of the image file (string);
- the attribute columns of the source (``year`` becomes ``Int64``; the rest stay strings,
  with surrounding whitespace stripped and empty values as missing).

Every loader also returns a :class:`LoadReport` that accounts for every row it read:
``n_rows_read == n_kept + len(excluded)``; nothing is dropped without a reason.

Layouts (:func:`load_catalog` detects the first two):

- **Kaggle**: ``styles.csv`` + ``images/<id>.<ext>`` (the "Fashion Product Images" data set,
  and Fashion-MNIST once prepared by :func:`prepare_fashion_mnist`);
- **folder per class**: ``root/<class>/<file>`` (:func:`load_folder_catalog`);
- **any CSV** with an image-path column and label columns (:func:`load_csv_catalog`).

Quirks of the real Kaggle ``styles.csv``, handled here:

- some ``productDisplayName`` values (the last column) hold unquoted commas, so pandas stops
  with "Expected 10 fields ... saw 11". The extra fields belong to the name: they are joined
  back with ``","`` and the row's id is listed in ``LoadReport.repaired_ids``;
- a few rows have no image file (5 in the real data): excluded, reason ``"missing image file"``;
- duplicated ids: the first row is kept, the others are excluded (``"duplicate id ..."``).

The image check (``check_images=True``) is cheap: the file size, PIL's header parse (format,
mode, width, height) and the last bytes of the file (a JPEG must end with the EOI marker
``FFD9``, a PNG with its ``IEND`` chunk). Only a file that fails the tail check, or a GIF/BMP,
is fully decoded. Reasons: ``"missing image file"``, ``"empty file"``, ``"truncated image"``,
``"not an image: ..."``, ``"unsupported image format: ..."`` (TensorFlow decodes only JPEG, PNG,
GIF and BMP), ``"corrupt image: ..."``. Grayscale, CMYK, RGBA and palette images are valid;
:func:`read_image_rgb` returns them as RGB. With ``cache_dir`` the result of each check is
cached in ``cache_dir/image_checks_v1.csv``, keyed by (path, size, mtime): a changed file is
checked again.

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

Command line::

    python -m fashion_utils.data prepare-fashion-mnist [--out DIR] [--source DIR]
    python -m fashion_utils.data check DATA_DIR [--no-cache]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import shutil
import stat
import struct
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Sequence

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from fashion_utils import config

__all__ = [
    "FASHION_MNIST_ATTRIBUTES",
    "FASHION_MNIST_LABELS",
    "IMAGE_EXTENSIONS",
    "LoadReport",
    "check_image_file",
    "load_catalog",
    "load_csv_catalog",
    "load_folder_catalog",
    "load_kaggle_catalog",
    "prepare_fashion_mnist",
    "read_idx",
    "read_image_rgb",
]

PathLike = str | os.PathLike

# File extensions looked for, in order of preference when one id has several files.
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff")
# Formats (as PIL names them) that TensorFlow's ``tf.io.decode_image`` reads.
SUPPORTED_FORMATS: tuple[str, ...] = ("JPEG", "MPO", "PNG", "GIF", "BMP")  # MPO: a JPEG with extra views
# Columns converted to the nullable integer type (``"2014.0"`` -> 2014).
INTEGER_COLUMNS: tuple[str, ...] = ("year",)
EXCLUDED_COLUMNS: list[str] = ["id", "image_path", "reason"]
IMAGE_INFO_COLUMNS: list[str] = ["id", "width", "height", "mode", "format"]

REASON_MISSING_IMAGE = "missing image file"
REASON_EMPTY = "empty file"
REASON_TRUNCATED = "truncated image"
REASON_DUPLICATE = "duplicate id (first row kept)"
REASON_MISSING_ID = "missing id"

CHECK_CACHE_NAME = "image_checks_v1.csv"  # bump the version when the check changes
_CACHE_COLUMNS = ["path", "size", "mtime_ns", "reason", "width", "height", "mode", "format"]
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"
_TAIL_BYTES = 32

FASHION_MNIST_LABELS: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # index = the integer label in the idx files
FASHION_MNIST_ATTRIBUTES: dict[str, dict[str, str]] = {
    "T-shirt/top": {"articleType": "Tshirt", "subCategory": "Topwear", "masterCategory": "Apparel"},
    "Trouser": {"articleType": "Trousers", "subCategory": "Bottomwear", "masterCategory": "Apparel"},
    "Pullover": {"articleType": "Pullover", "subCategory": "Topwear", "masterCategory": "Apparel"},
    "Dress": {"articleType": "Dress", "subCategory": "Dress", "masterCategory": "Apparel"},
    "Coat": {"articleType": "Coat", "subCategory": "Topwear", "masterCategory": "Apparel"},
    "Sandal": {"articleType": "Sandals", "subCategory": "Sandal", "masterCategory": "Footwear"},
    "Shirt": {"articleType": "Shirt", "subCategory": "Topwear", "masterCategory": "Apparel"},
    "Sneaker": {"articleType": "Sneakers", "subCategory": "Shoes", "masterCategory": "Footwear"},
    "Bag": {"articleType": "Bag", "subCategory": "Bags", "masterCategory": "Accessories"},
    "Ankle boot": {"articleType": "Ankle Boots", "subCategory": "Shoes", "masterCategory": "Footwear"},
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


# --------------------------------------------------------------------------- the report


@dataclass(eq=False, repr=False)
class LoadReport:
    """What a catalog loader read, kept, repaired and excluded.

    Invariant: ``n_rows_read == n_kept + len(excluded)``.

    Attributes:
        source: the folder or CSV file read.
        layout: ``"kaggle"``, ``"csv"`` or ``"folder"``.
        n_rows_read: data rows (CSV) or files (folder layout) read.
        n_kept: rows in the returned catalog.
        repaired_ids: ids of rows whose extra fields were joined back into the last column.
        excluded: one row per excluded row: ``id, image_path, reason``.
        duplicate_ids: ids that occur more than once (their first row is kept).
        n_images_checked: images whose check result is known (checked now or from the cache).
        n_from_cache: of those, results served from the check cache.
        check_seconds: wall time of the image check.
        image_info: ``id, width, height, mode, format`` of every kept image (when checked).
        notes: anything else worth knowing (orphan image files, ambiguous file names ...).
    """

    source: str
    layout: str
    n_rows_read: int = 0
    n_kept: int = 0
    repaired_ids: list[str] = field(default_factory=list)
    excluded: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=EXCLUDED_COLUMNS))
    duplicate_ids: list[str] = field(default_factory=list)
    n_images_checked: int = 0
    n_from_cache: int = 0
    check_seconds: float = 0.0
    image_info: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=IMAGE_INFO_COLUMNS))
    notes: list[str] = field(default_factory=list)
    # (row number, id, image_path, reason) collected while loading; moved into ``excluded`` at the end.
    _pending: list[tuple] = field(default_factory=list, init=False)

    @property
    def n_repaired(self) -> int:
        return len(self.repaired_ids)

    @property
    def n_excluded(self) -> int:
        return len(self.excluded)

    def excluded_counts(self) -> pd.Series:
        """Excluded rows per kind of reason (the text before the first ``": "``)."""
        kinds = self.excluded["reason"].astype(str).str.split(": ", n=1).str[0]
        return kinds.value_counts().rename("count")

    def summary(self) -> pd.DataFrame:
        """Counts as a one-column table (index ``item``, column ``count``)."""
        rows: list[tuple[str, int]] = [
            ("rows read", self.n_rows_read),
            ("kept", self.n_kept),
            ("repaired", self.n_repaired),
            ("excluded", self.n_excluded),
        ]
        rows += [(f"excluded: {kind}", int(n)) for kind, n in self.excluded_counts().items()]
        rows += [
            ("duplicate ids", len(self.duplicate_ids)),
            ("images checked", self.n_images_checked),
            ("images from cache", self.n_from_cache),
        ]
        table = pd.DataFrame(rows, columns=["item", "count"]).set_index("item")
        return table.astype({"count": "int64"})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary (``json.dumps(report.to_dict())`` works)."""
        excluded = [
            {key: (None if pd.isna(value) else str(value)) for key, value in row.items()}
            for row in self.excluded[EXCLUDED_COLUMNS].to_dict(orient="records")
        ]
        return {
            "source": self.source,
            "layout": self.layout,
            "n_rows_read": int(self.n_rows_read),
            "n_kept": int(self.n_kept),
            "n_repaired": self.n_repaired,
            "n_excluded": self.n_excluded,
            "excluded_counts": {str(k): int(v) for k, v in self.excluded_counts().items()},
            "n_duplicate_ids": len(self.duplicate_ids),
            "n_images_checked": int(self.n_images_checked),
            "n_from_cache": int(self.n_from_cache),
            "check_seconds": round(float(self.check_seconds), 3),
            "repaired_ids": list(self.repaired_ids),
            "duplicate_ids": list(self.duplicate_ids),
            "excluded": excluded,
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        lines = [
            f"LoadReport ({self.layout} layout): {self.source}",
            f"  rows read          {self.n_rows_read:>8}",
            f"  kept               {self.n_kept:>8}",
            f"  repaired           {self.n_repaired:>8}  (extra commas joined back into the last column)",
            f"  excluded           {self.n_excluded:>8}",
        ]
        lines += [f"    {kind:<30} {n:>6}" for kind, n in self.excluded_counts().items()]
        lines += [
            f"  duplicate ids      {len(self.duplicate_ids):>8}",
            f"  images checked     {self.n_images_checked:>8}  "
            f"({self.n_from_cache} from cache, {self.check_seconds:.1f} s)",
        ]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"LoadReport(layout={self.layout!r}, source={self.source!r}, n_rows_read={self.n_rows_read}, "
                f"n_kept={self.n_kept}, n_repaired={self.n_repaired}, n_excluded={self.n_excluded})")

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython / Jupyter display
        printer.text(str(self))


# --------------------------------------------------------------------------- images


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode as RGB: alpha dropped, palette expanded, 16-bit scaled to 8 bits."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        wide = np.asarray(img).astype(np.int64)
        return Image.fromarray((np.clip(wide, 0, 65535) >> 8).astype(np.uint8), mode="L").convert("RGB")
    if img.mode == "F":
        return Image.fromarray(np.clip(np.asarray(img), 0, 255).astype(np.uint8), mode="L").convert("RGB")
    try:
        return img.convert("RGB")
    except ValueError:  # modes without a direct conversion (e.g. "PA")
        return img.convert("RGBA").convert("RGB")


def read_image_rgb(path: PathLike, *, size: int | None = None) -> np.ndarray:
    """Read any image as an RGB ``uint8`` array.

    Grayscale, CMYK, palette and 16-bit images are converted; an alpha channel is dropped
    (as ``tf.io.decode_image(..., channels=3)`` does). EXIF orientation is not applied.

    Args:
        path: the image file.
        size: side of a square resize (bilinear; the aspect ratio is not kept), or ``None``
            for the original size.

    Returns:
        An array of shape ``(H, W, 3)`` (``(size, size, 3)`` with ``size``), dtype ``uint8``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a bad ``size``, or a file that cannot be decoded.
    """
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0):
        raise ValueError(f"size must be a positive integer or None. Received: size={size!r}")
    with open(path, "rb") as fh:
        try:
            with Image.open(fh) as img:
                if size is not None and img.format == "JPEG":
                    # DCT scaling: decode at 1/2, 1/4 or 1/8 scale when that still covers the
                    # target size (16x faster for 1800x2400 photos at 96 px).
                    img.draft("RGB", (int(size), int(size)))
                rgb = _to_rgb(img)
                if size is not None and rgb.size != (size, size):
                    rgb = rgb.resize((int(size), int(size)), Image.Resampling.BILINEAR)
                array = np.array(rgb, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise ValueError(f"cannot decode image {os.fspath(path)!r}: {exc}") from exc
    return array


def _inspect_image(path: str, size: int) -> tuple[str, int, int, str, str]:
    """Check one existing file; returns ``(reason, width, height, mode, format)``, reason "" if usable."""
    if size == 0:
        return REASON_EMPTY, 0, 0, "", ""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
            fh.seek(max(size - _TAIL_BYTES, 0))
            tail = fh.read()
            fh.seek(0)
            looks_like_image = head.startswith(_JPEG_MAGIC) or head.startswith(_PNG_MAGIC)
            try:
                with Image.open(fh) as img:
                    fmt, mode, (width, height) = img.format or "", img.mode, img.size
            except Image.DecompressionBombError as exc:
                return f"image too large: {exc}", 0, 0, "", ""
            except UnidentifiedImageError:
                if looks_like_image:
                    return REASON_TRUNCATED, 0, 0, "", ""
                return f"not an image: unrecognised file content (starts with {head[:8]!r})", 0, 0, "", ""
            except (OSError, SyntaxError, ValueError, struct.error) as exc:
                if looks_like_image:
                    return REASON_TRUNCATED, 0, 0, "", ""
                return f"not an image: {exc}", 0, 0, "", ""
            info = (width, height, mode, fmt)
            if fmt not in SUPPORTED_FORMATS:
                return (f"unsupported image format: {fmt or 'unknown'}", *info)
            if width <= 0 or height <= 0:
                return (f"not an image: size {width}x{height}", *info)
            stripped = tail.rstrip(b"\x00")
            if fmt in ("JPEG", "MPO") and stripped.endswith(b"\xff\xd9"):
                return ("", *info)
            if fmt == "PNG" and stripped.endswith(_PNG_END):
                return ("", *info)
            # Tail check failed (or GIF/BMP): decode fully to tell truncation from trailing bytes.
            fh.seek(0)
            try:
                with Image.open(fh) as img:
                    img.load()
            except (OSError, SyntaxError, ValueError, struct.error) as exc:
                if fmt in ("JPEG", "MPO", "PNG") or "truncated" in str(exc):
                    return (REASON_TRUNCATED, *info)
                return (f"corrupt image: {exc}", *info)
            return ("", *info)
    except OSError as exc:
        return f"unreadable file: {exc.strerror or exc}", 0, 0, "", ""


def check_image_file(path: PathLike) -> str | None:
    """Cheaply check that a file is a usable image (see the module docstring).

    Args:
        path: the file.

    Returns:
        ``None`` for a usable image, otherwise the reason (e.g. ``"truncated image"``).
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return REASON_MISSING_IMAGE
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reason = _inspect_image(os.fspath(path), st.st_size)[0]
    return reason or None


def _read_check_cache(cache_file: Path, notes: list[str]) -> dict[str, tuple]:
    if not cache_file.is_file():
        return {}
    try:
        table = pd.read_csv(cache_file, dtype=str, keep_default_na=False)
        if list(table.columns) != _CACHE_COLUMNS:
            raise ValueError(f"unexpected columns {list(table.columns)}")
        return {
            path: (int(size), int(mtime), reason, int(w), int(h), mode, fmt)
            for path, size, mtime, reason, w, h, mode, fmt in table.itertuples(index=False)
        }
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        notes.append(f"image check cache {cache_file} unreadable ({exc}); checked again")
        return {}


def _write_check_cache(cache_file: Path, entries: dict[str, tuple]) -> None:
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame([(path, *values) for path, values in entries.items()], columns=_CACHE_COLUMNS)
    tmp = cache_file.with_name(f".{cache_file.name}.tmp-{os.getpid()}")
    try:
        table.to_csv(tmp, index=False)
        os.replace(tmp, cache_file)
    finally:
        if tmp.exists():
            tmp.unlink()


def _check_images(paths: list[str], *, check_images: bool, cache_dir: PathLike | None,
                  report: LoadReport) -> list[tuple[str, int, int, str, str]]:
    """Check every path; returns ``(reason, width, height, mode, format)`` per path."""
    start = time.perf_counter()
    cache_file = Path(cache_dir).expanduser().resolve() / CHECK_CACHE_NAME if cache_dir is not None else None
    cache = _read_check_cache(cache_file, report.notes) if (cache_file and check_images) else {}
    changed = False
    results: list[tuple[str, int, int, str, str]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PIL warns about odd EXIF data etc.; the check decides
        for path in paths:
            try:
                st = os.stat(path)
            except (FileNotFoundError, NotADirectoryError):
                results.append((REASON_MISSING_IMAGE, 0, 0, "", ""))
                continue
            if not stat.S_ISREG(st.st_mode):
                results.append(("not a regular file", 0, 0, "", ""))
                continue
            if not check_images:
                results.append(("", 0, 0, "", ""))
                continue
            hit = cache.get(path)
            if hit is not None and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
                results.append(hit[2:])
                report.n_from_cache += 1
            else:
                result = _inspect_image(path, st.st_size)
                cache[path] = (st.st_size, st.st_mtime_ns, *result)
                changed = True
                results.append(result)
            report.n_images_checked += 1
    if cache_file is not None and changed:
        _write_check_cache(cache_file, cache)
    report.check_seconds = time.perf_counter() - start
    return results


# --------------------------------------------------------------------------- CSV rows


@dataclass
class _Row:
    """One data row on its way to the catalog."""

    line: int
    id: str | None
    image_path: str
    values: dict[str, Any]


def _clean(value: str) -> str | None:
    value = value.strip()
    return value if value else None


def _read_csv_rows(csv_path: Path, report: LoadReport) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and field lists of a CSV; extra fields are joined into the last column.

    Rows with too few fields are excluded (reason ``"malformed row: ..."``); blank lines are
    skipped and counted in the notes.
    """
    rows: list[tuple[int, list[str]]] = []
    blank = 0
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"The CSV file is empty. Received: csv_path={os.fspath(csv_path)!r}")
        header = [name.strip() for name in header]
        if "" in header or len(set(header)) != len(header):
            raise ValueError(f"The CSV header has empty or repeated column names: {header}. "
                             f"Received: csv_path={os.fspath(csv_path)!r}")
        n_columns = len(header)
        for fields in reader:
            if not any(f.strip() for f in fields):
                blank += 1
                continue
            report.n_rows_read += 1
            if len(fields) > n_columns:
                fields = fields[: n_columns - 1] + [",".join(fields[n_columns - 1:])]
                report.repaired_ids.append(fields[0].strip())
            elif len(fields) < n_columns:
                _exclude(report, _clean(fields[0]), None,
                         f"malformed row: {len(fields)} fields, expected {n_columns} (line {reader.line_num})",
                         line=reader.line_num)
                continue
            rows.append((reader.line_num, fields))
    if blank:
        report.notes.append(f"{blank} blank line(s) skipped in {csv_path.name}")
    return header, rows


def _exclude(report: LoadReport, row_id: str | None, image_path: str | None, reason: str, *, line: int) -> None:
    report._pending.append((line, row_id, image_path, reason))


def _new_report(source: Path, layout: str) -> LoadReport:
    return LoadReport(source=str(source), layout=layout)


def _to_int64(values: pd.Series, column: str, notes: list[str]) -> pd.Series:
    """``"2014.0"`` -> 2014 as ``Int64``; left unchanged (with a note) if any value is not whole."""
    numbers = pd.to_numeric(values, errors="coerce")
    bad = values.notna() & (numbers.isna() | (numbers % 1 != 0))
    if bad.any():
        examples = values[bad].unique()[:5].tolist()
        notes.append(f"column {column!r} kept as text: {int(bad.sum())} value(s) are not whole numbers, "
                     f"e.g. {examples}")
        return values
    return numbers.round().astype("Int64")


def _finish(rows: list[_Row], columns: list[str], report: LoadReport, *,
            check_images: bool, cache_dir: PathLike | None) -> tuple[pd.DataFrame, LoadReport]:
    """Drop rows without id and duplicates, check images, build the catalog, close the report."""
    candidates: list[_Row] = []
    seen: set[str] = set()
    duplicates: dict[str, None] = {}
    for row in rows:
        if not row.id:
            _exclude(report, row.id, row.image_path, REASON_MISSING_ID, line=row.line)
        elif row.id in seen:
            duplicates[row.id] = None
            _exclude(report, row.id, row.image_path, REASON_DUPLICATE, line=row.line)
        else:
            seen.add(row.id)
            candidates.append(row)
    report.duplicate_ids = list(duplicates)

    checks = _check_images([row.image_path for row in candidates], check_images=check_images,
                           cache_dir=cache_dir, report=report)
    kept: list[_Row] = []
    info: list[tuple] = []
    for row, (reason, width, height, mode, fmt) in zip(candidates, checks):
        if reason:
            _exclude(report, row.id, row.image_path, reason, line=row.line)
        else:
            kept.append(row)
            if check_images:
                info.append((row.id, width, height, mode, fmt))

    data = {"id": [row.id for row in kept], "image_path": [row.image_path for row in kept]}
    for column in columns:
        data[column] = [row.values.get(column) for row in kept]
    catalog = pd.DataFrame(data, columns=["id", "image_path", *columns])
    catalog["id"] = catalog["id"].astype(str)
    catalog["image_path"] = catalog["image_path"].astype(str)
    for column in INTEGER_COLUMNS:
        if column in catalog.columns:
            catalog[column] = _to_int64(catalog[column], column, report.notes)

    pending = sorted(report._pending, key=lambda item: item[0])
    report._pending = []
    report.excluded = pd.DataFrame([item[1:] for item in pending], columns=EXCLUDED_COLUMNS)
    report.image_info = pd.DataFrame(info, columns=IMAGE_INFO_COLUMNS)
    report.n_kept = len(catalog)
    if report.n_rows_read != report.n_kept + report.n_excluded:  # a bug guard, not input validation
        raise RuntimeError(f"LoadReport does not add up: read {report.n_rows_read}, kept {report.n_kept}, "
                           f"excluded {report.n_excluded}")
    return catalog, report


# --------------------------------------------------------------------------- loaders


def _image_index(images_dir: Path, report: LoadReport) -> dict[str, str]:
    """Map file stem -> file name for every image-like file in ``images_dir`` (one listing)."""
    found: dict[str, list[str]] = {}
    for entry in os.scandir(images_dir):
        stem, ext = os.path.splitext(entry.name)
        if ext.lower() in IMAGE_EXTENSIONS and not entry.name.startswith("."):
            found.setdefault(stem, []).append(entry.name)
    rank = {ext: i for i, ext in enumerate(IMAGE_EXTENSIONS)}
    index: dict[str, str] = {}
    n_ambiguous = 0
    for stem, names in found.items():
        if len(names) > 1:
            n_ambiguous += 1
            names.sort(key=lambda name: (rank[os.path.splitext(name)[1].lower()], name))
        index[stem] = names[0]
    if n_ambiguous:
        report.notes.append(f"{n_ambiguous} id(s) have several image files; the first of "
                            f"{', '.join(IMAGE_EXTENSIONS)} was used")
    return index


def load_kaggle_catalog(data_dir: PathLike, *, check_images: bool = True,
                        cache_dir: PathLike | None = None) -> tuple[pd.DataFrame, LoadReport]:
    """Load a Kaggle-layout catalog: ``styles.csv`` + ``images/<id>.<ext>``.

    Args:
        data_dir: the folder holding ``styles.csv`` and ``images/``.
        check_images: check every image cheaply (header and last bytes); if ``False`` only
            the existence of the file is checked.
        cache_dir: folder for the image-check cache (``None``: no cache).

    Returns:
        ``(catalog, report)``: see the module docstring.
    """
    root = Path(data_dir).expanduser().resolve()
    csv_path, images_dir = root / "styles.csv", root / "images"
    if not csv_path.is_file() or not images_dir.is_dir():
        raise ValueError(f"A Kaggle-layout folder holds styles.csv and images/. "
                         f"Received: data_dir={os.fspath(data_dir)!r}")
    report = _new_report(root, "kaggle")
    header, raw_rows = _read_csv_rows(csv_path, report)
    if "id" not in header:
        raise ValueError(f"styles.csv has no 'id' column; its columns are {header}. "
                         f"Received: data_dir={os.fspath(data_dir)!r}")
    id_position = header.index("id")
    attributes = [name for name in header if name != "id"]
    index = _image_index(images_dir, report)
    images_prefix = str(images_dir) + os.sep
    rows = []
    for line, fields in raw_rows:
        values = {name: _clean(value) for name, value in zip(header, fields)}
        row_id = values.pop("id")
        name = index.get(row_id, f"{row_id}.jpg") if row_id else ""
        rows.append(_Row(line, row_id, images_prefix + name if row_id else "", values))
    n_orphans = len(set(index) - {fields[id_position].strip() for _, fields in raw_rows})
    if n_orphans:
        report.notes.append(f"{n_orphans} image file(s) in images/ have no row in styles.csv")
    return _finish(rows, attributes, report, check_images=check_images, cache_dir=cache_dir)


def load_csv_catalog(csv_path: PathLike, *, image_column: str, label_columns: str | Sequence[str],
                     id_column: str | None = None, check_images: bool = True,
                     cache_dir: PathLike | None = None) -> tuple[pd.DataFrame, LoadReport]:
    """Load a catalog from any CSV with an image-path column and label columns.

    Args:
        csv_path: the CSV file.
        image_column: column with image paths, relative to the CSV's folder or absolute.
        label_columns: column(s) to keep as attributes.
        id_column: column with unique ids; ``None``: the image path as written, without its
            extension (``"shirts/001.jpg"`` -> ``"shirts/001"``).
        check_images: see :func:`load_kaggle_catalog`.
        cache_dir: see :func:`load_kaggle_catalog`.

    Returns:
        ``(catalog, report)`` with columns ``id, image_path, *label_columns``.
    """
    path = Path(csv_path).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"No such CSV file. Received: csv_path={os.fspath(csv_path)!r}")
    labels = [label_columns] if isinstance(label_columns, str) else list(label_columns)
    report = _new_report(path, "csv")
    header, raw_rows = _read_csv_rows(path, report)
    wanted = {"image_column": [image_column], "label_columns": labels,
              "id_column": [id_column] if id_column is not None else []}
    for argument, names in wanted.items():
        missing = [name for name in names if name not in header]
        if missing:
            raise ValueError(f"{argument} names columns that are not in the CSV (columns: {header}). "
                             f"Received: {argument}={names if argument == 'label_columns' else names[0]!r}")
    rows = []
    for line, fields in raw_rows:
        values = {name: _clean(value) for name, value in zip(header, fields)}
        written = values[image_column] or ""
        image_path = os.path.normpath(os.path.join(path.parent, written)) if written else ""
        if id_column is not None:
            row_id = values[id_column]
        else:
            row_id = os.path.splitext(written.replace("\\", "/"))[0] or None
        rows.append(_Row(line, row_id, image_path, {name: values[name] for name in labels}))
    return _finish(rows, labels, report, check_images=check_images, cache_dir=cache_dir)


def load_folder_catalog(root: PathLike, *, label_column: str = "label", check_images: bool = True,
                        cache_dir: PathLike | None = None) -> tuple[pd.DataFrame, LoadReport]:
    """Load a folder-per-class tree: ``root/<class>/<file>`` (files in sub-folders count too).

    Hidden files and folders (name starting with ``"."``) are skipped. Files directly under
    ``root`` and files without an image extension are excluded with a reason.

    Args:
        root: the folder whose sub-folders are the classes.
        label_column: name of the class column.
        check_images: see :func:`load_kaggle_catalog`.
        cache_dir: see :func:`load_kaggle_catalog`.

    Returns:
        ``(catalog, report)`` with columns ``id`` (relative path without extension, ``/``-separated),
        ``image_path`` and ``label_column``.
    """
    base = Path(root).expanduser().resolve()
    if not base.is_dir():
        raise FileNotFoundError(f"No such folder. Received: root={os.fspath(root)!r}")
    if not label_column or label_column in ("id", "image_path"):
        raise ValueError(f"label_column must be a name other than 'id' and 'image_path'. "
                         f"Received: label_column={label_column!r}")
    report = _new_report(base, "folder")
    rows: list[_Row] = []
    line = 0
    for entry in sorted(os.scandir(base), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            line += 1
            report.n_rows_read += 1
            _exclude(report, os.path.splitext(entry.name)[0], entry.path, "not in a class folder", line=line)
            continue
        for folder, dirs, files in os.walk(entry.path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if name.startswith("."):
                    continue
                line += 1
                report.n_rows_read += 1
                file_path = os.path.join(folder, name)
                relative = os.path.relpath(file_path, base).replace(os.sep, "/")
                row_id, ext = os.path.splitext(relative)
                if ext.lower() not in IMAGE_EXTENSIONS:
                    _exclude(report, row_id, file_path, f"not an image: file extension {ext or '(none)'!r}", line=line)
                    continue
                rows.append(_Row(line, row_id, file_path, {label_column: entry.name}))
    return _finish(rows, [label_column], report, check_images=check_images, cache_dir=cache_dir)


def _is_kaggle_layout(folder: Path) -> bool:
    return (folder / "styles.csv").is_file() and (folder / "images").is_dir()


def load_catalog(data_dir: PathLike, *, check_images: bool = True,
                 cache_dir: PathLike | None = None) -> tuple[pd.DataFrame, LoadReport]:
    """Load a catalog, detecting its layout.

    ``styles.csv`` + ``images/`` means the Kaggle layout (also one folder down, as the Kaggle
    zip unpacks into ``myntradataset/``); a folder of sub-folders means folder-per-class.

    Args:
        data_dir: the catalog folder.
        check_images: see :func:`load_kaggle_catalog`.
        cache_dir: folder for the image-check cache (notebooks pass ``get_paths(...).interim``).

    Returns:
        ``(catalog, report)``.
    """
    root = Path(data_dir).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"No such catalog folder (run `make data` for the default one). "
                                f"Received: data_dir={os.fspath(data_dir)!r}")
    if _is_kaggle_layout(root):
        return load_kaggle_catalog(root, check_images=check_images, cache_dir=cache_dir)
    subfolders = [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    if len(subfolders) == 1 and _is_kaggle_layout(subfolders[0]):
        return load_kaggle_catalog(subfolders[0], check_images=check_images, cache_dir=cache_dir)
    if [p.name for p in subfolders] == ["images"]:
        raise ValueError(f"Found images/ but no styles.csv (the Kaggle layout needs both). "
                         f"Received: data_dir={os.fspath(data_dir)!r}")
    if subfolders:
        return load_folder_catalog(root, check_images=check_images, cache_dir=cache_dir)
    raise ValueError(f"No catalog found: expected styles.csv + images/ (Kaggle layout) or class "
                     f"sub-folders. Received: data_dir={os.fspath(data_dir)!r}")


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


def _is_ours(folder: Path) -> bool:
    """Written by :func:`prepare_fashion_mnist` (possibly damaged since): marker or our header."""
    if (folder / COMPLETION_MARKER).is_file():
        return True
    try:
        with open(folder / "styles.csv", newline="", encoding="utf-8") as fh:
            return next(csv.reader(fh), None) == FASHION_MNIST_COLUMNS
    except (OSError, UnicodeDecodeError):
        return False


def _remove_stale_temp_dirs(out_dir: Path) -> None:
    """Remove ``.<name>.tmp-<pid>`` folders left by preparations whose process is gone."""
    for tmp in out_dir.parent.glob(f".{out_dir.name}.tmp-*"):
        try:
            pid = int(tmp.name.rsplit("-", 1)[1])
            os.kill(pid, 0)
            alive = pid != os.getpid()
        except (ValueError, ProcessLookupError):
            alive = False
        except PermissionError:
            alive = True
        if not alive:
            shutil.rmtree(tmp, ignore_errors=True)


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
            _is_ours(out) and {p.name for p in out.iterdir()} <= _PREPARED_ENTRIES))):
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
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_dirs(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_fashion_mnist(tmp, arrays, source)
        if out.exists():
            if _is_prepared(out):  # another process finished first
                return out
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            shutil.rmtree(old)
        try:
            os.replace(tmp, out)
        except OSError:
            if not _is_prepared(out):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# --------------------------------------------------------------------------- command line


def _cache_dir_for(data_dir: Path) -> Path:
    """The image-check cache folder the notebooks use for ``data_dir`` (``Paths.interim``)."""
    return config.Paths(data_dir=data_dir, root=config.output_root()).interim


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fashion_utils.data {prepare-fashion-mnist,check} ...``"""
    parser = argparse.ArgumentParser(prog="python -m fashion_utils.data", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prepare = commands.add_parser("prepare-fashion-mnist", help="write Fashion-MNIST in the Kaggle layout")
    prepare.add_argument("--out", type=Path, default=None, help="default: config.default_data_dir()")
    prepare.add_argument("--source", type=Path, default=None, help="folder with the four idx files")
    check = commands.add_parser("check", help="load a catalog and print its load report")
    check.add_argument("data_dir", type=Path)
    check.add_argument("--no-cache", action="store_true", help="do not read or write the check cache")
    args = parser.parse_args(argv)

    if args.command == "prepare-fashion-mnist" and args.out is None and os.environ.get("DATA_DIR") \
            and config.default_data_dir().is_dir() and any(config.default_data_dir().iterdir()) \
            and not _is_ours(config.default_data_dir()):
        # `make data` with DATA_DIR pointing at another catalog (e.g. the Kaggle one): nothing to prepare.
        data_dir = config.default_data_dir()
        print(f"DATA_DIR={data_dir} is another catalog: Fashion-MNIST not prepared")
        cache_dir = _cache_dir_for(data_dir)
    elif args.command == "prepare-fashion-mnist":
        start = time.perf_counter()
        data_dir = prepare_fashion_mnist(args.out or config.default_data_dir(), source_dir=args.source)
        print(f"Fashion-MNIST ready in {data_dir} ({time.perf_counter() - start:.1f} s)")
        cache_dir = _cache_dir_for(data_dir)
    else:
        data_dir = args.data_dir
        cache_dir = None if args.no_cache else _cache_dir_for(args.data_dir.expanduser().resolve())
    _, report = load_catalog(data_dir, cache_dir=cache_dir)
    print(report)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
