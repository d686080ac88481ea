"""Exploration helpers, and the figures of notebook 01 on catalogs of any size."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from fashion_utils.catalog import eda
from fashion_utils.views import plots

from conftest import saved_pixels  # noqa: E402


@pytest.fixture()
def small_catalog(tmp_path):
    rows = []
    for i, (master, sub, mode, size) in enumerate([
            ("Apparel", "Topwear", "L", (28, 28)), ("Apparel", "Topwear", "RGB", (60, 80)),
            ("Apparel", "Bottomwear", "L", (28, 28)), ("Footwear", "Shoes", "RGBA", (30, 40))]):
        path = tmp_path / f"{i}.png"
        Image.new(mode, size).save(path)
        rows.append({"id": str(i), "image_path": str(path), "masterCategory": master, "subCategory": sub})
    return pd.DataFrame(rows)


def test_frequency_table_counts_and_shares(small_catalog):
    table = eda.frequency_table(small_catalog, "masterCategory")
    assert table.to_dict("list") == {"masterCategory": ["Apparel", "Footwear"], "count": [3, 1],
                                     "percent": [75.0, 25.0]}
    nested = eda.frequency_table(small_catalog, "subCategory", within="masterCategory")
    assert list(nested.columns) == ["masterCategory", "subCategory", "count", "percent"]
    assert nested["count"].sum() == 4 and nested.iloc[0]["subCategory"] == "Topwear"
    with pytest.raises(ValueError, match="colour"):
        eda.frequency_table(small_catalog, "colour")


def test_image_properties_reads_headers(small_catalog):
    props = eda.image_properties(small_catalog, sample_size=None)
    assert props["mode"].tolist() == ["L", "RGB", "L", "RGBA"]
    assert props[["width", "height"]].values.tolist() == [[28, 28], [60, 80], [28, 28], [30, 40]]
    assert (props["bytes"] > 0).all()
    assert len(eda.image_properties(small_catalog, sample_size=2)) == 2
    with pytest.raises(ValueError, match="sample_size=0"):
        eda.image_properties(small_catalog, sample_size=0)


def test_samples_per_class_caps_each_class(small_catalog):
    picked = eda.samples_per_class(small_catalog, "masterCategory", per_class=2)
    assert picked["masterCategory"].value_counts().to_dict() == {"Apparel": 2, "Footwear": 1}
    with pytest.raises(ValueError, match="per_class=0"):
        eda.samples_per_class(small_catalog, "masterCategory", per_class=0)


# --------------------------------------------------------------------------- figures that scale


@pytest.fixture(autouse=True)
def _style(notebook_style):
    """Every figure here is drawn and saved with the notebooks' style."""


def _many_classes(tmp_path, n_classes, *, per_class=3, side=300):
    """``n_classes`` classes of ``per_class`` photos each (class k has k + per_class items, so
    the largest classes are the last ones)."""
    folder = tmp_path / "photos"
    folder.mkdir(exist_ok=True)
    photo = folder / "photo.jpg"
    Image.new("RGB", (side, int(side * 4 / 3)), (200, 120, 40)).save(photo)
    rows = [{"id": f"{k}/{i}", "image_path": str(photo), "articleType": f"type {k:03d}"}
            for k in range(n_classes) for i in range(per_class + k % 7)]
    return pd.DataFrame(rows)


def test_samples_per_class_keeps_the_largest_classes(tmp_path):
    catalog = _many_classes(tmp_path, 30)
    picked = eda.samples_per_class(catalog, "articleType", per_class=2, max_classes=5)
    largest = catalog["articleType"].value_counts().index[:5].tolist()
    assert list(dict.fromkeys(picked["articleType"])) == largest
    with pytest.raises(ValueError, match="max_classes=0"):
        eda.samples_per_class(catalog, "articleType", max_classes=0)


def test_a_class_grid_of_100_classes_shows_the_20_largest_as_bounded_thumbnails(tmp_path):
    catalog = _many_classes(tmp_path, 100)
    fig = plots.class_grid(catalog, "articleType", per_class=8, seed=0)
    rows = {ax.get_subplotspec().rowspan.start for ax in fig.axes}
    assert len(rows) == plots.MAX_CLASSES == 20
    assert "the 20 largest of 100 classes; 80 left out" in fig._suptitle.get_text()
    images = [im.get_array() for ax in fig.axes for im in ax.get_images()]
    assert len(images) == 20 * 8 and max(max(a.shape[:2]) for a in images) <= plots.THUMBNAIL_PX
    assert max(saved_pixels(fig)) <= plots.MAX_FIGURE_PX * 1.02


def test_a_small_class_grid_is_drawn_whole_and_says_nothing_is_left_out(tmp_path):
    catalog = _many_classes(tmp_path, 3, per_class=2)
    fig = plots.class_grid(catalog, "articleType", per_class=4, title="Samples")
    assert fig._suptitle.get_text() == "Samples" and len(fig.axes) == 3 * 4
    with pytest.raises(ValueError, match="max_classes=0"):
        plots.class_grid(catalog, "articleType", max_classes=0)
    plt.close("all")


def test_a_count_chart_of_150_classes_shows_the_top_ones_and_says_so():
    values = pd.Series([f"class {k}" for k in range(150) for _ in range(k + 1)], name="label")
    ax = plots.count_bar_chart(values, title="Products per label")
    assert len(ax.patches) == plots.MAX_CLASSES
    assert ax.get_yticklabels()[0].get_text() == "class 149"  # the largest first
    assert "the 20 largest of 150 values; 130 left out" in ax.get_title()
    assert max(saved_pixels(ax.figure)) <= plots.MAX_FIGURE_PX * 1.02
    whole = plots.count_bar_chart(values, title="All", top=None)
    assert len(whole.patches) == 150 and whole.get_title() == "All"
    plt.close("all")


def test_image_grids_draw_thumbnails_within_bounds(tmp_path):
    photo = tmp_path / "big.jpg"
    Image.new("RGB", (1800, 2400), (30, 60, 90)).save(photo)
    fig = plots.image_grid([str(photo)] * 500, ncols=8)
    assert len(fig.axes) == 8 * plots.MAX_CLASSES
    assert "first 160 of 500 images" in fig._suptitle.get_text()
    assert max(im.get_array().shape[0] for ax in fig.axes for im in ax.get_images()) \
        <= plots.THUMBNAIL_PX
    assert max(saved_pixels(fig)) <= plots.MAX_FIGURE_PX * 1.02
    wrong = plots.misclassified_grid([str(photo)] * 40, [0] * 40, [1] * 40, max_images=24)
    assert max(saved_pixels(wrong)) <= plots.MAX_FIGURE_PX * 1.02


def test_the_catalog_profile_round_trips_and_is_checked(tmp_path):
    from fashion_utils import config

    paths = config.get_paths(tmp_path / "shop")
    with pytest.raises(FileNotFoundError, match="run notebook 01_eda first"):
        eda.read_catalog_profile(paths)
    with pytest.raises(ValueError, match=r"Missing: \['image_size'\]"):
        eda.write_catalog_profile(paths, {"n_products": 3, "median_short_side": 80.0})
    profile = {"n_products": 3, "median_short_side": 80.0, "image_size": 96, "classes": 2}
    path = eda.write_catalog_profile(paths, profile)
    assert path == paths.processed / eda.PROFILE_NAME and eda.read_catalog_profile(paths) == profile
    assert not list(path.parent.glob(".*tmp*"))
