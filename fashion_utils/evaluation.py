"""Evaluation helpers shared by notebooks 03–05, and the metrics files the README reads.

Classification: :func:`classification_table` (the original study's table layout),
:func:`macro_f1`, :func:`wilson_interval`, :func:`headline_metrics`; the tests a claim needs:
:func:`mcnemar_test`, :func:`welch_test`, :func:`paired_test`, :func:`verdict` (:data:`ALPHA`,
:data:`MIN_EFFECT`);
:func:`comparison_table` (beside the original study's 0.959 accuracy / 0.92 macro-F1),
:func:`plot_confusion_matrix` (counts or row-normalised, ``ax=``), :func:`misclassified_grid`.
Metrics files: :func:`write_metrics`, :func:`read_metrics`.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from fashion_utils.atomic import write_csv_atomic, write_json_atomic
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


def predictions_path(name: str, *, paths: Paths) -> Path:
    """Where :func:`write_predictions` keeps a model's test-side predictions."""
    if not name or "/" in name:
        raise ValueError(f"name must be a plain file stem. Received: name={name!r}")
    return paths.processed / "predictions" / f"{name}.csv"


def write_predictions(name: str, *, ids: Sequence[Any], y_true: Any, y_pred: Any,
                      paths: Paths) -> Path:
    """A model's test-side predictions per item (``id, true, predicted``), for a later paired
    test against another model on the same items (:func:`mcnemar_test`)."""
    y_true, y_pred = _labels(y_true, y_pred)
    if len(ids) != len(y_true):
        raise ValueError(f"ids and labels differ in length: {len(ids)} and {len(y_true)}")
    table = pd.DataFrame({"id": [str(i) for i in ids], "true": y_true, "predicted": y_pred})
    return write_csv_atomic(table, predictions_path(name, paths=paths))


def read_predictions(name: str, *, paths: Paths) -> pd.DataFrame:
    """What :func:`write_predictions` wrote for ``name`` (ids as strings)."""
    path = predictions_path(name, paths=paths)
    if not path.exists():
        raise FileNotFoundError(f"No test predictions {name!r} at {path}: run that notebook first.")
    return pd.read_csv(path, dtype={"id": str, "true": str, "predicted": str})


# --------------------------------------------------------------------------- classification metrics

#: The original study's headline numbers (Kaggle catalog, masterCategory, 20% test split).
ORIGINAL_STUDY: dict[str, float] = {"accuracy": 0.959, "macro_f1": 0.92}
#: The attribute the original study predicted: its row compares only there.
ORIGINAL_TARGET = "masterCategory"
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


#: A difference is stated as a gain or a loss only when its test gives p below this ...
ALPHA: float = 0.05
#: ... and it is at least this large (absolute accuracy: 0.2 percentage points).
MIN_EFFECT: float = 0.002
#: What a sentence says when a test does not support a difference.
NO_DIFFERENCE = "no difference we can detect"


def wilson_interval(correct: int, n: int, *, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (``correct`` of ``n``), from scipy."""
    from scipy.stats import binomtest

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer. Received: n={n!r}")
    if isinstance(correct, bool) or not isinstance(correct, (int, np.integer)) \
            or not 0 <= correct <= n:
        raise ValueError(f"correct must be an integer in [0, n={n}]. Received: {correct!r}")
    if not isinstance(level, float) or not 0 < level < 1:
        raise ValueError(f"level must be a float with 0 < x < 1. Received: level={level!r}")
    ci = binomtest(int(correct), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def accuracy_interval(y_true: Any, y_pred: Any, *, level: float = 0.95) -> tuple[float, float]:
    """The accuracy's Wilson interval (:func:`wilson_interval`) on these test items."""
    y_true, y_pred = _labels(y_true, y_pred)
    return wilson_interval(int(np.sum(y_true == y_pred)), len(y_true), level=level)


def headline_metrics(y_true: Any, y_pred: Any, *, level: float = 0.95) -> dict[str, float | int]:
    """Accuracy, macro-F1, the Wilson interval's bounds, the counts of correct and test items."""
    y_true, y_pred = _labels(y_true, y_pred)
    low, high = accuracy_interval(y_true, y_pred, level=level)
    return {"accuracy": float(np.mean(y_true == y_pred)), "macro_f1": macro_f1(y_true, y_pred),
            "ci_low": low, "ci_high": high, "n_correct": int(np.sum(y_true == y_pred)),
            "n_test": int(len(y_true))}


def mcnemar_test(correct_a: Any, correct_b: Any) -> dict[str, float | int]:
    """McNemar's exact test for two models scored on the same items.

    Args:
        correct_a, correct_b: per item, whether model a (b) got it right, in one item order.

    Returns:
        ``{"difference": accuracy b - a, "a_only": items only a got right, "b_only": items only
        b got right, "p_value": the two-sided exact binomial p on the discordant items}``.
    """
    from scipy.stats import binomtest

    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.ndim != 1 or a.shape != b.shape or not len(a):
        raise ValueError(f"correct_a and correct_b must be equal, non-empty 1-d sequences. "
                         f"Received shapes {a.shape} and {b.shape}")
    a_only, b_only = int(np.sum(a & ~b)), int(np.sum(b & ~a))
    p = binomtest(b_only, a_only + b_only).pvalue if a_only + b_only else 1.0
    return {"difference": float(b.mean() - a.mean()), "a_only": a_only, "b_only": b_only,
            "n": int(len(a)), "p_value": float(p)}


def welch_test(a: Sequence[float], b: Sequence[float]) -> dict[str, float | int | None]:
    """Welch's t-test (unequal variances) of b against a, e.g. accuracies over seeds.

    Returns:
        ``{"difference": mean b - mean a, "t": ..., "p_value": two-sided p, "n_a", "n_b"}``;
        ``t`` and ``p_value`` are None when neither side varies (the test is undefined).
    """
    from scipy.stats import ttest_ind

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 1 or b.ndim != 1 or len(a) < 2 or len(b) < 2:
        raise ValueError(f"a and b need at least 2 values each. Received {a.tolist()} and "
                         f"{b.tolist()}")
    diff = float(b.mean() - a.mean())
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return {"difference": diff, "t": None, "p_value": None, "n_a": len(a), "n_b": len(b)}
    with warnings.catch_warnings():  # near-equal seeds: scipy warns of precision, p stands
        warnings.simplefilter("ignore", RuntimeWarning)
        result = ttest_ind(b, a, equal_var=False)
    return {"difference": diff, "t": float(result.statistic), "p_value": float(result.pvalue),
            "n_a": len(a), "n_b": len(b)}


def paired_test(a: Sequence[float], b: Sequence[float]) -> dict[str, float | int | None]:
    """The paired t-test of b against a on the same items (e.g. per-query precision@5).

    Returns:
        ``{"mean_a", "mean_b", "difference": mean b - mean a, "t", "p_value", "n"}``; ``t``
        and ``p_value`` are None when a and b agree on every item.
    """
    from scipy.stats import ttest_rel

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape or len(a) < 2:
        raise ValueError(f"a and b must be equal 1-d sequences of at least 2 values. "
                         f"Received shapes {a.shape} and {b.shape}")
    out = {"mean_a": float(a.mean()), "mean_b": float(b.mean()),
           "difference": float(b.mean() - a.mean()), "t": None, "p_value": None, "n": len(a)}
    if np.any(a != b):
        result = ttest_rel(b, a)
        out.update(t=float(result.statistic), p_value=float(result.pvalue))
    return out


def verdict(difference: float, p_value: float | None, *, better: str = "helped",
            worse: str = "hurt", min_effect: float = MIN_EFFECT, alpha: float = ALPHA) -> str:
    """``better`` or ``worse`` only when the test supports it (p < ``alpha``) and the difference
    is at least ``min_effect``; :data:`NO_DIFFERENCE` when the test does not support it; and,
    when it does but the difference is smaller than ``min_effect``, a phrase saying so (no
    claim either way)."""
    if p_value is None or not p_value < alpha:
        return NO_DIFFERENCE
    if abs(difference) < min_effect:
        return f"a difference the test detects, smaller than the {min_effect:g} we state: no claim"
    return better if difference > 0 else worse


def p_text(p_value: float | None) -> str:
    """A p-value as a sentence gives it: ``p = 0.031``, ``p < 0.001``, or why there is none."""
    if p_value is None:
        return "no p-value: no seed varied"
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"


def comparison_table(results: Mapping[str, Mapping[str, Any]], *, target: str | None = None,
                     digits: int = 3) -> pd.DataFrame:
    """Headline numbers side by side; the original study's row first where it compares.

    Args:
        results: ``{row name: metrics}`` where metrics has ``accuracy``, ``macro_f1`` and
            optionally ``ci_low``, ``ci_high``, ``n_test`` (e.g. :func:`headline_metrics`).
        target: the predicted attribute; the original study's row (:data:`ORIGINAL_STUDY`)
            is added only for its own target, :data:`ORIGINAL_TARGET`.
        digits: rounding.

    Returns:
        Rows per result; columns ``accuracy, 95% CI, macro_f1, n_test``.
    """
    rows = ({"original study (Kaggle, masterCategory)": dict(ORIGINAL_STUDY)}
            if target == ORIGINAL_TARGET else {})
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
