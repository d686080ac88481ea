"""The recommendation explorer for JupyterLab / Voilà, and the same views as plain figures.

:class:`RecommendationExplorer` shows a page of thumbnails with a class filter, a search box
and a picker; the chosen product large; and its top-k neighbours with scores and labels
beneath, updated on every pick. Every part carries a stable CSS class (``fu-explorer``,
``fu-picker``, ``fu-query-image``, ``fu-result-image``, ``fu-result-caption``...) for browser
tests.

Papermill has no browser, so every view is also a function that returns a matplotlib
figure: :func:`render_recommendations`, :func:`render_recommendation_grid`,
:func:`render_thumbnail_page` and :meth:`RecommendationExplorer.render`.
"""

from __future__ import annotations

import html
import io
from functools import lru_cache
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from fashion_utils.checks import positive_int
from fashion_utils.near_duplicates import collapse_neighbours
from fashion_utils.plots import (MAX_CLASSES, image_grid, left_out_note, max_figure_inches,
                                 thumbnail)

ALL = "(all)"
NO_FILTER = "none"
#: The attributes a result's caption names when it shares them with the query ("why these").
WHY_COLUMNS = ("articleType", "subCategory", "masterCategory", "baseColour", "gender", "usage",
               "season")


# --------------------------------------------------------------------------- images


@lru_cache(maxsize=8192)
def png_thumbnail(path: str, size: int) -> bytes:
    """PNG bytes of an image fitted into a ``size``×``size`` square (aspect kept, white padding)."""
    from PIL import Image

    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an integer >= 8. Received: size={size!r}")
    with Image.open(path) as img:
        rgb = img.convert("RGB")
    scale = size / max(rgb.size)
    new = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
    rgb = rgb.resize(new, Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (size, size), "white")
    canvas.paste(rgb, ((size - new[0]) // 2, (size - new[1]) // 2))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


def _by_id(catalog: pd.DataFrame) -> pd.DataFrame:
    if "id" in catalog.columns:
        out = catalog.set_index(catalog["id"].astype(str), drop=False)
    else:
        out = catalog.copy()
        out.index = out.index.astype(str)
    if "image_path" not in out.columns:
        raise ValueError(f"catalog needs an image_path column. Received columns: {list(catalog.columns)}")
    return out


def _shared(query: pd.Series, result: pd.Series) -> str:
    """The :data:`WHY_COLUMNS` a result shares with its query, comma-separated (or "nothing")."""
    same = [c for c in WHY_COLUMNS if c in query.index and pd.notna(query[c])
            and pd.notna(result.get(c)) and query[c] == result[c]]
    return ", ".join(same) or "nothing"


def _label(row: pd.Series | Mapping[str, Any], label_column: str | None) -> str:
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
    cat = _by_id(catalog)
    if isinstance(query, str) and query in cat.index:
        row = cat.loc[query]
        q_img, title = thumbnail(row["image_path"]), query_title or f"query {query}\n{_label(row, label_column)}"
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
        ax.set_title(f"{res['score']:.3f}\n{_label(row, label_column)}", fontsize=9)
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
    cat = _by_id(catalog)
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
        qlabel = _label(qrow, label_column)
        row[0].imshow(thumbnail(qrow["image_path"]))
        row[0].set_title(f"query\n{qlabel}", fontsize=fontsize, fontweight="bold")
        results = index.query(qid, k, filters=filters)
        for c, (_, res) in enumerate(results.iterrows(), start=1):
            hit = cat.loc[str(res["id"])]
            label = _label(hit, label_column)
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

    cat = _by_id(catalog)
    rows = [cat.loc[str(i)] for i in ids]
    return image_grid([thumbnail(r["image_path"]) for r in rows], ncols=ncols, size=size,
                      titles=[f"{r['id'] if 'id' in r else r.name}\n{_label(r, label_column)}" for r in rows])


# --------------------------------------------------------------------------- the explorer


class RecommendationExplorer:
    """An ipywidgets explorer: pick a product, see its k nearest products.

    Args:
        index: a :class:`fashion_utils.similarity.SimilarityIndex` (with metadata for filters).
        catalog: the catalog (``id``, ``image_path``, label columns); only ids in the index
            are browsable.
        k: neighbours shown.
        label_column: the class filter's column and the label under each image.
        filters: initial similarity filter, e.g. ``{"gender": "same"}`` (one entry).
        filter_columns: columns offered as "same …" / "different …" filters (default: the
            index metadata's category columns).
        name_column: extra text searched by the search box (default ``productDisplayName``
            when present).
        page_size: thumbnails per page.
        thumb_px, query_px, result_px: image sizes in pixels.
        start: the id selected first (default: the first browsable one).
        groups: a near-duplicate group per id (``near_duplicates.near_duplicate_groups``, as a
            mapping or a Series indexed by id): the results then show one product per group and
            none of the query's own, unless the "one per near-duplicate group" box is cleared.

    Attributes:
        widget: the root ``ipywidgets.VBox`` (CSS class ``fu-explorer``): display it.
        picker: the ``Dropdown`` of the page's products; setting its ``value`` picks one.
        results: the neighbours shown now (a DataFrame from ``index.query``).
    """

    def __init__(self, index: Any, catalog: pd.DataFrame, *, k: int = 5,
                 label_column: str = "articleType", filters: Mapping[str, str] | None = None,
                 filter_columns: Sequence[str] | None = None, name_column: str | None = None,
                 page_size: int = 24, thumb_px: int = 72, query_px: int = 200, result_px: int = 128,
                 start: str | None = None, groups: Mapping[str, Any] | None = None) -> None:
        import ipywidgets as w

        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer. Received: k={k!r}")
        if page_size < 1:
            raise ValueError(f"page_size must be >= 1. Received: page_size={page_size!r}")
        cat = _by_id(catalog)
        cat = cat[cat.index.isin(set(index.ids))]
        if cat.empty:
            raise ValueError("No catalog id is in the index: nothing to explore")
        if label_column not in cat.columns:
            raise ValueError(f"label_column {label_column!r} not in the catalog columns {list(cat.columns)}")
        self.index, self.catalog, self.k = index, cat, int(k)
        self.label_column, self.page_size = label_column, int(page_size)
        self.thumb_px, self.query_px, self.result_px = int(thumb_px), int(query_px), int(result_px)
        self.name_column = name_column or ("productDisplayName" if "productDisplayName" in cat.columns else None)
        self.results: pd.DataFrame = pd.DataFrame(columns=["rank", "id", "score"])
        self.selected: str | None = None
        self._filtered: list[str] = cat.index.tolist()
        self._page = 0
        self._syncing = False

        meta = index.metadata
        if filter_columns is None:
            filter_columns = [c for c in ("gender", "masterCategory", "subCategory", "articleType", "baseColour")
                              if meta is not None and c in meta.columns]
        modes = [("no filter", NO_FILTER)]
        for col in filter_columns:
            modes += [(f"same {col}", f"same:{col}"), (f"different {col}", f"different:{col}")]
        initial, self._given_filters = NO_FILTER, dict(filters) if filters else None
        if filters:
            if not isinstance(filters, Mapping):
                raise ValueError(f"filters must be a dict such as {{'gender': 'same'}}. Received: "
                                 f"filters={filters!r}")
            index.filter_mask(filters, query_position=0)  # fails early on unknown columns
            col, spec = next(iter(filters.items()))
            initial = f"{spec}:{col}" if len(filters) == 1 else ""
            if initial not in [value for _, value in modes]:  # e.g. {"masterCategory": "Footwear"}
                initial = "given"
                modes.append((f"as given: {self._given_filters}", initial))

        classes = sorted(cat[label_column].dropna().astype(str).unique())
        self.class_filter = w.Dropdown(options=[ALL, *classes], value=ALL, description="class")
        self.search = w.Text(placeholder="id or name, then Enter", description="search",
                             continuous_update=False)
        self.filter_mode = w.Dropdown(options=modes, value=initial, description="filter")
        self.groups = None if groups is None else {str(i): g for i, g in dict(groups).items()}
        self.distinct = w.Checkbox(value=groups is not None, disabled=groups is None,
                                   description="one per near-duplicate group", indent=False)
        self.picker = w.Dropdown(options=[], description="product")
        self.prev_button = w.Button(description="◀ prev", layout=w.Layout(width="80px"))
        self.next_button = w.Button(description="next ▶", layout=w.Layout(width="80px"))
        self.page_label = w.Label()
        self.thumbnails = w.GridBox(layout=w.Layout(
            grid_template_columns=f"repeat(auto-fill, {self.thumb_px + 16}px)", grid_gap="4px"))
        self.query_image = w.Image(format="png", width=self.query_px, height=self.query_px,
                                   layout=w.Layout(width=f"{self.query_px}px", height=f"{self.query_px}px"))
        self.query_caption = w.HTML()
        self.result_images = [w.Image(format="png", width=self.result_px, height=self.result_px,
                                      layout=w.Layout(width=f"{self.result_px}px", height=f"{self.result_px}px"))
                              for _ in range(self.k)]
        self.result_captions = [w.HTML() for _ in range(self.k)]
        self.result_buttons = [w.Button(description="more like this", layout=w.Layout(width=f"{self.result_px}px"))
                               for _ in range(self.k)]
        self.status = w.HTML()
        self._result_boxes = [w.VBox([img, cap, btn]) for img, cap, btn in
                              zip(self.result_images, self.result_captions, self.result_buttons)]
        self.results_box = w.HBox(self._result_boxes)
        query_box = w.VBox([w.HTML("<b>chosen product</b>"), self.query_image, self.query_caption])
        self.widget = w.VBox([
            w.HBox([self.class_filter, self.search]),
            w.HBox([self.picker, self.filter_mode, self.distinct]),
            w.HBox([self.prev_button, self.page_label, self.next_button]),
            self.thumbnails,
            w.HBox([query_box, w.VBox([w.HTML(f"<b>top {self.k} similar products</b>"), self.results_box])]),
            self.status,
        ])
        for widget, css in [(self.widget, "fu-explorer"), (self.class_filter, "fu-class-filter"),
                            (self.search, "fu-search"), (self.filter_mode, "fu-filter"),
                            (self.picker, "fu-picker"), (self.distinct, "fu-distinct"),
                            (self.prev_button, "fu-page-prev"),
                            (self.next_button, "fu-page-next"), (self.page_label, "fu-page-label"),
                            (self.thumbnails, "fu-thumbnails"), (self.query_image, "fu-query-image"),
                            (self.query_caption, "fu-query-caption"), (self.results_box, "fu-results"),
                            (self.status, "fu-status")]:
            widget.add_class(css)
        for box, img, cap, btn in zip(self._result_boxes, self.result_images, self.result_captions,
                                      self.result_buttons):
            box.add_class("fu-result")
            img.add_class("fu-result-image")
            cap.add_class("fu-result-caption")
            btn.add_class("fu-result-button")
            btn.on_click(self._on_result_click)

        self.class_filter.observe(self._on_refilter, names="value")
        self.search.observe(self._on_search, names="value")
        self.filter_mode.observe(lambda _: self._show(self.selected), names="value")
        self.distinct.observe(lambda _: self._show(self.selected), names="value")
        self.picker.observe(self._on_pick, names="value")
        self.prev_button.on_click(lambda _: self._turn(-1))
        self.next_button.on_click(lambda _: self._turn(+1))
        first = str(start) if start is not None else self._filtered[0]
        self._render_page()
        self.select(first)

    # ----------------------------------------------------------------- public API

    @property
    def filters(self) -> dict[str, str] | None:
        """The similarity filter chosen in the ``filter`` dropdown, as passed to ``index.query``."""
        mode = self.filter_mode.value
        if mode == NO_FILTER:
            return None
        if mode == "given":
            return self._given_filters
        spec, col = mode.split(":", 1)
        return {col: spec}

    @property
    def captions(self) -> list[str]:
        """The visible result captions as plain text (``#1 Sneaker · score 0.953 · id 123``)."""
        return [self._caption_text(r) for _, r in self.results.iterrows()]

    @property
    def page_ids(self) -> list[str]:
        """Ids on the current thumbnail page."""
        lo = self._page * self.page_size
        return self._filtered[lo:lo + self.page_size]

    def select(self, item_id: Any) -> None:
        """Pick a product by id: go to its page (clearing filters that hide it) and show it."""
        item_id = str(item_id)
        if item_id not in self.catalog.index:
            raise KeyError(f"id {item_id!r} is not in the explorer's catalog")
        if item_id not in self._filtered:
            self._syncing = True
            try:
                self.class_filter.value, self.search.value = ALL, ""
            finally:
                self._syncing = False
            self._filtered = self.catalog.index.tolist()
        self._page = self._filtered.index(item_id) // self.page_size
        self._render_page(keep=item_id)
        self._pick(item_id)

    def render(self) -> plt.Figure:
        """The current view (chosen product and its neighbours) as a matplotlib figure."""
        return render_recommendations(self.catalog, self.results, query=self.selected,
                                      label_column=self.label_column)

    # ----------------------------------------------------------------- internals

    def _caption_text(self, row: pd.Series) -> str:
        label = _label(self.catalog.loc[str(row["id"])], self.label_column)
        return f"#{int(row['rank'])} {label} · score {float(row['score']):.3f} · id {row['id']}"

    def _option(self, item_id: str) -> tuple[str, str]:
        row = self.catalog.loc[item_id]
        name = f" · {row[self.name_column]}" if self.name_column and pd.notna(row[self.name_column]) else ""
        return f"{item_id} · {_label(row, self.label_column)}{name}"[:80], item_id

    def _render_page(self, keep: str | None = None) -> None:
        import ipywidgets as w

        n_pages = max(1, -(-len(self._filtered) // self.page_size))
        self._page = min(max(self._page, 0), n_pages - 1)
        ids = self.page_ids
        options = [self._option(i) for i in ids]
        current = keep or self.selected
        if current is not None and current not in ids and current in self.catalog.index:
            label, value = self._option(current)
            options = [(f"★ {label}", value), *options]
        self._syncing = True
        try:
            self.picker.options = options
            if current is not None and any(v == current for _, v in options):
                self.picker.value = current
        finally:
            self._syncing = False
        cells = []
        for item_id in ids:
            path = str(self.catalog.loc[item_id, "image_path"])
            img = w.Image(value=png_thumbnail(path, self.thumb_px), format="png", width=self.thumb_px,
                          height=self.thumb_px,
                          layout=w.Layout(width=f"{self.thumb_px}px", height=f"{self.thumb_px}px"))
            img.add_class("fu-thumb-image")
            btn = w.Button(description=item_id, tooltip=self._option(item_id)[0],
                           layout=w.Layout(width=f"{self.thumb_px + 12}px"))
            btn.add_class("fu-thumb-button")
            btn.on_click(lambda _, i=item_id: self._pick(i))
            cell = w.VBox([img, btn])
            cell.add_class("fu-thumbnail")
            cells.append(cell)
        self.thumbnails.children = cells
        lo = self._page * self.page_size
        self.page_label.value = (f"page {self._page + 1}/{n_pages} · items {lo + 1 if ids else 0}–"
                                 f"{lo + len(ids)} of {len(self._filtered):,}")
        self.prev_button.disabled = self._page == 0
        self.next_button.disabled = self._page >= n_pages - 1

    def _pick(self, item_id: str) -> None:
        if self.picker.value == item_id:
            self._show(item_id)
        else:
            self.picker.value = item_id

    def _turn(self, step: int) -> None:
        self._page += step
        self._render_page()

    def _on_pick(self, change: dict) -> None:
        if not self._syncing and change["new"]:
            self._show(change["new"])

    def _on_result_click(self, button: Any) -> None:
        slot = self.result_buttons.index(button)
        if slot < len(self.results):
            self.select(str(self.results.iloc[slot]["id"]))

    def _on_refilter(self, _change: dict | None = None) -> None:
        if self._syncing:
            return
        cat = self.catalog
        keep = np.ones(len(cat), dtype=bool)
        if self.class_filter.value != ALL:
            keep &= cat[self.label_column].astype(str).to_numpy() == self.class_filter.value
        text = self.search.value.strip().lower()
        if text:
            hay = cat.index.str.lower()
            hit = hay.str.startswith(text) | cat[self.label_column].astype(str).str.lower().str.contains(
                text, regex=False).to_numpy()
            if self.name_column:
                hit |= cat[self.name_column].astype(str).str.lower().str.contains(text, regex=False).to_numpy()
            keep &= np.asarray(hit)
        self._filtered = cat.index[keep].tolist()
        self._page = 0
        if self._filtered:
            self._render_page(keep=self._filtered[0])
            self._pick(self._filtered[0])
        else:
            self._render_page()
            self.status.value = f"<i>nothing matches class={self.class_filter.value!r}, search={text!r}</i>"

    def _on_search(self, change: dict) -> None:
        if self._syncing:
            return
        text = change["new"].strip()
        if text in self.catalog.index:
            self.select(text)
        else:
            self._on_refilter()

    def _one_per_group(self, results: pd.DataFrame) -> pd.DataFrame:
        """The first result of each near-duplicate group, none of the query's, at most k
        (``near_duplicates.collapse_neighbours`` on the ranked results)."""
        ids = results["id"].astype(str).tolist()
        keys = [self.groups.get(i, ("alone", i)) for i in ids]
        keys.append(self.groups.get(self.selected, ("query",)))
        codes: dict[Any, int] = {}
        groups = np.array([codes.setdefault(key, len(codes)) for key in keys])
        kept = collapse_neighbours(np.arange(len(ids))[None], [len(ids)], groups, k=self.k)[0]
        kept = kept[kept >= 0]
        return results.iloc[kept].assign(rank=np.arange(1, len(kept) + 1)).reset_index(drop=True)

    def _show(self, item_id: str | None) -> None:
        if item_id is None:
            return
        self.selected = str(item_id)
        row = self.catalog.loc[self.selected]
        self.query_image.value = png_thumbnail(str(row["image_path"]), self.query_px)
        name = f"<br>{html.escape(str(row[self.name_column]))}" if self.name_column else ""
        self.query_caption.value = (f"<b>{html.escape(_label(row, self.label_column))}</b> · id "
                                    f"{html.escape(self.selected)}{name}")
        collapse = self.groups is not None and self.distinct.value
        try:
            self.results = self.index.query(self.selected, 4 * self.k if collapse else self.k,
                                            filters=self.filters)
            if collapse:
                self.results = self._one_per_group(self.results)
        except ValueError as err:  # e.g. a filter column the metadata lacks
            self.results = pd.DataFrame(columns=["rank", "id", "score"])
            self.status.value = f"<span style='color:#C62828'>{html.escape(str(err))}</span>"
            return
        for slot, (img, cap, box) in enumerate(zip(self.result_images, self.result_captions,
                                                   self._result_boxes)):
            if slot < len(self.results):
                res = self.results.iloc[slot]
                path = str(self.catalog.loc[str(res["id"]), "image_path"])
                img.value = png_thumbnail(path, self.result_px)
                label = _label(self.catalog.loc[str(res["id"])], self.label_column)
                same = _shared(row, self.catalog.loc[str(res["id"])])
                cap.value = (f"<b>#{int(res['rank'])}</b> {html.escape(label)}<br>score "
                             f"{float(res['score']):.3f}<br><small>id {html.escape(str(res['id']))}"
                             f"<br>same {html.escape(same)}</small>")
                box.layout.visibility = "visible"
            else:
                cap.value = ""
                box.layout.visibility = "hidden"
        shown = len(self.results)
        note = "" if shown == self.k else f" (only {shown}: the filter leaves fewer)"
        self.status.value = (f"{self.selected}: {shown} neighbours, filter "
                             f"{self.filter_mode.label}{note}")

