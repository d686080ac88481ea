"""The live recommendation explorer, driven from Python: picks, filters, near-duplicates,
diversify and your own photo."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fashion_utils.catalog import image_files
from fashion_utils.recommend import rerank
from fashion_utils.views.explorer import ALL, ANY, RecommendationExplorer, attribute_columns
from fashion_utils.recommend.similarity import SimilarityIndex

matplotlib.use("Agg")


@pytest.fixture
def explorer(explorer_data):
    catalog, index = explorer_data
    return RecommendationExplorer(index, catalog, k=5, page_size=12, thumb_px=32, query_px=64,
                                  result_px=48)


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
    explorer.class_filter.value = ALL
    assert explorer.page_ids[0] == "100" and not explorer.next_button.disabled
    explorer.next_button.click()
    assert explorer.page_ids[0] == "112" and explorer.prev_button.disabled is False


def test_search_box_finds_ids_and_names(explorer):
    explorer.search.value = "125"  # an exact id: selected at once, even on another page
    assert explorer.selected == "125" and "125" in explorer.page_ids
    explorer.search.value = "sneaker"
    assert explorer.page_ids and all("Sneaker" in explorer.catalog.loc[i, "productDisplayName"]
                                     for i in explorer.page_ids)


def test_every_attribute_column_gets_a_filter_and_they_combine(explorer):
    assert list(explorer.filter_boxes) == ["articleType", "gender"]  # not id
    assert all("fu-filter" in box._dom_classes for box in explorer.filter_boxes.values())
    explorer.filter_boxes["articleType"].value = "different"
    own = explorer.catalog.loc[explorer.selected]
    assert len(explorer.results) == 5 and (explorer.results["articleType"] != own["articleType"]).all()
    explorer.filter_boxes["gender"].value = "same"  # both at once
    assert explorer.filters == {"articleType": "different", "gender": "same"}
    assert len(explorer.results) == 5
    assert (explorer.results["articleType"] != own["articleType"]).all()
    assert (explorer.results["gender"] == own["gender"]).all()
    explorer.filter_boxes["articleType"].value = "=Bag"  # a value
    assert explorer.filters == {"articleType": "Bag", "gender": "same"}
    assert set(explorer.results["articleType"]) == {"Bag"}
    assert "filters articleType Bag, gender same" in explorer.status.value


def test_given_filters_are_preset_in_their_dropdowns(explorer_data):
    catalog, index = explorer_data
    exp = RecommendationExplorer(index, catalog, filters={"articleType": "Bag",
                                                          "gender": "same"}, page_size=12)
    assert exp.filter_boxes["articleType"].value == "=Bag"
    assert exp.filter_boxes["gender"].value == "same"
    assert exp.filters == {"articleType": "Bag", "gender": "same"}
    assert (exp.results["articleType"] == "Bag").all()
    for box in exp.filter_boxes.values():
        box.value = ANY
    assert exp.filters is None and len(exp.results) == 5


def test_attribute_columns_skip_ids_names_and_constant_columns():
    frame = pd.DataFrame({"id": ["1", "2", "3"], "productDisplayName": ["a", "b", "c"],
                          "gender": ["Men", "Women", "Men"], "season": ["Fall"] * 3,
                          "year": [2011, 2012, 2012]})
    assert attribute_columns(frame) == ["gender", "year"]


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
    exp = RecommendationExplorer(index, catalog, k=5, page_size=12,
                                         filters={"articleType": "Bag", "gender": "Women"})
    exp.select("102")  # a Bag, Women
    assert len(exp.results) == 4 and set(exp.results["articleType"]) == {"Bag"}
    assert "(only 4: the filter leaves fewer)" in exp.status.value
    visible = [box.layout.visibility for box in exp._result_boxes]
    assert visible == ["visible"] * 4 + ["hidden"]
    assert exp.result_captions[4].value == ""


def test_near_duplicates_show_once_and_never_the_querys_own(explorer_data):
    catalog, index = explorer_data
    plain = RecommendationExplorer(index, catalog, k=5, page_size=12, start="100")
    first = plain.results["id"].tolist()
    groups = {i: i for i in catalog["id"]}
    groups[first[0]] = "100"  # a shot of the query itself
    groups[first[2]] = first[1]  # two shots of one product
    exp = RecommendationExplorer(index, catalog, k=5, page_size=12, start="100",
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
        RecommendationExplorer(index, catalog, label_column="colour")
    with pytest.raises(ValueError, match="Unknown filter column 'size'"):
        RecommendationExplorer(index, catalog, filters={"size": "same"})
    with pytest.raises(ValueError, match=r"one value. Received: \['Bag', 'Shirt'\]"):
        RecommendationExplorer(index, catalog, filters={"articleType": ["Bag", "Shirt"]})
    with pytest.raises(ValueError, match="trade_off=1.5"):
        RecommendationExplorer(index, catalog, trade_off=1.5)
    with pytest.raises(KeyError, match="999"):
        RecommendationExplorer(index, catalog).select("999")




def test_the_current_view_as_a_figure(explorer):
    fig = explorer.render()
    assert len(fig.axes) == 6 and "score" not in fig.axes[0].get_title()
    assert fig.axes[1].get_title().startswith(f"{explorer.results.iloc[0]['score']:.3f}")
    matplotlib.pyplot.close(fig)


# --------------------------------------------------------------------------- diversify


def test_diversify_trades_similarity_for_variety_and_turns_off(explorer_data):
    catalog, index = explorer_data
    explorer = RecommendationExplorer(index, catalog, k=5, page_size=12, trade_off=0.3)
    plain = explorer.results.copy()
    explorer.diversify.value = True
    varied = explorer.results
    assert "fu-diversify" in explorer.diversify._dom_classes
    assert explorer.diversify.description == "diversify (MMR 0.3)"
    assert len(varied) == 5 and varied["rank"].tolist() == [1, 2, 3, 4, 5]
    assert varied["id"].tolist() != plain["id"].tolist()
    assert varied.iloc[0]["id"] == plain.iloc[0]["id"]  # MMR's first pick is the closest
    vectors = explorer.index.vectors
    pos = lambda frame: explorer.index.positions(frame["id"].tolist())[None]  # noqa: E731
    assert (rerank.mean_pairwise_similarity(vectors, pos(varied))
            < rerank.mean_pairwise_similarity(vectors, pos(plain)))
    assert varied["score"].sum() <= plain["score"].sum()  # it gives up some similarity
    explorer.diversify.value = False
    assert explorer.results["id"].tolist() == plain["id"].tolist()


def test_diversify_at_trade_off_one_is_the_plain_ranking(explorer_data):
    catalog, index = explorer_data
    exp = RecommendationExplorer(index, catalog, trade_off=1.0, start="104")
    plain = exp.results["id"].tolist()
    exp.diversify.value = True
    assert exp.results["id"].tolist() == plain


# --------------------------------------------------------------------------- your own photo


def _upload_value(name, content):
    import datetime

    return ({"name": name, "type": "image/png", "size": len(content),
             "content": memoryview(content),
             "last_modified": datetime.datetime.now(datetime.timezone.utc)},)


def _png_bytes(array):
    import io

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def photo_explorer(explorer_data, tmp_path):
    """An explorer whose "model" maps any photo to product 104's vector plus its mean grey."""
    catalog, index = explorer_data
    seen = []

    def embed_files(paths):
        seen.extend(paths)
        grey = np.asarray(Image.open(paths[0]).convert("L"), np.float32).mean() / 255
        return (index.vector("104") + grey * np.eye(index.dim)[7])[None]

    exp = RecommendationExplorer(index, catalog, k=5, page_size=12, embed_files=embed_files,
                                 upload_dir=str(tmp_path / "uploads"), max_upload_bytes=4096)
    exp.embedded = seen
    return exp


def test_an_uploaded_photo_is_embedded_and_searched_like_a_product(photo_explorer):
    exp = photo_explorer
    photo = np.full((40, 30, 3), 200, np.uint8)
    exp.upload.value = _upload_value("my shirt.png", _png_bytes(photo))
    assert exp.photo is not None and exp.photo.suffix == ".png" and len(exp.embedded) == 1
    vector = exp.embed_files([str(exp.photo)])[0]
    expected = exp.index.query(vector, 5)
    assert exp.results["id"].tolist() == expected["id"].tolist()
    assert np.allclose(exp.results["score"], expected["score"])
    assert "your photo" in exp.query_caption.value and "my shirt.png" in exp.query_caption.value
    assert exp.query_image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert all("same " not in c.value for c in exp.result_captions)  # nothing known to share
    assert exp.upload.value == ()  # ready for the next photo
    exp.filter_boxes["articleType"].value = "=Bag"  # a value filter applies to a photo
    assert set(exp.results["articleType"]) == {"Bag"}
    exp.filter_boxes["gender"].value = "same"  # "same" needs a catalog product: said, not applied
    assert set(exp.results["articleType"]) == {"Bag"} and len(exp.results) == 5
    assert "not applied to your photo: gender" in exp.status.value
    exp.select("101")  # picking a product makes it the query again
    assert exp.photo is None and exp.selected == "101"


def test_a_bad_upload_is_refused_with_a_message_and_the_view_kept(photo_explorer):
    exp = photo_explorer
    before = exp.results.copy()
    exp.upload.value = _upload_value("notes.txt", b"not an image at all")
    assert "notes.txt" in exp.status.value and "not an image" in exp.status.value
    assert exp.photo is None
    pd.testing.assert_frame_equal(exp.results, before)
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    exp.upload.value = _upload_value("huge.png", _png_bytes(noise))  # > 4096 bytes
    assert "huge.png" in exp.status.value and "up to 4.0 KiB are accepted" in exp.status.value
    assert exp.photo is None
    assert exp.embedded == []
    with pytest.raises(ValueError, match="is empty"):
        exp.query_photo(b"", name="empty.png")


def test_without_a_model_the_upload_is_disabled(explorer):
    assert explorer.upload.disabled and "fu-upload" in explorer.upload._dom_classes
    with pytest.raises(ValueError, match="no embed_files"):
        explorer.query_photo(b"x")


def test_an_explorer_never_shown_announces_no_widget_and_showing_it_announces_all(
        explorer_data, monkeypatch):
    """Issue 30: papermill saved 731 KB of widget state for an explorer it only rendered as a
    figure. Built, it opens no frontend comm; its first ``.widget`` opens one per widget, the
    root's among them, and the explorer still works."""
    import comm

    opened = []

    def kernel_comm(*args, **kwargs):  # what ipykernel puts in place: a comm_open per call
        made = comm.DummyComm(*args, **kwargs)
        opened.append(made.comm_id)
        return made

    monkeypatch.setattr(comm, "create_comm", kernel_comm)
    catalog, index = explorer_data
    exp = RecommendationExplorer(index, catalog, k=5, page_size=12, thumb_px=32, query_px=64,
                                 result_px=48)
    exp.select(exp.page_ids[3])  # used, not shown: still nothing announced
    assert len(exp.results) == 5 and exp.render() is not None
    assert opened == []
    root = exp.widget
    assert root.model_id in opened and exp.picker.model_id in opened
    assert len(opened) > 20 and exp.widget is root  # once
    before = len(opened)
    exp.select(exp.catalog.index[-1])  # a new page once shown: its thumbnails announced at once
    assert len(opened) > before
