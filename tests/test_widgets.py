"""The recommender's plain-figure views and the explorer's thumbnails."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fashion_utils.views import plots, widgets
from fashion_utils.recommend.similarity import SimilarityIndex

from conftest import saved_pixels

matplotlib.use("Agg")

CLASSES = ["Shirt", "Sneaker", "Bag"]


def test_plain_figure_views(explorer_data):
    catalog, index = explorer_data
    grid = widgets.render_recommendation_grid(catalog, index, ["100", "101"], k=5)
    assert len(grid.axes) == 12
    page = widgets.render_thumbnail_page(catalog, ["100", "101", "102"], ncols=3)
    assert len(page.axes) == 3
    new = widgets.render_recommendations(catalog, index.query("100", 3), query=catalog.loc[1, "image_path"])
    assert new.axes[0].get_title() == "query (new image)"
    for f in (grid, page, new):
        matplotlib.pyplot.close(f)


def test_png_thumbnail_keeps_aspect_and_rejects_bad_size(tmp_path):
    path = tmp_path / "wide.png"
    Image.fromarray(np.zeros((10, 40, 3), np.uint8)).save(path)
    img = Image.open(__import__("io").BytesIO(widgets.png_thumbnail(str(path), 40)))
    assert img.size == (40, 40) and np.asarray(img)[0, 0].tolist() == [255, 255, 255]  # white padding
    with pytest.raises(ValueError, match="size=4"):
        widgets.png_thumbnail(str(path), 4)


# --------------------------------------------------------------------------- figures that scale


@pytest.fixture
def many_classes(tmp_path):
    """60 classes of 2 to 6 products (photos of 900x1200 px) and an index over them."""
    rng = np.random.default_rng(1)
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (900, 1200), (90, 30, 160)).save(photo)
    sizes = {f"type {c:02d}": 2 + c % 5 for c in range(60)}
    labels = [label for label, n in sizes.items() for _ in range(n)]
    catalog = pd.DataFrame({"id": [f"p/{i}" for i in range(len(labels))],
                            "image_path": str(photo), "articleType": labels})
    index = SimilarityIndex(catalog["id"], rng.standard_normal((len(labels), 8)),
                            metadata=catalog[["id", "articleType"]])
    return catalog, index, sizes


def test_a_recommendation_grid_of_60_classes_shows_20_queries_of_the_largest(many_classes,
                                                                            notebook_style):
    catalog, index, sizes = many_classes
    queries = catalog.groupby("articleType").head(1)["id"].tolist()  # one per class, as in 05
    fig = widgets.render_recommendation_grid(catalog, index, queries, k=5, suptitle="Top 5")
    shown = [ax.get_title().split("\n")[1] for ax in fig.axes
             if ax.get_title().startswith("query")]
    assert len(shown) == widgets.MAX_CLASSES == 20
    assert min(sizes[c] for c in shown) >= max(sizes[c] for c in sizes if c not in shown)
    assert fig._suptitle.get_text() == "Top 5 (20 of 60 queries; 40 left out)"
    assert max(im.get_array().shape[0] for ax in fig.axes for im in ax.get_images()) \
        <= plots.THUMBNAIL_PX
    assert max(saved_pixels(fig)) <= plots.MAX_FIGURE_PX * 1.02


def test_a_short_recommendation_grid_is_one_query_per_row_and_checks_its_limit(many_classes):
    catalog, index, _ = many_classes
    fig = widgets.render_recommendation_grid(catalog, index, ["p/0", "p/1", "p/2"], k=3)
    assert len(fig.axes) == 3 * 4 and fig._suptitle is None
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="max_queries=0"):
        widgets.render_recommendation_grid(catalog, index, ["p/0"], max_queries=0)


def test_a_row_of_many_recommendations_stays_within_bounds(many_classes, notebook_style):
    catalog, index, _ = many_classes
    fig = widgets.render_recommendations(catalog, index.query("p/0", 40), query="p/0")
    assert len(fig.axes) == 41 and max(saved_pixels(fig)) <= plots.MAX_FIGURE_PX * 1.02
