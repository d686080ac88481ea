"""The synthetic full-size Kaggle-layout catalog of the scale benchmark."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from fashion_utils.atomic import temporary_dir_for
from fashion_utils.tools.bench import synthetic
from fashion_utils.catalog.data import load_catalog


@pytest.fixture
def tiny_synthetic(tmp_path):
    """A 30-product synthetic catalog with 120x160 pictures from a pool of 4."""
    return synthetic.make_synthetic_kaggle_catalog(tmp_path / "cat", n=30, image_size=(120, 160),
                                                   pool_size=4)


def test_catalog_has_the_kaggle_layout_columns_and_sizes(tiny_synthetic):
    with open(tiny_synthetic / "styles.csv", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    assert header == synthetic.KAGGLE_COLUMNS
    files = sorted((tiny_synthetic / "images").glob("*.jpg"))
    assert len(files) == 30
    for path in files[:5]:
        with Image.open(path) as img:
            assert (img.format, img.size) == ("JPEG", (120, 160))  # width x height
        assert not path.is_symlink() and os.stat(path).st_nlink == 1  # real copies, not links
    catalog, report = load_catalog(tiny_synthetic)
    assert report.n_kept == 30 and report.n_excluded == 0
    assert set(synthetic.KAGGLE_COLUMNS[1:]) <= set(catalog.columns)
    # articleType determines masterCategory, as in the real catalog
    assert (catalog.groupby("articleType")["masterCategory"].nunique() == 1).all()


def test_full_size_pictures_are_photo_sized():
    """One 1800x2400 picture at JPEG quality 90 lands in the real files' 150-400 KB range."""
    array = synthetic.synthetic_product_image(3, image_size=synthetic.FULL_SIZE)
    assert array.shape == (2400, 1800, 3)
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=90)
    assert 150_000 <= len(buf.getvalue()) <= 400_000


def test_catalog_is_made_once_and_idempotent(tiny_synthetic):
    marker = json.loads((tiny_synthetic / synthetic.MARKER).read_text())
    styles_mtime = os.stat(tiny_synthetic / "styles.csv").st_mtime_ns
    again = synthetic.make_synthetic_kaggle_catalog(tiny_synthetic, n=30, image_size=(120, 160),
                                                    pool_size=4)
    assert again == tiny_synthetic
    assert os.stat(tiny_synthetic / "styles.csv").st_mtime_ns == styles_mtime
    assert json.loads((tiny_synthetic / synthetic.MARKER).read_text()) == marker
    assert synthetic.catalog_info(tiny_synthetic) == marker
    assert not list(tiny_synthetic.parent.glob(".cat.tmp-*"))  # no temporary folder left


def test_other_settings_or_foreign_folders_are_refused(tiny_synthetic, tmp_path):
    with pytest.raises(ValueError, match="other settings"):
        synthetic.make_synthetic_kaggle_catalog(tiny_synthetic, n=31, image_size=(120, 160),
                                                pool_size=4)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="refusing to overwrite"):
        synthetic.make_synthetic_kaggle_catalog(foreign, n=3, image_size=(16, 16), pool_size=2)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    with pytest.raises(ValueError, match="not a synthetic catalog"):
        synthetic.catalog_info(foreign)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=0), "n must be an integer >= 1. Received: n=0"),
    (dict(n=5, image_size=(4, 4)), "image_size"),
    (dict(n=5, quality=0), "quality"),
])
def test_bad_settings_are_rejected(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        synthetic.make_synthetic_kaggle_catalog(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


def test_styles_have_empty_values_and_unquoted_commas_at_scale():
    lines, pool_of = synthetic._styles_rows(20_000, 8, 42)
    assert len(lines) == 20_001 and len(pool_of) == 20_000
    fields = [line.split(",") for line in lines[1:]]
    assert any(len(f) > len(synthetic.KAGGLE_COLUMNS) for f in fields)  # the loader repairs these
    usage = synthetic.KAGGLE_COLUMNS.index("usage")
    assert sum(f[usage] == "" for f in fields if len(f) == len(synthetic.KAGGLE_COLUMNS)) > 50


def test_a_dead_builders_temporary_folder_is_cleaned_and_an_empty_folder_replaced(tmp_path):
    """What a killed run leaves behind (its temporary folder, an empty target) is no obstacle."""
    target = tmp_path / "cat"
    target.mkdir()  # empty: replaced
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    stale = temporary_dir_for(target).with_name(f".cat.tmp-{int(dead.stdout)}")
    stale.mkdir()
    (stale / "half.jpg").write_bytes(b"\xff\xd8")
    folder = synthetic.make_synthetic_kaggle_catalog(target, n=3, image_size=(16, 16),
                                                     pool_size=2, pool_root=tmp_path / "pools")
    assert folder == target.resolve() and not stale.exists()
    assert len(list((folder / "images").glob("*.jpg"))) == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
