"""The scale benchmark: the synthetic Kaggle-layout catalog and the plumbing of ``bench_scale``."""

from __future__ import annotations

import csv
import json
import os

import pytest
from PIL import Image

from fashion_utils import scale
from fashion_utils.data import load_catalog


@pytest.fixture
def tiny_synthetic(tmp_path):
    """A 30-product synthetic catalog with 120x160 pictures from a pool of 4."""
    folder = scale.make_synthetic_kaggle_catalog(tmp_path / "cat", n=30, image_size=(120, 160), pool_size=4)
    return folder


def test_catalog_has_the_kaggle_layout_columns_and_sizes(tiny_synthetic):
    with open(tiny_synthetic / "styles.csv", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    assert header == scale.KAGGLE_COLUMNS
    files = sorted((tiny_synthetic / "images").glob("*.jpg"))
    assert len(files) == 30
    for path in files[:5]:
        with Image.open(path) as img:
            assert (img.format, img.size) == ("JPEG", (120, 160))  # width x height
        assert not path.is_symlink() and os.stat(path).st_nlink == 1  # real copies, not links
    catalog, report = load_catalog(tiny_synthetic)
    assert report.n_kept == 30 and report.n_excluded == 0
    assert set(scale.KAGGLE_COLUMNS[1:]) <= set(catalog.columns)
    # articleType determines masterCategory, as in the real catalog
    assert (catalog.groupby("articleType")["masterCategory"].nunique() == 1).all()


def test_full_size_pictures_are_photo_sized():
    """One 1800x2400 picture at JPEG quality 90 lands in the real files' 150-400 KB range."""
    import io

    array = scale.synthetic_product_image(3, image_size=scale.FULL_SIZE)
    assert array.shape == (2400, 1800, 3)
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=90)
    assert 150_000 <= len(buf.getvalue()) <= 400_000


def test_catalog_is_made_once_and_idempotent(tiny_synthetic):
    marker = json.loads((tiny_synthetic / scale.MARKER).read_text())
    styles_mtime = os.stat(tiny_synthetic / "styles.csv").st_mtime_ns
    again = scale.make_synthetic_kaggle_catalog(tiny_synthetic, n=30, image_size=(120, 160), pool_size=4)
    assert again == tiny_synthetic
    assert os.stat(tiny_synthetic / "styles.csv").st_mtime_ns == styles_mtime
    assert json.loads((tiny_synthetic / scale.MARKER).read_text()) == marker
    assert not list(tiny_synthetic.parent.glob(".cat.tmp-*"))  # no temporary folder left


def test_other_settings_or_foreign_folders_are_refused(tiny_synthetic, tmp_path):
    with pytest.raises(ValueError, match="other settings"):
        scale.make_synthetic_kaggle_catalog(tiny_synthetic, n=31, image_size=(120, 160), pool_size=4)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="refusing to overwrite"):
        scale.make_synthetic_kaggle_catalog(foreign, n=3, image_size=(16, 16), pool_size=2)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=0), "n must be"),
    (dict(n=5, image_size=(4, 4)), "image_size"),
    (dict(n=5, quality=0), "quality"),
])
def test_bad_settings_are_rejected(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        scale.make_synthetic_kaggle_catalog(tmp_path / "x", **kwargs)


def test_styles_have_empty_values_and_unquoted_commas_at_scale():
    lines, pool_of = scale._styles_rows(20_000, 8, 42)
    assert len(lines) == 20_001 and len(pool_of) == 20_000
    fields = [line.split(",") for line in lines[1:]]
    assert any(len(f) > len(scale.KAGGLE_COLUMNS) for f in fields)  # the loader repairs these
    usage = scale.KAGGLE_COLUMNS.index("usage")
    assert sum(f[usage] == "" for f in fields if len(f) == len(scale.KAGGLE_COLUMNS)) > 50


def test_bench_scale_plumbing_on_a_tiny_catalog(tmp_path):
    result = scale.bench_scale(n=16, subset=8, image_size=32, full_image_size=(64, 80),
                               small_image_size=(16, 20), pool_size=3, n_queries=4, weights=None,
                               root=tmp_path, isolated=False, log=lambda _: None)
    json.dumps(result)  # JSON-able
    assert set(result["runs"]) == {"full-64x80", "small-16x20"}
    assert set(result["runs"]["full-64x80"]) == {"8", "16"}
    for sizes in result["runs"].values():
        for size, stages in sizes.items():
            assert set(stages) == {"load_cold", "load_cached", "extract", "index"}
            assert stages["load_cold"]["n_kept"] == int(size)
            assert stages["load_cold"]["n_from_cache"] == 0
            assert stages["load_cached"]["n_from_cache"] == int(size)
            assert stages["extract"]["feature_shape"] == [int(size), 1280]
            assert stages["index"]["n"] == int(size) and stages["index"]["n_queries"] == 4
    summary = result["summary"]
    assert summary["extrapolated_to_n"]["extract"] == pytest.approx(
        2 * result["runs"]["full-64x80"]["8"]["extract"]["seconds"], abs=0.11)
    assert "meets_time_target" in summary
    table = scale.scale_markdown(result)
    assert table.count("\n| full-64x80 |") == 8 and "small-16x20" in table


def test_bench_scale_rejects_a_subset_not_smaller_than_n(tmp_path):
    with pytest.raises(ValueError, match="subset must be smaller"):
        scale.bench_scale(n=10, subset=10, root=tmp_path, isolated=False)


def test_stages_run_isolated_report_their_own_peak_rss(tiny_synthetic, tmp_path):
    """The loading stage in a fresh process (no TensorFlow): a peak RSS comes back."""
    from fashion_utils.bench import run_isolated

    res = run_isolated(scale.measure_loading, data_dir=str(tiny_synthetic), cache_dir=str(tmp_path / "c"))
    assert res["n_kept"] == 30 and res["peak_rss_mib"] > 10
