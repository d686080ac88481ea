"""Reading a catalog's CSV into field lists: encodings, stray commas, malformed rows.

:func:`read_csv_rows` is what every CSV catalog loader (``data.load_kaggle_catalog``,
``data.load_csv_catalog``) reads through. It never drops a row silently: each one it does not
return is in :attr:`CsvRows.excluded` with its line and reason, and each repair is counted.

- **Encoding**: UTF-8 (a BOM allowed); a file that is not UTF-8 is decoded as Windows-1252
  (Latin-1 for the five bytes that lacks) with a note counting the lines with non-ASCII bytes.
- **Extra fields**: the real Kaggle ``styles.csv`` has unquoted commas in its last column
  (``productDisplayName``); such a row's extra fields are joined back into the last column.
  Every other place they could be joined is scored too — how many fields then hold a value
  their column has in the well-formed rows (categorical columns) or a number (numeric
  columns) — and when another place fits better, the stray comma sits in another column, the
  values would be shifted, and the row is excluded instead.
- **Too few fields**: excluded. Blank lines are skipped and counted in the notes.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CsvRows", "read_csv_rows"]


@dataclass
class CsvRows:
    """What :func:`read_csv_rows` read.

    Attributes:
        header: the column names (stripped).
        rows: ``(line number, fields)`` of each usable row, fields as strings.
        n_rows_read: non-blank data rows read (``len(rows) + len(excluded)``).
        excluded: ``(line number, id or None, reason)`` of each row left out.
        repaired_ids: first field of each row whose extra fields were joined into the last
            column.
        notes: anything else worth knowing (encoding, blank lines).
    """

    header: list[str]
    rows: list[tuple[int, list[str]]] = field(default_factory=list)
    n_rows_read: int = 0
    excluded: list[tuple[int, str | None, str]] = field(default_factory=list)
    repaired_ids: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _read_text(path: Path, notes: list[str]) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        lines = sum(1 for line in raw.splitlines() if any(b > 127 for b in line))
        try:
            text, encoding = raw.decode("cp1252"), "Windows-1252"
        except UnicodeDecodeError:
            text, encoding = raw.decode("latin-1"), "Latin-1"
        notes.append(f"{path.name} is not UTF-8 (first bad byte at offset {err.start}): "
                     f"decoded as {encoding}; {lines} line(s) hold non-ASCII bytes")
        return text


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


_NUMBER = "<number>"


def _column_values(rows: list[tuple[int, list[str]]], n_columns: int) -> dict[int, set[str]]:
    """For each column but the last, what a repaired row's field is checked against: the
    well-formed rows' values when the column looks categorical (at most max(50, rows / 10)
    distinct values), or ``{"<number>"}`` when every value is a number; other columns are
    not checked."""
    wellformed = [fields for _, fields in rows if len(fields) == n_columns]
    limit = max(50, len(wellformed) // 10)
    out: dict[int, set[str]] = {}
    for j in range(n_columns - 1):
        values = {fields[j].strip() for fields in wellformed} - {""}
        if values and all(_is_number(v) for v in values):
            out[j] = {_NUMBER}
        elif 0 < len(values) <= limit:
            out[j] = values
    return out


def _score(fields: list[str], known: dict[int, set[str]]) -> int:
    """How many checked fields hold a value their column has elsewhere (blanks count)."""
    score = 0
    for j, values in known.items():
        value = fields[j].strip()
        if not value or (_is_number(value) if values == {_NUMBER} else value in values):
            score += 1
    return score


def _joined_at(fields: list[str], j: int, n_columns: int) -> list[str]:
    """The fields with the extra ones joined (by commas) into column ``j``."""
    extra = len(fields) - n_columns
    return fields[:j] + [",".join(fields[j:j + extra + 1])] + fields[j + extra + 1:]


def _clean_id(value: str) -> str | None:
    return value.strip() or None


def read_csv_rows(csv_path: str | os.PathLike) -> CsvRows:
    """Read a catalog CSV (see the module docstring).

    Raises:
        ValueError: an empty file, or a header with empty or repeated names (the path named).
    """
    path = Path(csv_path)
    notes: list[str] = []
    reader = csv.reader(io.StringIO(_read_text(path, notes), newline=""))
    header = next(reader, None)
    if header is None:
        raise ValueError(f"The CSV file is empty. Received: csv_path={os.fspath(csv_path)!r}")
    header = [name.strip() for name in header]
    if "" in header or len(set(header)) != len(header):
        raise ValueError(f"The CSV header has empty or repeated column names: {header}. "
                         f"Received: csv_path={os.fspath(csv_path)!r}")
    out = CsvRows(header=header, notes=notes)
    n_columns, candidates, blank = len(header), [], 0
    for fields in reader:
        if not any(f.strip() for f in fields):
            blank += 1
            continue
        out.n_rows_read += 1
        if len(fields) < n_columns:
            out.excluded.append((reader.line_num, _clean_id(fields[0]),
                                 f"malformed row: {len(fields)} fields, expected {n_columns} "
                                 f"(line {reader.line_num})"))
        else:
            candidates.append((reader.line_num, fields))
    long_rows = any(len(fields) > n_columns for _, fields in candidates)
    known = _column_values(candidates, n_columns) if long_rows else {}
    for line, fields in candidates:
        if len(fields) > n_columns:
            joined = _joined_at(fields, n_columns - 1, n_columns)
            best_elsewhere = max((_score(_joined_at(fields, j, n_columns), known)
                                  for j in range(n_columns - 1)), default=-1)
            if _score(joined, known) < best_elsewhere:
                out.excluded.append((line, _clean_id(fields[0]), (
                    f"malformed row: {len(fields)} fields, expected {n_columns}; the extra "
                    f"comma fits another column better than {header[-1]!r}, so the values "
                    f"would be shifted (line {line})")))
                continue
            fields = joined
            out.repaired_ids.append(fields[0].strip())
        out.rows.append((line, fields))
    if blank:
        out.notes.append(f"{blank} blank line(s) skipped in {path.name}")
    return out
