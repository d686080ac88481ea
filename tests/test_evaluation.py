"""Evaluation helpers: the report table, macro-F1, bootstrap CI, confusion matrix, metrics files."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score

from fashion_utils import config, evaluation

from conftest import noisy_labels  # noqa: E402

NAMES = ["Apparel", "Footwear", "Accessories"]
_labels = noisy_labels


def test_classification_table_has_the_original_layout():
    y_true, y_pred = _labels()
    table = evaluation.classification_table(y_true, y_pred, class_names=NAMES)
    assert list(table.columns) == ["precision", "recall", "f1-score", "support"]
    assert list(table.index) == [*NAMES, "accuracy", "macro avg", "weighted avg"]
    assert table.loc["accuracy", "f1-score"] == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-3)
    assert table.loc["accuracy", "support"] == len(y_true) == table.loc[NAMES, "support"].sum()
    assert table.loc["macro avg", "f1-score"] == pytest.approx(f1_score(y_true, y_pred, average="macro"), abs=1e-3)
    assert table.loc["Footwear", "precision"] == pytest.approx(
        precision_score(y_true, y_pred, labels=[1], average="macro"), abs=1e-3)


def test_classification_table_takes_string_labels_and_keeps_absent_classes():
    table = evaluation.classification_table(["a", "b", "a"], ["a", "a", "a"], class_names=["a", "b", "c"])
    assert table.loc["c", "support"] == 0 and table.loc["b", "recall"] == 0


@pytest.mark.parametrize("y_true, y_pred, expected", [
    ([0, 1, 2, 0], [0, 1, 2, 0], 1.0),
    ([0, 0, 1, 1], [0, 1, 1, 1], (2 / 3 + 0.8) / 2),
])
def test_macro_f1(y_true, y_pred, expected):
    assert evaluation.macro_f1(y_true, y_pred) == pytest.approx(expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bootstrap_ci_contains_the_accuracy_and_is_deterministic(seed):
    y_true, y_pred = _labels(seed=seed)
    accuracy = np.mean(y_true == y_pred)
    low, high = evaluation.bootstrap_accuracy_ci(y_true, y_pred, n_boot=500, seed=seed)
    assert low <= accuracy <= high and 0 < high - low < 0.15
    assert (low, high) == evaluation.bootstrap_accuracy_ci(y_true, y_pred, n_boot=500, seed=seed)
    wide = evaluation.bootstrap_accuracy_ci(y_true, y_pred, n_boot=500, seed=seed, level=0.99)
    assert wide[0] <= low and wide[1] >= high


def test_bootstrap_ci_of_a_perfect_classifier_is_a_point():
    assert evaluation.bootstrap_accuracy_ci([1, 2, 3], [1, 2, 3], n_boot=50) == (1.0, 1.0)


@pytest.mark.parametrize("kwargs, match", [({"n_boot": 5}, "n_boot=5"), ({"level": 1.5}, "level=1.5")])
def test_bootstrap_ci_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        evaluation.bootstrap_accuracy_ci([0, 1], [0, 1], **kwargs)


def test_mismatched_labels_are_rejected():
    with pytest.raises(ValueError, match="equal length"):
        evaluation.macro_f1([0, 1], [0])
    with pytest.raises(ValueError, match="0 labels"):
        evaluation.classification_table([], [])


def test_headline_metrics_and_comparison_table():
    y_true, y_pred = _labels()
    metrics = evaluation.headline_metrics(y_true, y_pred, n_boot=200)
    assert set(metrics) == {"accuracy", "macro_f1", "ci_low", "ci_high", "n_test"}
    assert metrics["n_test"] == 300
    table = evaluation.comparison_table({"baseline": metrics})
    assert list(table.columns) == ["accuracy", "95% CI", "macro_f1", "n_test"]
    # the original study's row comes first, with no interval (it reported none), and goes
    # away on request; every other row is its own metrics, rounded
    assert list(table.index) == ["original study (Kaggle, masterCategory)", "baseline"]
    original = table.iloc[0]
    assert (original["accuracy"], original["macro_f1"]) == (
        evaluation.ORIGINAL_STUDY["accuracy"], evaluation.ORIGINAL_STUDY["macro_f1"])
    assert original["95% CI"] == "" and original["n_test"] == ""
    assert table.loc["baseline", "accuracy"] == round(metrics["accuracy"], 3)
    assert table.loc["baseline", "macro_f1"] == round(metrics["macro_f1"], 3)
    assert table.loc["baseline", "95% CI"] == f"{metrics['ci_low']:.3f}–{metrics['ci_high']:.3f}"
    alone = evaluation.comparison_table({"baseline": metrics}, include_original=False, digits=4)
    assert list(alone.index) == ["baseline"]
    assert alone.loc["baseline", "accuracy"] == round(metrics["accuracy"], 4)
    with pytest.raises(ValueError, match="macro_f1"):
        evaluation.comparison_table({"broken": {"accuracy": 1.0}})


@pytest.mark.parametrize("normalize", [False, True])
def test_confusion_matrix_table_counts_or_recalls(normalize):
    y_true, y_pred = _labels()
    table = evaluation.confusion_matrix_table(y_true, y_pred, class_names=NAMES, normalize=normalize)
    assert list(table.index) == NAMES and list(table.columns) == NAMES
    if normalize:
        np.testing.assert_allclose(table.sum(axis=1), 1.0)
    else:
        assert table.to_numpy().sum() == len(y_true)
        assert table.loc["Apparel", "Apparel"] == np.sum((y_true == 0) & (y_pred == 0))


def test_misclassified_sample_is_seeded_and_names_the_classes():
    shown, titles, n_wrong = evaluation.misclassified_sample([0, 1, 2, 0, 1], [0, 2, 2, 1, 1],
                                                             class_names=NAMES)
    assert n_wrong == 2 and shown.tolist() == [1, 3]
    assert titles == ["Footwear →\nAccessories", "Apparel →\nFootwear"]
    y_true, y_pred = _labels(error_rate=0.5)
    first = evaluation.misclassified_sample(y_true, y_pred, max_images=5, seed=3)[0]
    assert first.tolist() == evaluation.misclassified_sample(y_true, y_pred, max_images=5, seed=3)[0].tolist()
    assert len(first) == 5 and all(y_true[i] != y_pred[i] for i in first)


def test_write_and_read_metrics(tmp_path):
    paths = config.Paths(data_dir=tmp_path / "d", root=tmp_path).ensure()
    out = evaluation.write_metrics("03_baseline_cnn", {"accuracy": np.float32(0.5), "ci_low": float("nan")},
                                   paths=paths)
    assert out.name == "03_baseline_cnn.json"
    assert evaluation.read_metrics("03_baseline_cnn", paths=paths) == {"accuracy": 0.5, "ci_low": None}
