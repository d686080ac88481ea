"""Figures: one ``save_fig``, image grids, count charts and training curves.

Plotting helpers take ``ax=`` where they draw one panel and return what they drew on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from fashion_utils.config import Paths


def set_style() -> None:
    """Plot defaults shared by every notebook."""
    sns.set_theme(style="whitegrid", context="notebook")
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 110, "savefig.bbox": "tight",
                         "axes.titleweight": "bold"})


def save_fig(fig: plt.Figure, name: str, *, paths: Paths) -> Path:
    """Save ``fig`` as ``<paths.figures>/<name>.png`` (atomically) and return the path.

    Args:
        fig: the figure.
        name: file stem, letters/digits/``-``/``_`` only.
        paths: the run's paths (quick runs save under ``reports/quick``).
    """
    if not name or any(not (ch.isalnum() or ch in "-_") for ch in name):
        raise ValueError(f"Figure names use letters, digits, '-' and '_'. Received: name={name!r}")
    paths.figures.mkdir(parents=True, exist_ok=True)
    out = paths.figures / f"{name}.png"
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp)
    tmp.replace(out)
    return out


def count_bar_chart(values: pd.Series, *, title: str, xlabel: str = "items",
                    ax: plt.Axes | None = None, top: int | None = None) -> plt.Axes:
    """Horizontal bar chart of value counts, largest first, each bar labelled with its count."""
    counts = values.value_counts()
    if top:
        counts = counts.head(top)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.35 * len(counts) + 1.2))
    sns.barplot(x=counts.values, y=counts.index.astype(str), ax=ax, color="#4C72B0")
    for i, v in enumerate(counts.values):
        ax.text(v, i, f" {v:,}", va="center", fontsize=9)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.locator_params(axis="x", nbins=5)
    ax.set(title=title, xlabel=xlabel, ylabel=values.name or "")
    return ax


def image_grid(images: Sequence[np.ndarray], *, titles: Sequence[str] | None = None,
               ncols: int = 6, size: float = 1.8, suptitle: str | None = None,
               cmap: str | None = None) -> plt.Figure:
    """A grid of images (HxW or HxWxC arrays, uint8 or floats 0–255) with optional titles."""
    n = len(images)
    if n == 0:
        raise ValueError("image_grid needs at least one image. Received: 0 images")
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1. Received: ncols={ncols!r}")
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = np.asarray(images[i])
        if img.dtype != np.uint8:
            img = np.clip(img, 0, 255).astype(np.uint8)
        ax.imshow(img.squeeze(), cmap=cmap or ("gray" if img.squeeze().ndim == 2 else None))
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontweight="bold")
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
