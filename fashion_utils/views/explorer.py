"""The live recommendation explorer for JupyterLab and Voilà (ipywidgets).

:class:`RecommendationExplorer` shows a page of thumbnails with a class filter, a search box
and a picker; the chosen product (or your own uploaded photo) large; and its top-k neighbours
beneath, each with its score and the attributes it shares with the query, updated on every
pick. Filters on every attribute column ("same", "different" or a value) combine; results show
one product per near-duplicate group, and "diversify" re-ranks them for variety (maximal
marginal relevance, ``fashion_utils.recommend.rerank``). Every part carries a stable CSS class
(``fu-explorer``, ``fu-picker``, ``fu-upload``, ``fu-filter``, ``fu-query-image``,
``fu-result-image``, ``fu-result-caption``...) for browser tests.

An uploaded photo travels to the kernel as one websocket message: Jupyter refuses messages over
10 MiB (``--ServerApp.tornado_settings`` / ``--Voila.tornado_settings``
``{'websocket_max_message_size': ...}`` raise it), so photos up to
``image_files.MAX_UPLOAD_BYTES`` are taken and larger ones refused with a message.
"""

from __future__ import annotations

import contextlib
import html
import re
import tempfile
from typing import Any, Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from fashion_utils.catalog import image_files
from fashion_utils.recommend import rerank
from fashion_utils.recommend.near_duplicates import collapse_neighbours
from fashion_utils.views.widgets import (announce_widgets, catalog_by_id, item_label,
                                         png_thumbnail, render_recommendations,
                                         shared_attributes, unannounced_widgets)

ALL = "(all)"
#: A filter dropdown's "no condition" value.
ANY = "any"
#: Columns never offered as filters (identifiers, names, files).
NOT_ATTRIBUTES = ("id", "image_path", "productDisplayName", "filename", "link", "split")
#: A column with more distinct values than this is not an attribute (a name, a free text).
MAX_FILTER_VALUES = 250


def attribute_columns(frame: pd.DataFrame) -> list[str]:
    """The columns of ``frame`` worth filtering on: 2 to :data:`MAX_FILTER_VALUES` distinct
    values, not an identifier, name or file column."""
    return [c for c in frame.columns if c not in NOT_ATTRIBUTES
            and 2 <= frame[c].nunique(dropna=True) <= MAX_FILTER_VALUES]


def _filter_value(spec: Any) -> str:
    return spec if spec in ("same", "different") else f"={spec}"


class RecommendationExplorer:
    """An ipywidgets explorer: pick a product or upload a photo, see its k nearest products.

    Args:
        index: a :class:`fashion_utils.recommend.similarity.SimilarityIndex` (with metadata for filters).
        catalog: the catalog (``id``, ``image_path``, label columns); only ids in the index
            are browsable.
        k: neighbours shown.
        label_column: the class filter's column and the label under each image.
        filters: initial filters, e.g. ``{"gender": "same", "masterCategory": "Footwear"}``:
            per column ``"same"``, ``"different"`` or one value.
        filter_columns: columns offered as filters (default: :func:`attribute_columns` of the
            index metadata).
        name_column: extra text searched by the search box (default ``productDisplayName``
            when present).
        page_size: thumbnails per page.
        thumb_px, query_px, result_px: image sizes in pixels.
        start: the id selected first (default: the first browsable one).
        groups: a near-duplicate group per id (``near_duplicates.near_duplicate_groups``, as a
            mapping or a Series indexed by id): the results then show one product per group and
            none of the query's own, unless the "one per near-duplicate group" box is cleared.
        embed_files: image paths → ``(n, D)`` vectors from the model that built the index
            (e.g. ``functools.partial(embeddings.embed_image_files, model=..., image_size=...)``);
            without it the upload control is disabled.
        trade_off: the "diversify" box's MMR trade-off (1: plain ranking).
        upload_dir: where uploaded photos are stored (default: a temporary folder).
        max_upload_bytes: the largest photo taken (Jupyter's websocket takes at most 10 MiB).

    Attributes:
        widget: the root ``ipywidgets.VBox`` (CSS class ``fu-explorer``): display it.
        picker: the ``Dropdown`` of the page's products; setting its ``value`` picks one.
        filter_boxes: column → its filter ``Dropdown``.
        upload: the ``FileUpload`` control.
        results: the neighbours shown now (a DataFrame from ``index.query``).
        photo: the uploaded photo's stored path while it is the query, else ``None``.
    """

    def __init__(self, index: Any, catalog: pd.DataFrame, *, k: int = 5,
                 label_column: str = "articleType", filters: Mapping[str, Any] | None = None,
                 filter_columns: Sequence[str] | None = None, name_column: str | None = None,
                 page_size: int = 24, thumb_px: int = 72, query_px: int = 200,
                 result_px: int = 128, start: str | None = None,
                 groups: Mapping[str, Any] | None = None,
                 embed_files: Callable[[list[str]], Any] | None = None,
                 trade_off: float = rerank.DEFAULT_TRADE_OFF,
                 upload_dir: str | None = None,
                 max_upload_bytes: int = image_files.MAX_UPLOAD_BYTES) -> None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer. Received: k={k!r}")
        if page_size < 1:
            raise ValueError(f"page_size must be >= 1. Received: page_size={page_size!r}")
        if filters is not None and not isinstance(filters, Mapping):
            raise ValueError(f"filters must be a dict such as {{'gender': 'same'}}. Received: "
                             f"filters={filters!r}")
        cat = catalog_by_id(catalog)
        cat = cat[cat.index.isin(set(index.ids))]
        if cat.empty:
            raise ValueError("No catalog id is in the index: nothing to explore")
        if label_column not in cat.columns:
            raise ValueError(f"label_column {label_column!r} not in the catalog columns "
                             f"{list(cat.columns)}")
        self.index, self.catalog, self.k = index, cat, int(k)
        self.label_column, self.page_size = label_column, int(page_size)
        self.thumb_px, self.query_px, self.result_px = int(thumb_px), int(query_px), int(result_px)
        self.name_column = name_column or ("productDisplayName" if "productDisplayName"
                                           in cat.columns else None)
        self.embed_files, self.trade_off = embed_files, rerank.check_trade_off(trade_off)
        self.upload_dir = upload_dir or tempfile.mkdtemp(prefix="fashion-uploads-")
        self.max_upload_bytes = int(max_upload_bytes)
        self.results: pd.DataFrame = pd.DataFrame(columns=["rank", "id", "score"])
        self.selected: str | None = None
        self.photo: Any = None
        self._photo_vector: np.ndarray | None = None
        self._filtered: list[str] = cat.index.tolist()
        self._page = 0
        self._syncing = False
        self._unsent: list[Any] = []  # widgets made, not yet announced to the frontend
        self._announced = False
        with unannounced_widgets(self._unsent):  # announced on the first use of .widget
            self._build(index, filters=filters, filter_columns=filter_columns, groups=groups,
                        start=start)

    def _build(self, index: Any, *, filters: Mapping[str, Any] | None,
               filter_columns: Sequence[str] | None, groups: Mapping[str, Any] | None,
               start: str | None) -> None:
        """Make every control and show the first product (the widgets stay unannounced)."""
        import ipywidgets as w

        cat, label_column, embed_files = self.catalog, self.label_column, self.embed_files

        self._values: dict[str, dict[str, Any]] = {}  # column -> dropdown value -> filter value
        filters = dict(filters or {})
        if filters:
            index.filter_mask(filters, query_position=0)  # fails early on unknown columns
        meta = index.metadata
        columns = list(attribute_columns(meta) if filter_columns is None and meta is not None
                       else filter_columns or [])
        columns += [c for c in filters if c not in columns]
        self.filter_boxes = {c: self._filter_box(c, filters.get(c)) for c in columns}

        classes = sorted(cat[label_column].dropna().astype(str).unique())
        self.class_filter = w.Dropdown(options=[ALL, *classes], value=ALL, description="class")
        self.search = w.Text(placeholder="id or name, then Enter", description="search",
                             continuous_update=False)
        self.groups = None if groups is None else {str(i): g for i, g in dict(groups).items()}
        self.distinct = w.Checkbox(value=groups is not None, disabled=groups is None,
                                   description="one per near-duplicate group", indent=False)
        self.diversify = w.Checkbox(value=False, indent=False,
                                    description=f"diversify (MMR {self.trade_off:g})")
        self.upload = w.FileUpload(accept="image/*", multiple=False, description="your photo",
                                   disabled=embed_files is None)
        limit = image_files.human_bytes(self.max_upload_bytes)
        self.upload_note = w.HTML(f"<small>a JPEG/PNG up to {limit}</small>" if embed_files
                                  else "<small>upload needs embed_files</small>")
        self.picker = w.Dropdown(options=[], description="product")
        self.prev_button = w.Button(description="◀ prev", layout=w.Layout(width="80px"))
        self.next_button = w.Button(description="next ▶", layout=w.Layout(width="80px"))
        self.page_label = w.Label()
        self.thumbnails = w.GridBox(layout=w.Layout(
            grid_template_columns=f"repeat(auto-fill, {self.thumb_px + 16}px)", grid_gap="4px"))
        self.query_image = self._image(self.query_px)
        self.query_caption = w.HTML()
        self.result_images = [self._image(self.result_px) for _ in range(self.k)]
        self.result_captions = [w.HTML() for _ in range(self.k)]
        self.result_buttons = [w.Button(description="more like this",
                                        layout=w.Layout(width=f"{self.result_px}px"))
                               for _ in range(self.k)]
        self.status = w.HTML()
        self._result_boxes = [w.VBox([img, cap, btn]) for img, cap, btn in
                              zip(self.result_images, self.result_captions, self.result_buttons)]
        self.results_box = w.HBox(self._result_boxes)
        self.filters_box = w.Box(list(self.filter_boxes.values()),
                                 layout=w.Layout(flex_flow="row wrap"))
        query_box = w.VBox([w.HTML("<b>query</b>"), self.query_image, self.query_caption])
        self._root = w.VBox([
            w.HBox([self.class_filter, self.search]),
            w.HBox([self.picker, self.upload, self.upload_note]),
            self.filters_box,
            w.HBox([self.distinct, self.diversify]),
            w.HBox([self.prev_button, self.page_label, self.next_button]),
            self.thumbnails,
            w.HBox([query_box, w.VBox([w.HTML(f"<b>top {self.k} similar products</b>"),
                                       self.results_box])]),
            self.status,
        ])
        self._add_classes()
        for btn in self.result_buttons:
            btn.on_click(self._on_result_click)
        self.class_filter.observe(self._on_refilter, names="value")
        self.search.observe(self._on_search, names="value")
        for box in [*self.filter_boxes.values(), self.distinct, self.diversify]:
            box.observe(lambda _: self._refresh(), names="value")
        self.upload.observe(self._on_upload, names="value")
        self.picker.observe(self._on_pick, names="value")
        self.prev_button.on_click(lambda _: self._turn(-1))
        self.next_button.on_click(lambda _: self._turn(+1))
        first = str(start) if start is not None else self._filtered[0]
        self._render_page()
        self.select(first)

    # ----------------------------------------------------------------- public API

    @property
    def widget(self) -> Any:
        """The root ``ipywidgets.VBox`` (CSS class ``fu-explorer``): display it.

        The explorer's widgets reach the frontend only here, on first use: an explorer that is
        built but never shown (papermill's static figure, ``render``) opens no comm, so no
        widget state is saved in the executed notebook.
        """
        if not self._announced:
            announce_widgets(self._unsent)
            self._announced = True
        return self._root

    @property
    def filters(self) -> dict[str, Any] | None:
        """The filters chosen in the dropdowns, as passed to ``index.query`` (None: none)."""
        chosen = {}
        for col, box in self.filter_boxes.items():
            if box.value in ("same", "different"):
                chosen[col] = box.value
            elif box.value != ANY:
                chosen[col] = self._values[col][box.value]
        return chosen or None

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

    def query_photo(self, content: bytes, *, name: str = "photo") -> None:
        """Make a photo (the file's bytes) the query: stored, embedded, searched like a product.

        A file that is empty, too large or not an image is refused with a message in the
        status line (``ValueError`` from ``image_files.save_uploaded_image``, also raised here).
        """
        if self.embed_files is None:
            raise ValueError("this explorer has no embed_files: it cannot embed a photo")
        try:
            path = image_files.save_uploaded_image(content, name=name, folder=self.upload_dir,
                                                   max_bytes=self.max_upload_bytes)
            vector = np.asarray(self.embed_files([str(path)]), dtype=np.float32)
            if vector.shape != (1, self.index.dim):
                raise ValueError(f"embed_files gave shape {vector.shape} for {name!r}; the index "
                                 f"holds {self.index.dim}-d vectors: use the model that built it")
        except ValueError as err:
            self.status.value = f"<span style='color:#C62828'>{html.escape(str(err))}</span>"
            raise
        self.photo, self._photo_vector, self._photo_name = path, vector[0], name
        self._refresh()

    def render(self) -> plt.Figure:
        """The current view (the query and its neighbours) as a matplotlib figure."""
        query = str(self.photo) if self.photo is not None else self.selected
        return render_recommendations(self.catalog, self.results, query=query,
                                      label_column=self.label_column)

    # ----------------------------------------------------------------- building

    def _image(self, px: int) -> Any:
        import ipywidgets as w

        return w.Image(format="png", width=px, height=px,
                       layout=w.Layout(width=f"{px}px", height=f"{px}px"))

    def _filter_box(self, column: str, spec: Any) -> Any:
        import ipywidgets as w

        meta = self.index.metadata
        values = sorted(meta[column].dropna().unique(), key=str)
        if spec is not None and not isinstance(spec, str) and np.ndim(spec):
            raise ValueError(f"the explorer's filter on {column!r} takes 'same', 'different' or "
                             f"one value. Received: {spec!r}")
        if spec is not None and spec not in ("same", "different") and spec not in values:
            values.append(spec)
        self._values[column] = {f"={v}": v for v in values}
        options = [(ANY, ANY), ("same as query", "same"), ("different", "different"),
                   *[(str(v), f"={v}") for v in values]]
        box = w.Dropdown(options=options, value=ANY if spec is None else _filter_value(spec),
                         description=column, style={"description_width": "initial"},
                         layout=w.Layout(width="250px"))
        box.add_class("fu-filter")
        box.add_class("fu-filter-" + re.sub(r"[^A-Za-z0-9_-]", "_", column))
        return box

    def _add_classes(self) -> None:
        for widget, css in [(self._root, "fu-explorer"), (self.class_filter, "fu-class-filter"),
                            (self.search, "fu-search"), (self.filters_box, "fu-filters"),
                            (self.picker, "fu-picker"), (self.distinct, "fu-distinct"),
                            (self.diversify, "fu-diversify"), (self.upload, "fu-upload"),
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

    # ----------------------------------------------------------------- browsing

    def _caption_text(self, row: pd.Series) -> str:
        label = item_label(self.catalog.loc[str(row["id"])], self.label_column)
        return f"#{int(row['rank'])} {label} · score {float(row['score']):.3f} · id {row['id']}"

    def _option(self, item_id: str) -> tuple[str, str]:
        row = self.catalog.loc[item_id]
        name = (f" · {row[self.name_column]}" if self.name_column and pd.notna(row[self.name_column])
                else "")
        return f"{item_id} · {item_label(row, self.label_column)}{name}"[:80], item_id

    def _render_page(self, keep: str | None = None) -> None:
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
        with (contextlib.nullcontext() if self._announced
              else unannounced_widgets(self._unsent)):
            self.thumbnails.children = self._thumbnail_cells(ids)
        lo = self._page * self.page_size
        self.page_label.value = (f"page {self._page + 1}/{n_pages} · items {lo + 1 if ids else 0}–"
                                 f"{lo + len(ids)} of {len(self._filtered):,}")
        self.prev_button.disabled = self._page == 0
        self.next_button.disabled = self._page >= n_pages - 1

    def _thumbnail_cells(self, ids: Sequence[str]) -> list[Any]:
        import ipywidgets as w

        cells = []
        for item_id in ids:
            path = str(self.catalog.loc[item_id, "image_path"])
            img = self._image(self.thumb_px)
            img.value = png_thumbnail(path, self.thumb_px)
            img.add_class("fu-thumb-image")
            btn = w.Button(description=item_id, tooltip=self._option(item_id)[0],
                           layout=w.Layout(width=f"{self.thumb_px + 12}px"))
            btn.add_class("fu-thumb-button")
            btn.on_click(lambda _, i=item_id: self._pick(i))
            cell = w.VBox([img, btn])
            cell.add_class("fu-thumbnail")
            cells.append(cell)
        return cells

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

    def _on_upload(self, change: dict) -> None:
        files = change["new"]
        if not files:
            return
        upload = files[0]
        try:
            self.query_photo(upload["content"], name=str(upload.get("name", "photo")))
        except ValueError:
            pass  # the status line says why
        finally:
            self.upload.value = ()  # the same photo can be chosen again

    def _on_refilter(self, _change: dict | None = None) -> None:
        if self._syncing:
            return
        cat = self.catalog
        keep = np.ones(len(cat), dtype=bool)
        if self.class_filter.value != ALL:
            keep &= cat[self.label_column].astype(str).to_numpy() == self.class_filter.value
        text = self.search.value.strip().lower()
        if text:
            hit = cat.index.str.lower().str.startswith(text) | cat[self.label_column].astype(
                str).str.lower().str.contains(text, regex=False).to_numpy()
            if self.name_column:
                hit |= cat[self.name_column].astype(str).str.lower().str.contains(
                    text, regex=False).to_numpy()
            keep &= np.asarray(hit)
        self._filtered = cat.index[keep].tolist()
        self._page = 0
        if self._filtered:
            self._render_page(keep=self._filtered[0])
            self._pick(self._filtered[0])
        else:
            self._render_page()
            self.status.value = (f"<i>nothing matches class={self.class_filter.value!r}, "
                                 f"search={text!r}</i>")

    def _on_search(self, change: dict) -> None:
        if self._syncing:
            return
        text = change["new"].strip()
        if text in self.catalog.index:
            self.select(text)
        else:
            self._on_refilter()

    # ----------------------------------------------------------------- results

    def _one_per_group(self, results: pd.DataFrame, *, k: int) -> pd.DataFrame:
        """The first result of each near-duplicate group, none of the query's, at most k
        (``near_duplicates.collapse_neighbours`` on the ranked results)."""
        ids = results["id"].astype(str).tolist()
        keys = [self.groups.get(i, ("alone", i)) for i in ids]
        keys.append(("photo",) if self.photo is not None
                    else self.groups.get(self.selected, ("query",)))
        codes: dict[Any, int] = {}
        groups = np.array([codes.setdefault(key, len(codes)) for key in keys])
        kept = collapse_neighbours(np.arange(len(ids))[None], [len(ids)], groups, k=k)[0]
        return results.iloc[kept[kept >= 0]]

    def _search(self) -> tuple[pd.DataFrame, str]:
        """The results for the current query, and a note on filters it could not apply."""
        filters, note = self.filters, ""
        if self.photo is not None and filters:
            relative = [c for c, v in filters.items() if v in ("same", "different")]
            filters = {c: v for c, v in filters.items() if c not in relative} or None
            if relative:
                note = (f"; 'same'/'different' compare with a catalog product, not applied to "
                        f"your photo: {', '.join(relative)}")
        collapse = self.groups is not None and self.distinct.value
        deep = rerank.POOL_FACTOR * self.k if collapse or self.diversify.value else self.k
        query = self._photo_vector if self.photo is not None else self.selected
        results = self.index.query(query, deep, filters=filters)
        if collapse:
            results = self._one_per_group(results, k=deep)
        if self.diversify.value:
            order = rerank.diversify_results(self.index, results["id"].tolist(),
                                             results["score"].to_numpy(), self.k,
                                             trade_off=self.trade_off)
            results = results.iloc[order]
        results = results.head(self.k)
        return results.assign(rank=np.arange(1, len(results) + 1)).reset_index(drop=True), note

    def _show(self, item_id: str | None) -> None:
        if item_id is not None:
            self.selected, self.photo = str(item_id), None
            self._refresh()

    def _refresh(self) -> None:
        """Show the query (the picked product, or the uploaded photo) and its results."""
        if self.photo is not None:
            row, what = None, f"your photo {self._photo_name!r}"
            self.query_image.value = png_thumbnail(str(self.photo), self.query_px)
            self.query_caption.value = f"<b>your photo</b> · {html.escape(self._photo_name)}"
        elif self.selected is not None:
            row, what = self.catalog.loc[self.selected], self.selected
            self.query_image.value = png_thumbnail(str(row["image_path"]), self.query_px)
            name = f"<br>{html.escape(str(row[self.name_column]))}" if self.name_column else ""
            self.query_caption.value = (f"<b>{html.escape(item_label(row, self.label_column))}</b>"
                                        f" · id {html.escape(self.selected)}{name}")
        else:
            return
        try:
            self.results, note = self._search()
        except ValueError as err:  # e.g. a filter column the metadata lacks
            self.results = pd.DataFrame(columns=["rank", "id", "score"])
            self.status.value = f"<span style='color:#C62828'>{html.escape(str(err))}</span>"
            return
        for slot, (img, cap, box) in enumerate(zip(self.result_images, self.result_captions,
                                                   self._result_boxes)):
            if slot < len(self.results):
                res = self.results.iloc[slot]
                found = self.catalog.loc[str(res["id"])]
                img.value = png_thumbnail(str(found["image_path"]), self.result_px)
                why = "" if row is None else f"<br>same {html.escape(shared_attributes(row, found))}"
                cap.value = (f"<b>#{int(res['rank'])}</b> "
                             f"{html.escape(item_label(found, self.label_column))}<br>score "
                             f"{float(res['score']):.3f}<br><small>id {html.escape(str(res['id']))}"
                             f"{why}</small>")
                box.layout.visibility = "visible"
            else:
                cap.value = ""
                box.layout.visibility = "hidden"
        shown = len(self.results)
        fewer = "" if shown == self.k else f" (only {shown}: the filter leaves fewer)"
        chosen = ", ".join(f"{c} {v}" for c, v in (self.filters or {}).items()) or "none"
        self.status.value = html.escape(f"{what}: {shown} neighbours, filters {chosen}"
                                        f"{fewer}{note}")
