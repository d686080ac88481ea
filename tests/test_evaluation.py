"""Evaluation helpers: the report table, macro-F1, Wilson intervals, the tests behind a claim,
confusion matrix, metrics and prediction files."""

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


@pytest.mark.parametrize("correct, n", [(0, 10), (7, 10), (10, 10), (9975, 10_000), (233, 236)])
def test_wilson_interval_matches_the_formula_and_holds_the_proportion(correct, n):
    low, high = evaluation.wilson_interval(correct, n)
    p, z = correct / n, 1.959963984540054
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert (low, high) == pytest.approx((centre - half, centre + half), abs=1e-9)
    assert 0 <= low <= p <= high <= 1
    wide = evaluation.wilson_interval(correct, n, level=0.99)
    assert wide[0] <= low and wide[1] >= high


def test_wilson_interval_of_the_labels_and_a_perfect_classifier():
    y_true, y_pred = _labels()
    correct = int(np.sum(np.asarray(y_true) == np.asarray(y_pred)))
    assert evaluation.accuracy_interval(y_true, y_pred) == evaluation.wilson_interval(
        correct, len(y_true))
    low, high = evaluation.accuracy_interval([1, 2, 3], [1, 2, 3])
    assert high == pytest.approx(1.0) and low < 1  # three items prove little: never a point


@pytest.mark.parametrize("args, match", [((3, 0), "n=0"), ((11, 10), "11"), ((-1, 10), "-1")])
def test_wilson_interval_rejects_bad_counts(args, match):
    with pytest.raises(ValueError, match=match):
        evaluation.wilson_interval(*args)
    with pytest.raises(ValueError, match="level=1.5"):
        evaluation.wilson_interval(1, 2, level=1.5)


def test_mcnemar_counts_the_discordant_items_and_gives_the_exact_p():
    a = np.array([True] * 90 + [False] * 10)
    b = a.copy()
    b[90:99] = True   # b alone right on 9 items
    b[0] = False      # a alone right on 1
    out = evaluation.mcnemar_test(a, b)
    assert (out["a_only"], out["b_only"], out["n"]) == (1, 9, 100)
    assert out["difference"] == pytest.approx(0.08)
    assert out["p_value"] == pytest.approx(2 * 11 / 1024)  # exact binomial, 10 discordant items
    same = evaluation.mcnemar_test(a, a)
    assert same["p_value"] == 1.0 and same["difference"] == 0
    assert evaluation.mcnemar_test(b, a)["p_value"] == pytest.approx(out["p_value"])
    with pytest.raises(ValueError, match="shapes"):
        evaluation.mcnemar_test([True], [True, False])


def test_welch_matches_scipy_and_is_undefined_without_variation():
    from scipy.stats import ttest_ind

    a, b = [0.90, 0.91, 0.92], [0.95, 0.96, 0.94]
    out = evaluation.welch_test(a, b)
    expected = ttest_ind(b, a, equal_var=False)
    assert out["difference"] == pytest.approx(0.04)
    assert (out["t"], out["p_value"]) == pytest.approx((expected.statistic, expected.pvalue))
    flat = evaluation.welch_test([233 / 236] * 3, [234 / 236] * 3)
    assert flat["t"] is None and flat["p_value"] is None and flat["difference"] > 0
    with pytest.raises(ValueError, match="at least 2"):
        evaluation.welch_test([0.9], [0.8, 0.7])


def test_paired_test_matches_scipy_and_needs_a_difference():
    from scipy.stats import ttest_rel

    rng = np.random.default_rng(0)
    a = rng.integers(0, 6, 200) / 5
    b = np.clip(a + rng.choice([0, 0.2], 200), 0, 1)
    out = evaluation.paired_test(a, b)
    expected = ttest_rel(b, a)
    assert out["n"] == 200 and out["difference"] == pytest.approx(b.mean() - a.mean())
    assert (out["t"], out["p_value"]) == pytest.approx((expected.statistic, expected.pvalue))
    assert evaluation.paired_test(a, a)["p_value"] is None
    with pytest.raises(ValueError, match="shapes"):
        evaluation.paired_test([0.1, 0.2], [0.1])


@pytest.mark.parametrize("difference, p, expected", [
    (0.01, 0.01, "helped"), (-0.01, 0.01, "hurt"),
    (0.01, 0.2, evaluation.NO_DIFFERENCE),          # not significant
    (0.001, 0.0001, "a difference the test detects, smaller than the 0.002 we state: no claim"),
    (0.01, None, evaluation.NO_DIFFERENCE),          # no test possible
    (0.002, 0.049, "helped"),
])
def test_verdict_claims_only_what_the_test_and_the_size_support(difference, p, expected):
    assert evaluation.verdict(difference, p) == expected
    assert evaluation.p_text(p) == ("no p-value: no seed varied" if p is None else
                                    "p < 0.001" if p < 0.001 else f"p = {p:.3f}")


def test_mismatched_labels_are_rejected():
    with pytest.raises(ValueError, match="equal length"):
        evaluation.macro_f1([0, 1], [0])
    with pytest.raises(ValueError, match="0 labels"):
        evaluation.classification_table([], [])


def test_headline_metrics_and_comparison_table():
    y_true, y_pred = _labels()
    metrics = evaluation.headline_metrics(y_true, y_pred)
    assert set(metrics) == {"accuracy", "macro_f1", "ci_low", "ci_high", "n_correct", "n_test"}
    assert metrics["n_test"] == 300
    table = evaluation.comparison_table({"baseline": metrics}, target="masterCategory")
    assert list(table.columns) == ["accuracy", "95% CI", "macro_f1", "n_test"]
    # the original study's row comes first, with no interval (it reported none), and goes
    # away for any other target; every other row is its own metrics, rounded
    assert list(table.index) == ["original study (Kaggle, masterCategory)", "baseline"]
    original = table.iloc[0]
    assert (original["accuracy"], original["macro_f1"]) == (
        evaluation.ORIGINAL_STUDY["accuracy"], evaluation.ORIGINAL_STUDY["macro_f1"])
    assert original["95% CI"] == "" and original["n_test"] == ""
    assert table.loc["baseline", "accuracy"] == round(metrics["accuracy"], 3)
    assert table.loc["baseline", "macro_f1"] == round(metrics["macro_f1"], 3)
    assert table.loc["baseline", "95% CI"] == f"{metrics['ci_low']:.3f}–{metrics['ci_high']:.3f}"
    alone = evaluation.comparison_table({"baseline": metrics}, target="articleType", digits=4)
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


def test_predictions_round_trip_and_pair_up_for_mcnemar(tmp_path):
    paths = config.Paths(data_dir=tmp_path / "shop", root=tmp_path)
    written = evaluation.write_predictions("03_baseline_cnn", ids=[3, 1, 2], y_true=["a", "b", "a"],
                                           y_pred=["a", "a", "a"], paths=paths)
    assert written == evaluation.predictions_path("03_baseline_cnn", paths=paths)
    back = evaluation.read_predictions("03_baseline_cnn", paths=paths)
    assert back["id"].tolist() == ["3", "1", "2"] and back["predicted"].tolist() == ["a"] * 3
    with pytest.raises(ValueError, match="differ in length"):
        evaluation.write_predictions("x", ids=[1], y_true=["a", "b"], y_pred=["a", "b"],
                                     paths=paths)
    with pytest.raises(FileNotFoundError, match="'04_tuning'"):
        evaluation.read_predictions("04_tuning", paths=paths)
