"""Evaluation helpers: the report table, macro-F1, bootstrap CI, confusion matrix, metrics files."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.metrics import accuracy_score, f1_score, precision_score  # noqa: E402

from fashion_utils import config, evaluation  # noqa: E402

NAMES = ["Apparel", "Footwear", "Accessories"]


def _labels(n=300, error_rate=0.1, seed=0):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 3, n)
    y_pred = np.where(rng.random(n) < error_rate, rng.integers(0, 3, n), y_true)
    return y_true, y_pred


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
    assert table.iloc[0]["accuracy"] == 0.959 and table.iloc[0]["macro_f1"] == 0.92
    assert table.loc["baseline", "accuracy"] == round(metrics["accuracy"], 3)
    with pytest.raises(ValueError, match="macro_f1"):
        evaluation.comparison_table({"broken": {"accuracy": 1.0}})


@pytest.mark.parametrize("normalize", [False, True])
def test_confusion_matrix_heatmap(normalize):
    y_true, y_pred = _labels()
    fig, ax = plt.subplots()
    out = evaluation.plot_confusion_matrix(y_true, y_pred, class_names=NAMES, normalize=normalize, ax=ax)
    assert out is ax
    values = np.asarray(ax.collections[0].get_array()).reshape(3, 3)
    if normalize:
        np.testing.assert_allclose(values.sum(axis=1), 1.0)
    else:
        assert values.sum() == len(y_true)
    assert [t.get_text() for t in ax.get_xticklabels()] == NAMES
    plt.close(fig)


def test_misclassified_grid(tmp_path):
    paths = []
    for i in range(5):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(paths[-1])
    fig = evaluation.misclassified_grid(paths, [0, 1, 2, 0, 1], [0, 2, 2, 1, 1], class_names=NAMES)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["Footwear →\nAccessories", "Apparel →\nFootwear"]
    plt.close(fig)
    empty = evaluation.misclassified_grid(paths, [0] * 5, [0] * 5)
    assert "No misclassified" in empty.axes[0].texts[0].get_text()
    plt.close(empty)


def test_write_and_read_metrics(tmp_path):
    paths = config.Paths(data_dir=tmp_path / "d", root=tmp_path).ensure()
    out = evaluation.write_metrics("03_baseline_cnn", {"accuracy": np.float32(0.5), "ci_low": float("nan")},
                                   paths=paths)
    assert out.name == "03_baseline_cnn.json"
    assert evaluation.read_metrics("03_baseline_cnn", paths=paths) == {"accuracy": 0.5, "ci_low": None}
