"""Evaluation helpers shared by notebooks 03–05, and the metrics files the README reads."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from fashion_utils.config import Paths


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_metrics(name: str, metrics: dict[str, Any], *, paths: Paths) -> Path:
    """Write a notebook's headline numbers to ``<paths.metrics>/<name>.json`` (atomically).

    Args:
        name: the notebook's stem, e.g. ``"03_baseline_cnn"``.
        metrics: JSON-serialisable numbers and strings (NumPy scalars are converted).
        paths: the run's paths.

    Returns:
        The file written.
    """
    if not name or "/" in name:
        raise ValueError(f"name must be a plain file stem. Received: name={name!r}")
    paths.metrics.mkdir(parents=True, exist_ok=True)
    out = paths.metrics / f"{name}.json"
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(_jsonable(metrics), indent=2, sort_keys=False) + "\n")
    tmp.replace(out)
    return out


def read_metrics(name: str, *, paths: Paths) -> dict[str, Any]:
    """Read what :func:`write_metrics` wrote for ``name``."""
    path = paths.metrics / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"No metrics for {name!r} at {path}: run that notebook first.")
    return json.loads(path.read_text())
