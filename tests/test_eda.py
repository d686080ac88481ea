"""Exploration helpers."""

from __future__ import annotations

import pandas as pd
import pytest
from PIL import Image

from fashion_utils import eda


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
