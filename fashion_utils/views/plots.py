"""Figures: one ``save_fig``, image grids, count charts, curves, confusion matrices.

The rest of the package computes; this module (and ``widgets``) draws.

Figures scale with the catalog: what a figure may hold is set once, below (:data:`MAX_CLASSES`,
:data:`THUMBNAIL_PX`, :data:`MAX_FIGURE_PX`). A class grid or a count chart shows the largest
classes and says in its title how many it leaves out; grids draw thumbnails, never full-size
photos; no figure side exceeds :data:`MAX_FIGURE_PX` pixels.

Plotting helpers take ``ax=`` where they draw one panel and return what they drew on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from PIL import Image

from fashion_utils import evaluation
from fashion_utils.catalog import eda
from fashion_utils.atomic import atomic_path
from fashion_utils.checks import positive_int
from fashion_utils.config import Paths
from fashion_utils.catalog.image_files import read_thumbnail

# --------------------------------------------------------------------------- what a figure holds

#: The most classes a figure shows (rows of a class grid, bars of a count chart): the largest.
MAX_CLASSES = 20
#: The longest side, in pixels, of an image drawn in a grid (a thumbnail, never a full photo).
THUMBNAIL_PX = 160
#: The longest side of a figure, in pixels at the saving dpi (``savefig.dpi``).
MAX_FIGURE_PX = 1600


def set_style() -> None:
    """Plot defaults shared by every notebook."""
    sns.set_theme(style="whitegrid", context="notebook")
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 110, "savefig.bbox": "tight",
                         "axes.titleweight": "bold"})


def save_fig(fig: plt.Figure, name: str, *, paths: Paths) -> Path:
    """Save ``fig`` as ``<paths.figures>/<name>.png`` (atomically) and return the path.

    A notebook saves through its run, ``run.save_fig(fig, "confusion_matrix")``
    (``notebook.Run.figure_name``), so every figure of notebooks 02-06 carries its target:
    ``<notebook>-<TARGET>_<what>.png`` for every target, the default one included (05: its
    label level); a notebook without one target (06) has ``<notebook>_<what>.png``. Notebook
    01's catalog-wide figures are ``01_<what>.png``.

    Args:
        fig: the figure.
        name: file stem, letters/digits/``-``/``_`` only.
        paths: the run's paths (quick runs save under ``reports/quick``).
    """
    if not name or any(not (ch.isalnum() or ch in "-_") for ch in name):
        raise ValueError(f"Figure names use letters, digits, '-' and '_'. Received: name={name!r}")
    out = paths.figures / f"{name}.png"
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp)
    return out


def max_figure_inches() -> float:
    """The longest figure side, in inches, that stays within :data:`MAX_FIGURE_PX` pixels when
    saved (``savefig.dpi``) or shown inline (``figure.dpi``)."""
    dpis = [plt.rcParams["figure.dpi"], plt.rcParams["savefig.dpi"]]
    return MAX_FIGURE_PX / max(float(d) for d in dpis if not isinstance(d, str))


def left_out_note(shown: int, total: int, *, what: str = "classes", largest: bool = True) -> str:
    """``" (the 20 largest of 105 classes; 85 left out)"`` when ``shown < total``, else ``""``
    (``largest=False``: ``" (20 of 105 classes; 85 left out)"``)."""
    if shown >= total:
        return ""
    which = f"the {shown:,} largest" if largest else f"{shown:,}"
    return f" ({which} of {total:,} {what}; {total - shown:,} left out)"


def thumbnail(image: Any) -> np.ndarray:
    """An image as a ``uint8`` array no larger than :data:`THUMBNAIL_PX` a side (aspect kept).

    Args:
        image: an image file's path, or an HxW / HxWxC array (uint8, or floats 0–255).
    """
    if isinstance(image, (str, Path)):
        return read_thumbnail(image, max_side=THUMBNAIL_PX)
    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    img = img.squeeze() if img.ndim == 3 and img.shape[-1] == 1 else img
    if max(img.shape[:2]) <= THUMBNAIL_PX:
        return img
    small = Image.fromarray(img)
    small.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX), Image.Resampling.LANCZOS)
    return np.asarray(small)


def count_bar_chart(values: pd.Series, *, title: str, xlabel: str = "items",
                    ax: plt.Axes | None = None, top: int | None = MAX_CLASSES) -> plt.Axes:
    """Horizontal bar chart of value counts, largest first, each bar labelled with its count.

    Only the ``top`` largest values are drawn (``None``: all); the title says how many are left.
    """
    counts = values.value_counts()
    n_values = len(counts)
    if top:
        counts = counts.head(top)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, min(0.35 * len(counts) + 1.2, max_figure_inches())))
    sns.barplot(x=counts.values, y=counts.index.astype(str), ax=ax, color="#4C72B0")
    for i, v in enumerate(counts.values):
        ax.text(v, i, f" {v:,}", va="center", fontsize=9)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.locator_params(axis="x", nbins=5)
    note = left_out_note(len(counts), n_values, what="values")
    ax.set(title=title + note.replace(" (", "\n(", 1), xlabel=xlabel, ylabel=values.name or "")
    return ax


def _cell_inches(size: float, *, nrows: int, ncols: int, extra_w: float = 0.0,
                 extra_h: float = 0.0) -> float:
    """The side of one grid cell: ``size``, or less so that the figure stays within bounds."""
    longest = max_figure_inches()
    return min(size, (longest - extra_w) / ncols, (longest - extra_h) / nrows)


def image_grid(images: Sequence[Any], *, titles: Sequence[str] | None = None,
               ncols: int = 6, size: float = 1.8, suptitle: str | None = None,
               cmap: str | None = None, max_rows: int = MAX_CLASSES) -> plt.Figure:
    """A grid of thumbnails (:func:`thumbnail`: image paths or arrays) with optional titles.

    At most ``max_rows`` rows are drawn (the suptitle says how many images are left out), and
    the cells shrink below ``size`` inches when the figure would exceed :data:`MAX_FIGURE_PX`.
    """
    n = len(images)
    if n == 0:
        raise ValueError("image_grid needs at least one image. Received: 0 images")
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1. Received: ncols={ncols!r}")
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1. Received: max_rows={max_rows!r}")
    ncols = min(ncols, n)
    shown = min(n, ncols * max_rows)
    nrows = int(np.ceil(shown / ncols))
    cell = _cell_inches(size, nrows=nrows, ncols=ncols, extra_h=0.4)
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell * ncols, cell * nrows + 0.4),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= shown:
            continue
        img = thumbnail(images[i])
        ax.imshow(img, cmap=cmap or ("gray" if img.ndim == 2 else None))
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
    if suptitle or shown < n:
        note = f" (first {shown:,} of {n:,} images)" if shown < n else ""
        fig.suptitle(f"{suptitle or ''}{note}".strip(), fontweight="bold")
    fig.tight_layout()
    return fig


def class_grid(catalog: pd.DataFrame, column: str, *, per_class: int = 8, seed: int = 0,
               max_classes: int = MAX_CLASSES, size: float = 1.4,
               title: str | None = None) -> plt.Figure:
    """Sample thumbnails of each class of ``column``: one row per class, the largest classes first.

    At most ``max_classes`` rows (the title says how many classes are left out); each row is
    labelled with its class and its count; cells shrink to keep the figure within bounds.

    Returns:
        The figure.
    """
    max_classes = positive_int("max_classes", max_classes)
    counts = catalog[column].value_counts() if column in catalog.columns else None
    shown = eda.samples_per_class(catalog, column, per_class=per_class, seed=seed,
                                  max_classes=max_classes)
    if shown.empty:
        raise ValueError(f"class_grid needs labelled rows. Received: no value in column={column!r}")
    classes = list(dict.fromkeys(shown[column]))
    ncols = max(int(shown[column].value_counts().max()), 1)
    cell = _cell_inches(size, nrows=len(classes), ncols=ncols, extra_w=1.8, extra_h=0.6)
    fig, axes = plt.subplots(len(classes), ncols, squeeze=False,
                             figsize=(1.8 + cell * ncols, 0.6 + cell * len(classes)))
    for row, label in zip(axes, classes):
        paths = shown.loc[shown[column] == label, "image_path"].tolist()
        for c, ax in enumerate(row):
            ax.set(xticks=[], yticks=[])
            ax.spines[:].set_visible(False)
            if c < len(paths):
                img = thumbnail(paths[c])
                ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
        row[0].set_ylabel(f"{label}\n({counts[label]:,})", rotation=0, ha="right", va="center",
                          fontsize=8)
    note = left_out_note(len(classes), len(counts))
    fig.suptitle(f"{title or f'Sample images per {column}'}{note}", fontweight="bold")
    fig.tight_layout()
    return fig


def training_curves(history: dict[str, list[float]], *, title: str = "Training curves") -> plt.Figure:
    """Loss and accuracy, train vs validation, from a Keras ``History.history`` dict."""
    metrics = [m for m in ("loss", "accuracy") if m in history]
    if not metrics:
        raise ValueError(f"history has neither 'loss' nor 'accuracy'. Received keys: {sorted(history)}")
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        epochs = np.arange(1, len(history[metric]) + 1)
        ax.plot(epochs, history[metric], marker="o", label="train")
        if f"val_{metric}" in history:
            ax.plot(epochs, history[f"val_{metric}"], marker="o", label="validation")
        ax.set(title=metric.capitalize(), xlabel="epoch", ylabel=metric)
        ax.legend()
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


def accuracy_vs_minutes(curves: Mapping[str, Mapping[str, Sequence[float]]], *,
                        finals: Mapping[str, float] | None = None,
                        title: str = "What each training minute buys") -> plt.Figure:
    """Validation accuracy after each epoch against training minutes, one line per recipe.

    Args:
        curves: ``{recipe: {"minutes": [...], "val_accuracy": [...]}}``
            (``finetune.FineTuneResult.curve()``).
        finals: ``{recipe: accuracy}`` of each saved model on validation (e.g. with test-time
            augmentation), drawn as a star at the end of its line.
        title: the figure's title.
    """
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, curve in curves.items():
        minutes, acc = list(curve["minutes"]), list(curve["val_accuracy"])
        line, = ax.plot(minutes, acc, marker="o", label=name, zorder=3)
        if finals and name in finals and minutes:  # a hollow star: a one-epoch point shows
            ax.plot([minutes[-1]], [finals[name]], marker="*", markersize=16, linestyle="none",
                    markerfacecolor="none", markeredgewidth=1.5, color=line.get_color(),
                    zorder=4, label=f"{name}: saved model {finals[name]:.4f}")
    ax.set(title=title, xlabel="training minutes (wall clock, validation included)",
           ylabel="validation accuracy")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def confusion_matrix(y_true: Any, y_pred: Any, *, class_names: Sequence[str] | None = None,
                     normalize: bool = False, ax: plt.Axes | None = None, title: str | None = None,
                     cmap: str = "Blues") -> plt.Axes:
    """A heatmap of :func:`evaluation.confusion_matrix_table` (rows: true, columns: predicted).

    Args:
        y_true, y_pred, class_names, normalize: as for ``evaluation.confusion_matrix_table``.
        ax: the axes to draw on (default: a new figure).
        title: the panel title.
        cmap: colour map.

    Returns:
        The axes.
    """
    table = evaluation.confusion_matrix_table(y_true, y_pred, class_names=class_names,
                                              normalize=normalize)
    names = [str(n) for n in table.index]
    if ax is None:
        side = 1.2 + 0.55 * len(names)
        _, ax = plt.subplots(figsize=(side + 1.5, side))
    sns.heatmap(table.to_numpy(), annot=len(names) <= 20, fmt=".2f" if normalize else ".0f",
                cmap=cmap, xticklabels=names, yticklabels=names, square=True, cbar=False, ax=ax,
                vmin=0, vmax=1 if normalize else None, annot_kws={"fontsize": 8})
    default = "Confusion matrix (row-normalised)" if normalize else "Confusion matrix (counts)"
    ax.set(xlabel="predicted", ylabel="true", title=title or default)
    ax.tick_params(axis="x", rotation=45)
    for label in ax.get_xticklabels():
        label.set(horizontalalignment="right", rotation_mode="anchor")
    ax.tick_params(axis="y", rotation=0)
    return ax


def misclassified_grid(image_paths: Sequence[str], y_true: Any, y_pred: Any, *,
                       class_names: Sequence[str] | None = None, max_images: int = 24,
                       ncols: int = 8, seed: int = 42) -> plt.Figure:
    """A grid of (a seeded random choice of) misclassified images, titled ``true → predicted``.

    Returns:
        The figure (a short note in place of the grid when nothing is misclassified).
    """
    if len(image_paths) != len(y_true):
        raise ValueError(f"image_paths and labels differ in length: "
                         f"{len(image_paths)} != {len(y_true)}")
    shown, titles, n_wrong = evaluation.misclassified_sample(
        y_true, y_pred, class_names=class_names, max_images=max_images, seed=seed)
    if n_wrong == 0:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, "No misclassified images", ha="center", va="center")
        return fig
    return image_grid([image_paths[i] for i in shown], titles=titles, ncols=ncols,
                      suptitle=f"Misclassified test images ({n_wrong:,} of {len(y_true):,}; "
                               f"true → predicted)")


def search_trials(results: Mapping[str, Any], *, ax: plt.Axes | None = None) -> plt.Axes:
    """Validation accuracy of every trial, in trial order, one line per tuner.

    Args:
        results: ``{label: tuning.SearchResult or its trials table}``.
        ax: the axes (a new figure when ``None``).

    Returns:
        The axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for label, result in results.items():
        table = result if isinstance(result, pd.DataFrame) else result.trials
        table = table[table["status"] == "COMPLETED"].sort_values("order")
        ax.plot(np.arange(1, len(table) + 1), table["val_accuracy"], marker="o", ms=3, label=label)
        ax.plot(np.arange(1, len(table) + 1), table["val_accuracy"].cummax(), ls=":",
                color=ax.lines[-1].get_color())
    ax.set(xlabel="trial (dotted: best so far)", ylabel="validation accuracy",
           title="Validation accuracy per trial")
    ax.legend()
    return ax


def class_balance_chart(catalog: pd.DataFrame, sample: pd.DataFrame, *, target: str) -> plt.Figure:
    """Two panels: the catalog's classes (before), and the training side before and after augmentation.

    The :data:`MAX_CLASSES` largest classes of the catalog are drawn; the title notes the rest.

    Returns:
        The figure.
    """
    train = sample[sample["split"] == "train"]
    all_classes = catalog[target].value_counts().index.astype(str).tolist()
    order = all_classes[:MAX_CLASSES]
    before = train.loc[~train["augmented"].astype(bool), target].astype(str).value_counts()
    after = train[target].astype(str).value_counts()
    long = pd.concat([pd.DataFrame({"class": before.index, "images": before.values, "stage": "before augmentation"}),
                      pd.DataFrame({"class": after.index, "images": after.values, "stage": "after augmentation"})],
                     ignore_index=True)  # seaborn needs a unique index
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.4 * len(order) + 1.8))
    counts = catalog[target].astype(str).value_counts()
    sns.barplot(x=counts.values, y=counts.index, ax=axes[0], color="#4C72B0", order=order)
    axes[0].set(title="Catalog (before sampling)", xlabel="items", ylabel=target)
    kept = [c for c in order if c in set(after.index)]
    sns.barplot(data=long, x="images", y="class", hue="stage", ax=axes[1], order=kept)
    axes[1].set(title="Training side of the study sample", xlabel="images", ylabel="")
    sns.move_legend(axes[1], "center left", bbox_to_anchor=(1.01, 0.5), title=None, frameon=False)
    if len(order) < len(all_classes):
        fig.suptitle(f"Classes of {target}{left_out_note(len(order), len(all_classes))}",
                     fontweight="bold")
    fig.tight_layout()
    return fig


def retrieval_metrics(scores: pd.DataFrame, *, metrics: Sequence[str], x: str = "label",
                      row: str | None = None) -> plt.Figure:
    """One panel per metric: the score of each embedding source at each relevance level.

    Each panel has its own y scale (recall@10 on Fashion-MNIST is about 0.001, each class
    holding thousands of relevant items, where precision is near 1) and every bar is labelled
    with its value, so no panel looks empty.

    Args:
        scores: long table with columns ``source``, ``x`` and the ``metrics`` (and ``row``).
        metrics: column names, e.g. ``["precision@5", "mAP@10"]``.
        x: the column along each panel's x axis (the label, or the relevance level).
        row: a column whose values get one row of panels each, in order of appearance (e.g.
            the evaluation: whole catalog, held out); ``None``: one row.
    """
    rows = [None] if row is None else list(dict.fromkeys(scores[row]))
    width = min(4.5 * len(metrics), 17.0)  # at most ~1,900 px wide when saved
    fig, axes = plt.subplots(len(rows), len(metrics), figsize=(width, 3.8 * len(rows)),
                             squeeze=False)
    for r, value in enumerate(rows):
        part = scores if value is None else scores[scores[row] == value]
        for ax, metric in zip(axes[r], metrics):
            sns.barplot(part, x=x, y=metric, hue="source", ax=ax,
                        legend=r == 0 and ax is axes[0, -1])
            title = metric if value is None else f"{value}: {metric}"
            xlabel = "relevant = same …" if r == len(rows) - 1 else ""
            top = float(pd.to_numeric(part[metric], errors="coerce").max())  # this panel's
            top = min(1.0, top) if top == top and top > 0 else 1.0  # NaN or 0: the full scale
            ax.set(title=title, ylim=(0, top * 1.2), xlabel=xlabel, ylabel="score")
            for bars in ax.containers:
                ax.bar_label(bars, fmt=_value_format(top), fontsize=7, padding=1)
            if scores[x].nunique() > 2:  # long level names side by side
                plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    sns.move_legend(axes[0, -1], "upper left", bbox_to_anchor=(1.01, 1))
    if len(rows) > 1:
        fig.subplots_adjust(hspace=0.5)
    return fig


def _value_format(top: float) -> str:
    """The bar labels' format: enough decimals for a bar of a tenth of ``top`` to read."""
    decimals = max(2, min(5, 1 - int(np.floor(np.log10(top / 10)))))
    return f"%.{decimals}f"


def multi_output_curves(history: Mapping[str, Sequence[float]], *,
                        columns: Sequence[str]) -> plt.Figure:
    """Total loss (train and validation) and each head's validation accuracy, per epoch."""
    epochs = range(1, len(history["loss"]) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    axes[0].plot(epochs, history["loss"], label="train")
    axes[0].plot(epochs, history["val_loss"], label="validation")
    for column in columns:
        axes[1].plot(epochs, history[f"val_{column}_accuracy"], label=column)
    for ax, title, ylabel in zip(axes, ["Total loss (sum over heads)",
                                        "Validation accuracy per head"], ["loss", "accuracy"]):
        ax.set(title=title, xlabel="epoch", ylabel=ylabel)
        ax.legend()
    return fig
