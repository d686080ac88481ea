"""The recommender's views as plain figures, and the thumbnails the live explorer shows.

Papermill has no browser, so every view of the live explorer (``fashion_utils.views.explorer``) is
also a function that returns a matplotlib figure: :func:`render_recommendations`,
:func:`render_recommendation_grid`, :func:`render_thumbnail_page` (and
``RecommendationExplorer.render``). :func:`png_thumbnail` gives the explorer its PNG bytes.
"""

from __future__ import annotations

import contextlib
import io
from functools import lru_cache
from typing import Any, Iterator, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from fashion_utils.checks import positive_int
from fashion_utils.catalog.image_files import read_thumbnail
from fashion_utils.views.plots import (MAX_CLASSES, image_grid, left_out_note, max_figure_inches,
                                       thumbnail)

#: The attributes a result's caption names when it shares them with the query ("why these").
WHY_COLUMNS = ("articleType", "subCategory", "masterCategory", "baseColour", "gender", "usage",
               "season")


# --------------------------------------------------------------------------- images


@lru_cache(maxsize=8192)
def png_thumbnail(path: str, size: int) -> bytes:
    """PNG bytes of an image fitted into a ``size``×``size`` square (aspect kept, white padding).

    A big JPEG is decoded at a reduced DCT scale (``image_files.read_thumbnail``): a
    1800×2400 catalog photo costs ~5 ms instead of ~50.
    """
    from PIL import Image

    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an integer >= 8. Received: size={size!r}")
    rgb = Image.fromarray(read_thumbnail(path, max_side=size))
    scale = size / max(rgb.size)
    new = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
    if new != rgb.size:  # a small image is enlarged to fill the square
        rgb = rgb.resize(new, Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (size, size), "white")
    canvas.paste(rgb, ((size - new[0]) // 2, (size - new[1]) // 2))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


def catalog_by_id(catalog: pd.DataFrame) -> pd.DataFrame:
    if "id" in catalog.columns:
        out = catalog.set_index(catalog["id"].astype(str), drop=False)
    else:
        out = catalog.copy()
        out.index = out.index.astype(str)
    if "image_path" not in out.columns:
        raise ValueError(f"catalog needs an image_path column. Received columns: {list(catalog.columns)}")
    return out


def shared_attributes(query: pd.Series, result: pd.Series) -> str:
    """The :data:`WHY_COLUMNS` a result shares with its query, comma-separated (or "nothing")."""
    same = [c for c in WHY_COLUMNS if c in query.index and pd.notna(query[c])
            and pd.notna(result.get(c)) and query[c] == result[c]]
    return ", ".join(same) or "nothing"


def item_label(row: pd.Series | Mapping[str, Any], label_column: str | None) -> str:
    if label_column and label_column in row and pd.notna(row[label_column]):
        return str(row[label_column])
    return ""


# --------------------------------------------------------------------------- plain-figure views


def render_recommendations(catalog: pd.DataFrame, results: pd.DataFrame, *, query: Any,
                           query_title: str | None = None, label_column: str | None = "articleType",
                           size: float = 2.0) -> plt.Figure:
    """One row: the query image, then each neighbour with its score and label.

    Args:
        catalog: the catalog (``id``, ``image_path`` and label columns).
        results: what :meth:`SimilarityIndex.query` returned (``id``, ``score``).
        query: a catalog id, an image path, or an RGB array.
        query_title: title above the query (default: its id and label).
        label_column: the label shown under each image.
        size: inches per panel.

    Returns:
        The figure.
    """
    cat = catalog_by_id(catalog)
    if isinstance(query, str) and query in cat.index:
        row = cat.loc[query]
        q_img, title = thumbnail(row["image_path"]), query_title or f"query {query}\n{item_label(row, label_column)}"
    else:
        q_img, title = thumbnail(query), query_title or "query (new image)"
    n = 1 + len(results)
    size = min(size, max_figure_inches() / n)
    fig, axes = plt.subplots(1, n, figsize=(size * n, size + 0.7), squeeze=False)
    axes = axes[0]
    axes[0].imshow(q_img)
    axes[0].set_title(title, fontsize=9, fontweight="bold", color="#C44E52")
    for ax, (_, res) in zip(axes[1:], results.iterrows()):
        row = cat.loc[str(res["id"])]
        ax.imshow(thumbnail(row["image_path"]))
        ax.set_title(f"{res['score']:.3f}\n{item_label(row, label_column)}", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    for spine in axes[0].spines.values():
        spine.set(color="#C44E52", linewidth=2.5)
    fig.tight_layout()
    return fig


def _largest_classes_first(cat: pd.DataFrame, query_ids: Sequence[str], label_column: str | None,
                           limit: int) -> list[str]:
    """At most ``limit`` of ``query_ids``, in their order: those of the catalog's largest classes."""
    ids = [str(q) for q in query_ids]
    if len(ids) <= limit:
        return ids
    if not label_column or label_column not in cat.columns:
        return ids[:limit]
    sizes = cat[label_column].value_counts()
    rank = sorted(range(len(ids)), key=lambda i: -sizes.get(cat.loc[ids[i], label_column], 0))
    return [ids[i] for i in sorted(rank[:limit])]


def _blocks_per_row(n: int, k: int, size: float) -> tuple[int, float]:
    """How many query blocks (query + k results) share a figure row, and the cell size that gives:
    the layout with the largest cells that keeps the figure within ``plots.MAX_FIGURE_PX``."""
    longest = max_figure_inches()
    best = (1, 0.0)
    for blocks in range(1, n + 1):
        rows = -(-n // blocks)
        cell = min(size, longest / (blocks * (k + 1)), (longest - 0.8) / rows - 0.4)
        if cell > best[1] + 1e-9:
            best = (blocks, cell)
    return best


def render_recommendation_grid(catalog: pd.DataFrame, index: Any, query_ids: Sequence[str], *,
                               k: int = 5, label_column: str | None = "articleType",
                               filters: Mapping[str, Any] | None = None, size: float = 1.6,
                               suptitle: str | None = None,
                               max_queries: int = MAX_CLASSES) -> plt.Figure:
    """The original study's figure: each query, its top k to the right.

    Each neighbour's title gives its score and label, in green when the label matches the
    query's and in red when it does not. At most ``max_queries`` queries are drawn (those of
    the catalog's largest classes; the suptitle says how many are left out); two or more
    queries share a row when that keeps the thumbnails larger within ``plots.MAX_FIGURE_PX``.
    """
    if not len(query_ids):
        raise ValueError("render_recommendation_grid needs at least one query id. Received: 0")
    max_queries = positive_int("max_queries", max_queries)
    cat = catalog_by_id(catalog)
    shown = _largest_classes_first(cat, query_ids, label_column, max_queries)
    blocks, size = _blocks_per_row(len(shown), k, size)
    nrows = -(-len(shown) // blocks)
    height = (size + 0.4) * nrows + 0.8  # inches: each row and its titles, plus the suptitle band
    fig, axes = plt.subplots(nrows, blocks * (k + 1), figsize=(size * blocks * (k + 1), height),
                             squeeze=False,
                             gridspec_kw={"wspace": 0.08, "hspace": 0.45,  # fixed: no tight_layout
                                          "top": 1 - 0.8 / height, "bottom": 0.01, "left": 0.01,
                                          "right": 0.99})
    for ax in axes.flat:
        ax.axis("off")
    fontsize = 8 if size >= 1.4 else 7  # small cells: long labels must not run into the next
    for q, qid in enumerate(shown):
        row = axes[q // blocks, (q % blocks) * (k + 1):(q % blocks + 1) * (k + 1)]
        qrow = cat.loc[qid]
        qlabel = item_label(qrow, label_column)
        row[0].imshow(thumbnail(qrow["image_path"]))
        row[0].set_title(f"query\n{qlabel}", fontsize=fontsize, fontweight="bold")
        results = index.query(qid, k, filters=filters)
        for c, (_, res) in enumerate(results.iterrows(), start=1):
            hit = cat.loc[str(res["id"])]
            label = item_label(hit, label_column)
            row[c].imshow(thumbnail(hit["image_path"]))
            row[c].set_title(f"{res['score']:.3f}\n{label}", fontsize=fontsize,
                             color="#2E7D32" if label == qlabel else "#C62828")
    note = left_out_note(len(shown), len(query_ids), what="queries", largest=False)
    if suptitle or note:
        fig.suptitle(f"{suptitle or ''}{note}".strip(), fontweight="bold", y=1 - 0.1 / height,
                     va="top")
    return fig


def render_thumbnail_page(catalog: pd.DataFrame, ids: Sequence[str], *,
                          label_column: str | None = "articleType", ncols: int = 8,
                          size: float = 1.2) -> plt.Figure:
    """The explorer's thumbnail page as a figure: each image titled with its id and label."""

    cat = catalog_by_id(catalog)
    rows = [cat.loc[str(i)] for i in ids]
    return image_grid([thumbnail(r["image_path"]) for r in rows], ncols=ncols, size=size,
                      titles=[f"{r['id'] if 'id' in r else r.name}\n{item_label(r, label_column)}" for r in rows])


# --------------------------------------------------------------------------- the explorer


@contextlib.contextmanager
def unannounced_widgets(made: list[Any]) -> Iterator[None]:
    """ipywidgets made inside are not announced to the frontend: their comms send nothing (no
    ``comm_open``, so a notebook that never shows them saves no widget state) until
    :func:`announce_widgets` opens real ones. ``made`` receives the widgets, in order."""
    import comm
    from ipywidgets import comm as shim
    from ipywidgets.widgets import widget as base

    silent_ids: set[str] = set()
    real = shim.create_comm

    def silent(*args: Any, **kwargs: Any) -> Any:
        made_comm = comm.DummyComm(*args, **kwargs)
        silent_ids.add(made_comm.comm_id)
        return made_comm

    shim.create_comm = silent
    try:
        yield
    finally:
        shim.create_comm = real
        made.extend(w for w in list(base._instances.values())
                    if w.comm is not None and w.comm.comm_id in silent_ids)


def announce_widgets(made: list[Any]) -> None:
    """Open the frontend comms of widgets :func:`unannounced_widgets` made, each with its
    model id (the boxes that hold it still point at it), and empty ``made``."""
    for item in made:
        quiet = item.comm
        if quiet is None:
            continue
        item.comm = None
        quiet.close()
        item.open()
    made.clear()
