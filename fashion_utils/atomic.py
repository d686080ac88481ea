"""Atomic file writes: write to a temporary name beside the target, then rename.

A reader never sees a half-written file, and a failure leaves the previous file (if any)
untouched and no temporary file behind.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pandas as pd


@contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``.

    Args:
        path: the final file.
        suffix: extension for the temporary name, for writers that insist on one (``".npy"``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: Any, *, indent: int = 2) -> Path:
    """Write ``obj`` as JSON (with a final newline) atomically; returns the path."""
    return write_text_atomic(path, json.dumps(obj, indent=indent) + "\n")


def write_csv_atomic(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``frame`` as CSV without its index, atomically; returns the path."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(path)
