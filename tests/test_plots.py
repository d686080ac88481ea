"""Figures: confusion matrices, misclassified grids, search curves, class balance, save_fig."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from fashion_utils import config
from fashion_utils.views import plots

from conftest import noisy_labels  # noqa: E402

NAMES = ["Apparel", "Footwear", "Accessories"]
_labels = noisy_labels


@pytest.mark.parametrize("normalize", [False, True])
def test_confusion_matrix_heatmap(normalize):
    y_true, y_pred = _labels()
    fig, ax = plt.subplots()
    out = plots.confusion_matrix(y_true, y_pred, class_names=NAMES, normalize=normalize, ax=ax)
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
    fig = plots.misclassified_grid(paths, [0, 1, 2, 0, 1], [0, 2, 2, 1, 1], class_names=NAMES)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["Footwear →\nAccessories", "Apparel →\nFootwear"]
    plt.close(fig)
    empty = plots.misclassified_grid(paths, [0] * 5, [0] * 5)
    assert "No misclassified" in empty.axes[0].texts[0].get_text()
    plt.close(empty)


def test_search_trials_draws_one_line_per_tuner():
    table = pd.DataFrame({"trial_id": ["0", "1", "2", "3"], "order": [0, 1, 2, 3],
                          "status": ["COMPLETED", "FAILED", "COMPLETED", "COMPLETED"],
                          "val_accuracy": [0.5, np.nan, 0.4, 0.7]})
    ax = plots.search_trials({"random": table, "hyperband": table.iloc[:1]})
    assert len(ax.lines) == 4  # per-trial and best-so-far, for each tuner
    assert list(ax.lines[0].get_ydata()) == [0.5, 0.4, 0.7]  # failed trials are not drawn
    assert list(ax.lines[1].get_ydata()) == [0.5, 0.5, 0.7]


def test_accuracy_vs_minutes_draws_each_recipe_and_its_saved_model():
    curves = {"scratch": {"minutes": [2.0, 4.0, 6.0], "val_accuracy": [0.8, 0.9, 0.93]},
              "fine-tune": {"minutes": [4.2], "val_accuracy": [0.9]}}
    fig = plots.accuracy_vs_minutes(curves, finals={"scratch": 0.935}, title="minutes")
    ax = fig.axes[0]
    assert ax.get_title() == "minutes" and "minutes" in ax.get_xlabel()
    assert ax.get_ylabel() == "validation accuracy"
    assert [list(line.get_ydata()) for line in ax.lines] == [[0.8, 0.9, 0.93], [0.935], [0.9]]
    assert list(ax.lines[1].get_xdata()) == [6.0]  # the star sits at the end of its line
    plt.close(fig)


def test_class_balance_chart_shows_the_catalog_and_the_training_side():
    catalog = pd.DataFrame({"masterCategory": ["A"] * 6 + ["B"] * 2})
    sample = pd.DataFrame({"masterCategory": ["A", "A", "B", "B", "B"],
                           "split": ["train", "train", "train", "train", "test"],
                           "augmented": [False, False, False, True, False]})
    fig = plots.class_balance_chart(catalog, sample, target="masterCategory")
    left, right = fig.axes[:2]
    assert [p.get_width() for p in left.patches][:2] == [6, 2]
    assert left.get_title() and right.get_title() and right.get_xlabel() == "images"
    plt.close(fig)


def test_class_balance_chart_of_more_classes_than_it_draws():
    """30 classes, 20 drawn: the real sample's articleType failed here ("cannot reindex on an
    axis with duplicate labels") before the two stages' table got one index."""
    names = [f"c{i:02d}" for i in range(30)]
    catalog = pd.DataFrame({"articleType": np.repeat(names, np.arange(31, 1, -1))})
    train = catalog.groupby("articleType").head(3).assign(split="train", augmented=False)
    extra = train.head(10).assign(augmented=True)
    fig = plots.class_balance_chart(catalog, pd.concat([train, extra]), target="articleType")
    right = fig.axes[1]
    assert len(right.get_yticklabels()) == plots.MAX_CLASSES and "30" in fig._suptitle.get_text()
    plt.close(fig)


def test_save_fig_writes_atomically_and_refuses_odd_names(tmp_path):
    paths = config.Paths(data_dir=tmp_path / "d", root=tmp_path).ensure()
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    out = plots.save_fig(fig, "curve-1", paths=paths)
    assert out == paths.figures / "curve-1.png" and out.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in paths.figures.iterdir()] == ["curve-1.png"]  # no temporary file left
    with pytest.raises(ValueError, match="name='a/b'"):
        plots.save_fig(fig, "a/b", paths=paths)
    plt.close(fig)


def test_retrieval_metrics_draws_one_panel_per_metric():
    scores = pd.DataFrame({"source": ["a", "a", "b", "b"], "label": ["x", "y", "x", "y"],
                           "precision@5": [0.9, 0.8, 0.5, 0.4], "mAP@10": [0.7, 0.6, 0.3, 0.2]})
    fig = plots.retrieval_metrics(scores, metrics=["precision@5", "mAP@10"])
    assert [ax.get_title() for ax in fig.axes] == ["precision@5", "mAP@10"]
    heights = sorted(round(p.get_height(), 2) for p in fig.axes[0].patches if p.get_height())
    assert heights == [0.4, 0.5, 0.8, 0.9]
    plt.close(fig)


def test_multi_output_curves_show_each_head():
    history = {"loss": [3.0, 2.0, 1.5], "val_loss": [3.1, 2.2, 1.9],
               "val_gender_accuracy": [0.5, 0.6, 0.7], "val_usage_accuracy": [0.4, 0.5, 0.5]}
    fig = plots.multi_output_curves(history, columns=["gender", "usage"])
    loss_ax, acc_ax = fig.axes
    assert [list(line.get_xdata()) for line in loss_ax.lines] == [[1, 2, 3]] * 2
    assert [line.get_label() for line in acc_ax.lines] == ["gender", "usage"]
    assert list(acc_ax.lines[0].get_ydata()) == [0.5, 0.6, 0.7]
    assert loss_ax.get_xlabel() == "epoch" and acc_ax.get_ylabel() == "accuracy"
    plt.close(fig)


def test_retrieval_metrics_panels_scale_to_their_values_and_label_every_bar():
    """Issue 30: recall@10 is ~0.001 on Fashion-MNIST: on a shared 0-1 scale its panels looked
    empty. Each panel now has its own scale and every bar its value."""
    scores = pd.DataFrame({"source": ["a", "b", "a", "b"], "level": ["x", "x", "y", "y"],
                           "precision@5": [0.9, 0.8, 0.7, 0.6],
                           "recall@10": [0.0012, 0.0009, 0.0011, 0.0008]})
    fig = plots.retrieval_metrics(scores, metrics=["precision@5", "recall@10"], x="level")
    precision, recall = fig.axes[0], fig.axes[1]
    assert precision.get_ylim()[1] > 1 and recall.get_ylim()[1] < 0.002
    labels = [t.get_text() for t in recall.texts]
    assert len(labels) == 4 and "0.00120" in labels, labels
    plt.close(fig)
