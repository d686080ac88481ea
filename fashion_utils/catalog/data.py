"""Catalogs of product images: the loaders and their load report.

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


Images are checked and read by :mod:`fashion_utils.catalog.image_files`; Fashion-MNIST is written in the
Kaggle layout by :mod:`fashion_utils.catalog.fashion_mnist`.

Command line::

    python -m fashion_utils.catalog.data prepare-fashion-mnist [--out DIR] [--source DIR]
    python -m fashion_utils.catalog.data check DATA_DIR [--no-cache]
"""

from __future__ import annotations
import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Sequence
import pandas as pd
from fashion_utils import config
from fashion_utils.catalog.csv_rows import read_csv_rows
from fashion_utils.catalog.fashion_mnist import written_by_prepare, prepare_fashion_mnist
from fashion_utils.catalog.image_files import IMAGE_EXTENSIONS, REASON_DUPLICATE, REASON_MISSING_ID, check_image_files


PathLike = str | os.PathLike


# Columns converted to the nullable integer type (``"2014.0"`` -> 2014).
INTEGER_COLUMNS: tuple[str, ...] = ("year",)
EXCLUDED_COLUMNS: list[str] = ["id", "image_path", "reason"]
IMAGE_INFO_COLUMNS: list[str] = ["id", "width", "height", "mode", "format"]


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
            f"LoadReport ({self.layout} layout): {config.display_path(self.source)}",
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
    """Header and field lists of a CSV (``csv_rows.read_csv_rows``), its exclusions, repairs
    and notes entered into ``report``."""
    read = read_csv_rows(csv_path)
    report.n_rows_read += read.n_rows_read
    report.repaired_ids += read.repaired_ids
    report.notes += read.notes
    for line, row_id, reason in read.excluded:
        _exclude(report, row_id, None, reason, line=line)
    return read.header, read.rows


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

    checks = check_image_files([row.image_path for row in candidates], check_images=check_images,
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

    Raises:
        FileNotFoundError: no such folder.
        ValueError: an empty ``data_dir``, no recognisable layout, or no usable product (every
            row excluded: the message counts the reasons).
    """
    catalog, report = _load_any(data_dir, check_images=check_images, cache_dir=cache_dir)
    if catalog.empty:
        counts = ", ".join(f"{kind}: {n}" for kind, n in report.excluded_counts().items())
        raise ValueError(f"The catalog has no usable product: {report.n_rows_read} row(s) read, "
                         f"{report.n_excluded} excluded ({counts or 'none'}). "
                         f"Received: data_dir={os.fspath(data_dir)!r}")
    return catalog, report


def _load_any(data_dir: PathLike, *, check_images: bool,
              cache_dir: PathLike | None) -> tuple[pd.DataFrame, LoadReport]:
    """:func:`load_catalog`'s layout detection (an empty catalog allowed)."""
    if not os.fspath(data_dir).strip():
        raise ValueError(f"DATA_DIR is empty: pass a catalog folder, or None for the default "
                         f"data. Received: data_dir={os.fspath(data_dir)!r}")
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


# --------------------------------------------------------------------------- command line


def _cache_dir_for(data_dir: Path) -> Path:
    """The image-check cache folder the notebooks use for ``data_dir`` (``Paths.interim``)."""
    return config.Paths(data_dir=data_dir, root=config.output_root()).interim


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fashion_utils.catalog.data {prepare-fashion-mnist,check} ...``"""
    parser = argparse.ArgumentParser(prog="python -m fashion_utils.catalog.data", description=__doc__.split("\n")[0])
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
            and not written_by_prepare(config.default_data_dir()):
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
