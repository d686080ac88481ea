"""Evaluation helpers shared by notebooks 03–05, and the metrics files the README reads.

Classification: :func:`classification_table` (the original study's table layout),
:func:`macro_f1`, :func:`bootstrap_accuracy_ci`, :func:`headline_metrics`,
:func:`comparison_table` (beside the original study's 0.959 accuracy / 0.92 macro-F1),
:func:`plot_confusion_matrix` (counts or row-normalised, ``ax=``), :func:`misclassified_grid`.
Metrics files: :func:`write_metrics`, :func:`read_metrics`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from fashion_utils.atomic import write_json_atomic
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
    return write_json_atomic(paths.metrics / f"{name}.json", _jsonable(metrics))


def read_metrics(name: str, *, paths: Paths) -> dict[str, Any]:
    """Read what :func:`write_metrics` wrote for ``name``."""
    path = paths.metrics / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"No metrics for {name!r} at {path}: run that notebook first.")
    return json.loads(path.read_text())


# --------------------------------------------------------------------------- classification metrics

#: The original study's headline numbers (Kaggle catalog, masterCategory, 20% test split).
ORIGINAL_STUDY: dict[str, float] = {"accuracy": 0.959, "macro_f1": 0.92}
REPORT_COLUMNS: list[str] = ["precision", "recall", "f1-score", "support"]


def _labels(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim != 1 or y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must be 1-D and of equal length. Received shapes: "
                         f"{y_true.shape} and {y_pred.shape}")
    if y_true.size == 0:
        raise ValueError("Nothing to evaluate. Received: 0 labels")
    return y_true, y_pred


def _label_order(y_true: np.ndarray, y_pred: np.ndarray,
                 class_names: Sequence[str] | None) -> tuple[list[Any], list[str]]:
    """Label values and their display names: integer labels index ``class_names``."""
    if class_names is not None and np.issubdtype(y_true.dtype, np.integer):
        return list(range(len(class_names))), [str(c) for c in class_names]
    labels = list(class_names) if class_names is not None else sorted(set(y_true) | set(y_pred), key=str)
    return labels, [str(c) for c in labels]


def classification_table(y_true: Any, y_pred: Any, *, class_names: Sequence[str] | None = None,
                         digits: int = 3) -> pd.DataFrame:
    """scikit-learn's classification report laid out like the original study's table.

    Args:
        y_true, y_pred: labels (names, or integer indices into ``class_names``).
        class_names: the classes in display order.
        digits: rounding of precision, recall and F1.

    Returns:
        Rows: one per class, then ``accuracy``, ``macro avg``, ``weighted avg``; columns
        ``precision, recall, f1-score, support``. The accuracy row holds the accuracy in the
        F1 column and the total in ``support`` (as scikit-learn prints it).
    """
    from sklearn.metrics import classification_report

    y_true, y_pred = _labels(y_true, y_pred)
    labels, names = _label_order(y_true, y_pred, class_names)
    report = classification_report(y_true, y_pred, labels=labels, target_names=names,
                                   output_dict=True, zero_division=0)
    accuracy = float(np.mean(y_true == y_pred))
    rows = {name: report[name] for name in names}
    rows["accuracy"] = {"precision": np.nan, "recall": np.nan, "f1-score": accuracy, "support": len(y_true)}
    rows["macro avg"] = report["macro avg"]
    rows["weighted avg"] = report["weighted avg"]
    table = pd.DataFrame.from_dict(rows, orient="index")[REPORT_COLUMNS]
    table[REPORT_COLUMNS[:3]] = table[REPORT_COLUMNS[:3]].round(digits)
    table["support"] = table["support"].astype(int)
    return table


def macro_f1(y_true: Any, y_pred: Any) -> float:
    """The unweighted mean of the per-class F1 scores."""
    from sklearn.metrics import f1_score

    y_true, y_pred = _labels(y_true, y_pred)
    return float(f1_score(y_true, y_pred, average="macro", zero_division=0))


def bootstrap_accuracy_ci(y_true: Any, y_pred: Any, *, n_boot: int = 1000, seed: int = 42,
                          level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the accuracy (test items resampled).

    Args:
        y_true, y_pred: labels of the test items.
        n_boot: bootstrap resamples.
        seed: random seed (same inputs and seed, same interval).
        level: coverage, e.g. 0.95.

    Returns:
        ``(low, high)``.
    """
    y_true, y_pred = _labels(y_true, y_pred)
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 10:
        raise ValueError(f"n_boot must be an integer >= 10. Received: n_boot={n_boot!r}")
    if not isinstance(level, float) or not 0 < level < 1:
        raise ValueError(f"level must be a float with 0 < x < 1. Received: level={level!r}")
    correct = (y_true == y_pred).astype(np.float64)
    rng = np.random.default_rng(seed)
    means, chunk = [], max(1, 2_000_000 // len(correct))
    for lo in range(0, n_boot, chunk):
        idx = rng.integers(0, len(correct), size=(min(chunk, n_boot - lo), len(correct)))
        means.append(correct[idx].mean(axis=1))
    boots = np.concatenate(means)
    alpha = (1 - level) / 2
    low, high = np.quantile(boots, [alpha, 1 - alpha])
    return float(low), float(high)


def headline_metrics(y_true: Any, y_pred: Any, *, n_boot: int = 1000, seed: int = 42,
                     level: float = 0.95) -> dict[str, float | int]:
    """Accuracy, macro-F1, the bootstrap CI bounds and the number of test items."""
    y_true, y_pred = _labels(y_true, y_pred)
    low, high = bootstrap_accuracy_ci(y_true, y_pred, n_boot=n_boot, seed=seed, level=level)
    return {"accuracy": float(np.mean(y_true == y_pred)), "macro_f1": macro_f1(y_true, y_pred),
            "ci_low": low, "ci_high": high, "n_test": int(len(y_true))}


def comparison_table(results: Mapping[str, Mapping[str, Any]], *,
                     include_original: bool = True, digits: int = 3) -> pd.DataFrame:
    """Headline numbers side by side, with the original study's first.

    Args:
        results: ``{row name: metrics}`` where metrics has ``accuracy``, ``macro_f1`` and
            optionally ``ci_low``, ``ci_high``, ``n_test`` (e.g. :func:`headline_metrics`).
        include_original: add the original study's row (:data:`ORIGINAL_STUDY`).
        digits: rounding.

    Returns:
        Rows per result; columns ``accuracy, 95% CI, macro_f1, n_test``.
    """
    rows = {"original study (Kaggle, masterCategory)": dict(ORIGINAL_STUDY)} if include_original else {}
    rows.update({name: dict(metrics) for name, metrics in results.items()})
    table = []
    for name, m in rows.items():
        if "accuracy" not in m or "macro_f1" not in m:
            raise ValueError(f"{name!r} needs 'accuracy' and 'macro_f1'. Received keys: {sorted(m)}")
        ci = (f"{m['ci_low']:.{digits}f}–{m['ci_high']:.{digits}f}"
              if m.get("ci_low") is not None and m.get("ci_high") is not None else "")
        table.append({"": name, "accuracy": round(float(m["accuracy"]), digits), "95% CI": ci,
                      "macro_f1": round(float(m["macro_f1"]), digits),
                      "n_test": m.get("n_test", "")})
    return pd.DataFrame(table).set_index("")


# --------------------------------------------------------------------------- what figures show


def confusion_matrix_table(y_true: Any, y_pred: Any, *, class_names: Sequence[str] | None = None,
                           normalize: bool = False) -> pd.DataFrame:
    """The confusion matrix as a table (rows: true class, columns: predicted class).

    Args:
        y_true, y_pred: labels (names, or integer indices into ``class_names``).
        class_names: the classes in display order.
        normalize: divide each row by its total (recall on the diagonal).
    """
    from sklearn.metrics import confusion_matrix

    y_true, y_pred = _labels(y_true, y_pred)
    labels, names = _label_order(y_true, y_pred, class_names)
    matrix = confusion_matrix(y_true, y_pred, labels=labels).astype(float)
    if normalize:
        totals = matrix.sum(axis=1, keepdims=True)
        matrix = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    return pd.DataFrame(matrix, index=pd.Index(names, name="true"),
                        columns=pd.Index(names, name="predicted"))


def misclassified_sample(y_true: Any, y_pred: Any, *, class_names: Sequence[str] | None = None,
                         max_images: int = 24, seed: int = 42) -> tuple[np.ndarray, list[str], int]:
    """A seeded random choice of misclassified rows, for a figure.

    Returns:
        ``(positions, titles, n_wrong)``: sorted row positions (at most ``max_images``), a
        ``"true →\npredicted"`` title for each, and how many rows are misclassified in all.
    """
    y_true, y_pred = _labels(y_true, y_pred)
    wrong = np.flatnonzero(y_true != y_pred)
    rng = np.random.default_rng(seed)
    shown = np.sort(rng.choice(wrong, size=min(max_images, wrong.size), replace=False))

    def name(v: Any) -> str:
        if class_names is not None and isinstance(v, (int, np.integer)):
            return str(class_names[v])
        return str(v)

    return shown, [f"{name(y_true[i])} →\n{name(y_pred[i])}" for i in shown], int(wrong.size)
