"""The recommendation explorer, driven from Python, and its plain-figure views."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fashion_utils import plots, widgets
from fashion_utils.similarity import SimilarityIndex

from conftest import saved_pixels

matplotlib.use("Agg")

CLASSES = ["Shirt", "Sneaker", "Bag"]


@pytest.fixture
def explorer_data(tmp_path):
    """30 tiny PNG products in 3 classes, with class-structured 8-d vectors."""
    rng = np.random.default_rng(0)
    rows, vectors = [], []
    for i in range(30):
        cls = i % 3
        img = np.full((12, 12, 3), 40 * cls, np.uint8)
        img[3:9, 3:9] = (rng.integers(0, 255, 3)).astype(np.uint8)
        path = tmp_path / f"{i}.png"
        Image.fromarray(img).save(path)
        rows.append({"id": str(100 + i), "image_path": str(path), "articleType": CLASSES[cls],
                     "gender": "Men" if i % 2 else "Women", "productDisplayName": f"Item {i} {CLASSES[cls]}"})
        vectors.append(np.eye(8)[cls] * 3 + rng.standard_normal(8))
    catalog = pd.DataFrame(rows)
    index = SimilarityIndex(catalog["id"], np.array(vectors),
                            metadata=catalog[["id", "articleType", "gender"]])
    return catalog, index


@pytest.fixture
def explorer(explorer_data):
    catalog, index = explorer_data
    return widgets.RecommendationExplorer(index, catalog, k=5, page_size=12, thumb_px=32,
                                          query_px=64, result_px=48)


def _caption_ids(exp):
    return [c.value.rsplit("id ", 1)[1].split("<")[0] for c in exp.result_captions if c.value]


def test_explorer_shows_five_results_with_scores_and_updates_on_pick(explorer):
    first = explorer.selected
    assert first == "100"
    assert len(explorer.results) == 5 and len(explorer.captions) == 5
    assert all("score" in c.value for c in explorer.result_captions)
    before = _caption_ids(explorer)
    assert first not in before

    explorer.picker.value = "104"  # what a click in the dropdown does
    assert explorer.selected == "104"
    after = _caption_ids(explorer)
    assert len(after) == 5 and after != before and "104" not in after
    assert after == explorer.results["id"].tolist()
    scores = [float(c.split("score ")[1].split(" ")[0]) for c in explorer.captions]
    assert scores == sorted(scores, reverse=True)


def test_explorer_images_are_png_with_size_and_css_classes(explorer):
    assert "fu-explorer" in explorer.widget._dom_classes
    assert "fu-picker" in explorer.picker._dom_classes
    assert "fu-query-image" in explorer.query_image._dom_classes
    for img, cap in zip(explorer.result_images, explorer.result_captions):
        assert "fu-result-image" in img._dom_classes and "fu-result-caption" in cap._dom_classes
        assert img.value[:8] == b"\x89PNG\r\n\x1a\n" and int(img.width) > 0 and int(img.height) > 0
    thumbs = explorer.thumbnails.children
    assert len(thumbs) == 12 and all("fu-thumbnail" in t._dom_classes for t in thumbs)


def test_thumbnail_click_selects_that_product(explorer):
    thumb = explorer.thumbnails.children[3]
    thumb.children[1].click()
    assert explorer.selected == explorer.page_ids[3]


def test_class_filter_and_paging(explorer):
    explorer.class_filter.value = "Bag"
    assert all(explorer.catalog.loc[i, "articleType"] == "Bag" for i in explorer.page_ids)
    assert explorer.catalog.loc[explorer.selected, "articleType"] == "Bag"  # the first bag is shown
    explorer.class_filter.value = widgets.ALL
    assert explorer.page_ids[0] == "100" and not explorer.next_button.disabled
    explorer.next_button.click()
    assert explorer.page_ids[0] == "112" and explorer.prev_button.disabled is False


def test_search_box_finds_ids_and_names(explorer):
    explorer.search.value = "125"  # an exact id: selected at once, even on another page
    assert explorer.selected == "125" and "125" in explorer.page_ids
    explorer.search.value = "sneaker"
    assert explorer.page_ids and all("Sneaker" in explorer.catalog.loc[i, "productDisplayName"]
                                     for i in explorer.page_ids)


def test_similarity_filter_applies_to_results(explorer):
    explorer.filter_mode.value = "different:articleType"
    own = explorer.catalog.loc[explorer.selected, "articleType"]
    assert len(explorer.results) == 5 and (explorer.results["articleType"] != own).all()
    explorer.filter_mode.value = "same:gender"
    own = explorer.catalog.loc[explorer.selected, "gender"]
    assert (explorer.results["gender"] == own).all()


def test_a_value_filter_is_offered_as_given(explorer_data):
    catalog, index = explorer_data
    exp = widgets.RecommendationExplorer(index, catalog, filters={"articleType": "Bag"}, page_size=12)
    assert exp.filters == {"articleType": "Bag"} and (exp.results["articleType"] == "Bag").all()
    exp.filter_mode.value = widgets.NO_FILTER
    assert exp.filters is None


def test_a_search_with_no_match_says_so_and_keeps_the_last_pick(explorer):
    before, results = explorer.selected, explorer.results.copy()
    explorer.search.value = "no such product"
    assert explorer.page_ids == [] and "nothing matches" in explorer.status.value
    assert "no such product" in explorer.status.value
    assert explorer.selected == before  # the view still shows a product and its results
    pd.testing.assert_frame_equal(explorer.results, results)
    explorer.search.value = ""  # clearing the box brings the catalog back
    assert len(explorer.page_ids) == 12


def test_a_filter_that_leaves_fewer_than_k_results_shows_those_and_hides_the_rest(explorer_data):
    catalog, index = explorer_data
    # 10 bags, one of them the query: a "same articleType" filter on a bag leaves 9 >= 5,
    # so narrow it to one gender as well: 5 bags of its gender, one of them the query -> 4
    exp = widgets.RecommendationExplorer(index, catalog, k=5, page_size=12,
                                         filters={"articleType": "Bag", "gender": "Women"})
    exp.select("102")  # a Bag, Women
    assert len(exp.results) == 4 and set(exp.results["articleType"]) == {"Bag"}
    assert "(only 4: the filter leaves fewer)" in exp.status.value
    visible = [box.layout.visibility for box in exp._result_boxes]
    assert visible == ["visible"] * 4 + ["hidden"]
    assert exp.result_captions[4].value == ""


def test_near_duplicates_show_once_and_never_the_querys_own(explorer_data):
    catalog, index = explorer_data
    plain = widgets.RecommendationExplorer(index, catalog, k=5, page_size=12, start="100")
    first = plain.results["id"].tolist()
    groups = {i: i for i in catalog["id"]}
    groups[first[0]] = "100"  # a shot of the query itself
    groups[first[2]] = first[1]  # two shots of one product
    exp = widgets.RecommendationExplorer(index, catalog, k=5, page_size=12, start="100",
                                         groups=groups)
    shown = exp.results["id"].tolist()
    assert exp.distinct.value and len(shown) == 5 and exp.results["rank"].tolist() == [1, 2, 3,
                                                                                       4, 5]
    assert first[0] not in shown and first[2] not in shown and first[1] in shown
    assert len({groups[i] for i in shown}) == 5
    exp.distinct.value = False  # the box turns the collapse off
    assert exp.results["id"].tolist() == first
    assert "fu-distinct" in exp.distinct._dom_classes
    assert plain.distinct.disabled and not plain.distinct.value  # no groups: nothing to collapse


def test_each_result_says_what_it_shares_with_the_query(explorer):
    query = explorer.catalog.loc[explorer.selected]
    for caption, (_, res) in zip(explorer.result_captions, explorer.results.iterrows()):
        other = explorer.catalog.loc[res["id"]]
        expected = [c for c in ("articleType", "gender") if other[c] == query[c]]
        assert f"same {', '.join(expected) or 'nothing'}</small>" in caption.value


def test_more_like_this_follows_a_result(explorer):
    target = explorer.results.iloc[2]["id"]
    explorer.result_buttons[2].click()
    assert explorer.selected == target


def test_explorer_rejects_bad_options(explorer_data):
    catalog, index = explorer_data
    with pytest.raises(ValueError, match="label_column 'colour'"):
        widgets.RecommendationExplorer(index, catalog, label_column="colour")
    with pytest.raises(ValueError, match="Unknown filter column 'size'"):
        widgets.RecommendationExplorer(index, catalog, filters={"size": "same"})
    with pytest.raises(KeyError, match="999"):
        widgets.RecommendationExplorer(index, catalog).select("999")


def test_plain_figure_views(explorer, explorer_data):
    catalog, index = explorer_data
    fig = explorer.render()
    assert len(fig.axes) == 6 and "score" not in fig.axes[0].get_title()
    assert fig.axes[1].get_title().startswith(f"{explorer.results.iloc[0]['score']:.3f}")
    grid = widgets.render_recommendation_grid(catalog, index, ["100", "101"], k=5)
    assert len(grid.axes) == 12
    page = widgets.render_thumbnail_page(catalog, ["100", "101", "102"], ncols=3)
    assert len(page.axes) == 3
    new = widgets.render_recommendations(catalog, index.query("100", 3), query=catalog.loc[1, "image_path"])
    assert new.axes[0].get_title() == "query (new image)"
    for f in (fig, grid, page, new):
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
