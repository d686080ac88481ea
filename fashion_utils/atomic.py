"""Atomic file writes: write to a temporary name beside the target, then rename.

A reader never sees a half-written file or folder, and a failure leaves the previous one (if
any) untouched and no temporary file behind. This is the package's only ``os.replace``.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
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
    remove_stale_temporaries(path)  # what a killed writer of this file left behind
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


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: Any, *, indent: int = 2) -> Path:
    """Write ``obj`` as JSON (with a final newline) atomically; returns the path."""
    return write_text_atomic(path, json.dumps(obj, indent=indent) + "\n")


def write_csv_atomic(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``frame`` as CSV without its index, atomically; returns the path."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(path)


def save_npy_atomic(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Save ``array`` as ``.npy`` atomically; returns the path."""
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, array)
    return Path(path)


def temporary_dir_for(path: str | os.PathLike, *, tag: str = "tmp") -> Path:
    """The temporary name :func:`atomic_dir` uses for ``path`` in this process."""
    path = Path(path)
    return path.with_name(f".{path.name}.{tag}-{os.getpid()}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's live process
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary siblings of ``path`` (``.<name>.tmp-<pid>[suffix]`` of
    :func:`atomic_path`, ``.<name>.tmp-<pid>`` / ``.old-<pid>`` of :func:`atomic_dir`) whose
    process is gone: what a killed writer left behind. Returns what was deleted."""
    path = Path(path)
    removed = []
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(?:tmp|old)-(\d+)(?:\.\w+)?$")
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*-*") if path.parent.is_dir() else []:
        match = pattern.match(tmp.name)
        if not match:
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and not _alive(pid):
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def remove_stale_temporaries_in(folder: str | os.PathLike) -> list[Path]:
    """:func:`remove_stale_temporaries` for every target in ``folder``: each temporary name
    (``.<name>.tmp-<pid>...`` / ``.old-<pid>``) whose writer is gone. Returns what was deleted."""
    folder = Path(folder)
    targets = {re.sub(r"\.(?:tmp|old)-\d+(?:\.\w+)?$", "", p.name[1:])
               for p in folder.glob(".*-*") if re.search(r"\.(?:tmp|old)-\d+", p.name)}
    return [p for name in sorted(targets) for p in remove_stale_temporaries(folder / name)]


@contextmanager
def atomic_dir(path: str | os.PathLike, *, replace: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder to fill; on success it becomes ``path``.

    Temporary folders of earlier writers that died are removed first.

    Args:
        path: the final folder.
        replace: replace an existing ``path`` (moved aside, then deleted); without it an
            existing *empty* folder is replaced and any other raises ``FileExistsError``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = temporary_dir_for(path)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            if not replace and any(path.iterdir()):
                raise FileExistsError(f"{path} exists and is not empty; not replacing it")
            old = temporary_dir_for(path, tag="old")
            os.replace(path, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
