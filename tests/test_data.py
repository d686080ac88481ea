"""Tests for fashion_utils.catalog.data: catalog loaders, the image check and its cache, Fashion-MNIST."""

from __future__ import annotations

import gzip
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fashion_utils.catalog import data, fashion_mnist, image_files

KEPT = ["1001", "1002", "1003", "1004", "1005", "1010", "1011", "1012", "1013", "1014"]
EXCLUDED = [  # (id, reason or reason prefix), in file order
    ("1006", "missing image file"),
    ("1007", "empty file"),
    ("1008", "truncated image"),
    ("1009", "not an image: "),
    ("1005", "duplicate id (first row kept)"),
    ("1015", "malformed row: 3 fields, expected 10"),
]


# --------------------------------------------------------------------------- the Kaggle layout


@pytest.fixture
def quirky(quirky_kaggle_dir):
    """The quirky catalog loaded without a cache: ``(catalog, report)``."""
    return data.load_kaggle_catalog(quirky_kaggle_dir)


def test_kaggle_quirks_kept_repaired_excluded(quirky):
    catalog, report = quirky
    assert catalog["id"].tolist() == KEPT
    assert report.repaired_ids == ["1002", "1003"]
    assert report.duplicate_ids == ["1005"]
    assert list(report.excluded.columns) == ["id", "image_path", "reason"]
    assert report.excluded["id"].tolist() == [row_id for row_id, _ in EXCLUDED]
    for (_, expected), reason in zip(EXCLUDED, report.excluded["reason"]):
        assert reason.startswith(expected)
    assert (report.n_rows_read, report.n_kept, report.n_excluded) == (16, 10, 6)
    assert report.n_rows_read == report.n_kept + report.n_excluded
    assert report.n_images_checked == 13 and report.n_from_cache == 0  # 14 distinct ids, 1006 has no file
    assert any("1 image file(s) in images/ have no row" in note for note in report.notes)


def test_repaired_rows_keep_usage_and_full_name(quirky):
    catalog = quirky[0].set_index("id")
    assert catalog.loc["1002", "productDisplayName"] == "Tokyo Talkies Women White, Top"
    assert catalog.loc["1002", "usage"] == "Casual"
    assert catalog.loc["1003", "productDisplayName"] == "Puma Men Black, Grey, Casual Shoes"
    assert catalog.loc["1003", "usage"] == "Sports"
    assert catalog.loc["1003", "year"] == 2016


def test_values_are_stripped_and_year_is_int64(quirky):
    catalog = quirky[0].set_index("id")
    row = catalog.loc["1004"]
    assert row[["gender", "articleType", "productDisplayName"]].tolist() == ["Women", "Handbags", "Lino Perros Handbag"]
    assert str(catalog["year"].dtype) == "Int64"
    assert row["year"] == 2014
    assert pd.isna(catalog.loc["1014", "year"]) and pd.isna(catalog.loc["1014", "usage"])
    assert list(quirky[0].columns) == ["id", "image_path", "gender", "masterCategory", "subCategory",
                                       "articleType", "baseColour", "season", "year", "usage",
                                       "productDisplayName"]


def test_duplicate_id_keeps_the_first_row(quirky):
    catalog, report = quirky
    assert catalog["id"].is_unique
    assert catalog.set_index("id").loc["1005", "productDisplayName"] == "First copy of 1005"


def test_ids_are_strings_and_image_paths_absolute_files(quirky, quirky_kaggle_dir):
    catalog, report = quirky
    assert all(isinstance(v, str) for v in catalog["id"])
    assert all(os.path.isabs(p) and os.path.isfile(p) for p in catalog["image_path"])
    assert catalog.set_index("id").loc["1012", "image_path"].endswith(os.path.join("images", "1012.png"))
    missing = report.excluded.set_index("id").loc["1006", "image_path"]
    assert missing == str(quirky_kaggle_dir.resolve() / "images" / "1006.jpg")


def test_image_info_lists_modes_of_kept_images(quirky):
    info = quirky[1].image_info.set_index("id")
    assert len(info) == 10
    assert info.loc["1010", "mode"] == "L"
    assert info.loc["1011", "mode"] == "CMYK"
    assert info.loc["1012", ["mode", "format"]].tolist() == ["RGBA", "PNG"]
    assert info.loc["1013", "mode"] == "P"
    assert (info["width"] == 32).all() and (info["height"] == 24).all()


def test_read_image_rgb_gives_uint8_rgb_for_every_kept_image(quirky):
    for path in quirky[0]["image_path"]:
        image = image_files.read_image_rgb(path)
        assert image.shape == (24, 32, 3) and image.dtype == np.uint8


def test_report_summary_dict_and_text(quirky):
    report = quirky[1]
    summary = report.summary()["count"]
    assert summary["rows read"] == 16 and summary["kept"] == 10 and summary["excluded"] == 6
    assert summary["repaired"] == 2 and summary["duplicate ids"] == 1
    assert summary["excluded: not an image"] == 1 and summary["excluded: malformed row"] == 1
    as_dict = json.loads(json.dumps(report.to_dict()))
    assert as_dict["n_kept"] == 10 and as_dict["repaired_ids"] == ["1002", "1003"]
    assert [row["id"] for row in as_dict["excluded"]] == [row_id for row_id, _ in EXCLUDED]
    text = str(report)
    assert "kaggle" in text and "truncated image" in text and "16" in text
    assert "n_kept=10" in repr(report)


def test_check_images_false_checks_existence_only(quirky_kaggle_dir):
    catalog, report = data.load_kaggle_catalog(quirky_kaggle_dir, check_images=False)
    assert "1006" not in set(catalog["id"])  # no file at all: still excluded
    assert {"1007", "1008", "1009"} <= set(catalog["id"])  # broken files are not looked at
    assert report.n_images_checked == 0 and report.image_info.empty


def test_load_catalog_detects_the_kaggle_layout(quirky_kaggle_dir, tmp_path):
    catalog, report = data.load_catalog(quirky_kaggle_dir)
    assert report.layout == "kaggle" and catalog["id"].tolist() == KEPT
    nested = tmp_path / "download"
    nested.mkdir()
    shutil.move(str(quirky_kaggle_dir), nested / "myntradataset")  # as the Kaggle zip unpacks
    assert data.load_catalog(nested)[1].layout == "kaggle"


def test_load_catalog_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_dir="):
        data.load_catalog(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="No catalog found"):
        data.load_catalog(tmp_path)
    (tmp_path / "images").mkdir()
    with pytest.raises(ValueError, match="no styles.csv"):
        data.load_catalog(tmp_path)
    (tmp_path / "styles.csv").write_text("name,label\nx,y\n")
    with pytest.raises(ValueError, match="no 'id' column"):
        data.load_kaggle_catalog(tmp_path)


def test_header_only_styles_gives_an_empty_catalog(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "styles.csv").write_text("id,articleType,year\n\n")
    catalog, report = data.load_kaggle_catalog(tmp_path)
    assert catalog.empty and list(catalog.columns) == ["id", "image_path", "articleType", "year"]
    assert report.n_rows_read == 0 and report.summary()["count"]["kept"] == 0
    assert any("1 blank line(s)" in note for note in report.notes)
    # the notebooks' entry point refuses it, naming the folder
    with pytest.raises(ValueError, match=r"no usable product: 0 row\(s\) read.*data_dir="):
        data.load_catalog(tmp_path)


def test_clean_catalog_fixture_loads_without_exclusions(tiny_kaggle_dir):
    catalog, report = data.load_catalog(tiny_kaggle_dir)
    assert len(catalog) == 24 and report.n_excluded == 0 and report.n_repaired == 0
    assert catalog["masterCategory"].value_counts().to_dict() == {"Apparel": 8, "Footwear": 8, "Accessories": 8}


# --------------------------------------------------------------------------- single images


@pytest.mark.parametrize("mode, suffix", [("RGB", ".jpg"), ("L", ".jpg"), ("CMYK", ".jpg"), ("RGBA", ".png"),
                                          ("P", ".png"), ("LA", ".png"), ("I;16", ".png"), ("RGB", ".bmp"),
                                          ("P", ".gif")])
def test_read_image_rgb_every_mode(make_image, tmp_path, mode, suffix):
    path = make_image(tmp_path / f"image{suffix}", mode=mode, size=(20, 10))
    assert Image.open(path).mode == mode or suffix in (".gif",)
    image = image_files.read_image_rgb(path)
    assert image.shape == (10, 20, 3) and image.dtype == np.uint8
    assert image_files.read_image_rgb(path, size=8).shape == (8, 8, 3)
    assert image_files.check_image_file(path) is None


def test_read_image_rgb_keeps_pixel_values(make_image, tmp_path):
    grey = make_image(tmp_path / "grey.png", mode="L")
    expected = np.asarray(Image.open(grey))
    image = image_files.read_image_rgb(grey)
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel], expected)
    wide = make_image(tmp_path / "wide.png", mode="I;16")
    np.testing.assert_array_equal(image_files.read_image_rgb(wide)[..., 0], expected)  # 16-bit scaled back to 8
    rgba = make_image(tmp_path / "rgba.png", mode="RGBA")
    np.testing.assert_array_equal(image_files.read_image_rgb(rgba), np.asarray(Image.open(rgba))[..., :3])


@pytest.mark.parametrize("size", [0, -3, 2.5, "32", True])
def test_read_image_rgb_rejects_bad_size(make_image, tmp_path, size):
    path = make_image(tmp_path / "a.png")
    with pytest.raises(ValueError, match="Received: size="):
        image_files.read_image_rgb(path, size=size)


def test_read_image_rgb_errors(quirky_kaggle_dir):
    images = quirky_kaggle_dir / "images"
    with pytest.raises(FileNotFoundError):
        image_files.read_image_rgb(images / "1006.jpg")
    for name in ("1007.jpg", "1008.jpg", "1009.jpg"):
        with pytest.raises(ValueError, match="cannot decode image"):
            image_files.read_image_rgb(images / name)


def test_check_image_file_reasons(quirky_kaggle_dir, make_image, tmp_path):
    images = quirky_kaggle_dir / "images"
    assert image_files.check_image_file(images / "1006.jpg") == "missing image file"
    assert image_files.check_image_file(images / "1007.jpg") == "empty file"
    assert image_files.check_image_file(images / "1008.jpg") == "truncated image"
    assert image_files.check_image_file(images / "1009.jpg").startswith("not an image: ")
    png = make_image(tmp_path / "cut.png", size=(64, 64)).read_bytes()
    (tmp_path / "cut.png").write_bytes(png[: len(png) - 30])
    assert image_files.check_image_file(tmp_path / "cut.png") == "truncated image"
    head_only = (images / "1001.jpg").read_bytes()[:10]
    (tmp_path / "head.jpg").write_bytes(head_only)
    assert image_files.check_image_file(tmp_path / "head.jpg") == "truncated image"
    webp = make_image(tmp_path / "x.webp")
    assert image_files.check_image_file(webp) == "unsupported image format: WEBP"


def test_jpeg_with_trailing_bytes_is_valid(make_image, tmp_path):
    path = make_image(tmp_path / "padded.jpg")
    path.write_bytes(path.read_bytes() + b"\x00" * 10 + b"trailing junk")
    assert image_files.check_image_file(path) is None  # full decode settles it


# --------------------------------------------------------------------------- the check cache


def test_check_cache_serves_the_second_load(quirky_kaggle_dir, tmp_path):
    cache_dir = tmp_path / "cache"
    first_catalog, first = data.load_catalog(quirky_kaggle_dir, cache_dir=cache_dir)
    assert first.n_from_cache == 0
    assert (cache_dir / image_files.CHECK_CACHE_NAME).is_file()
    assert [p.name for p in cache_dir.iterdir()] == [image_files.CHECK_CACHE_NAME]  # no temp file left
    second_catalog, second = data.load_catalog(quirky_kaggle_dir, cache_dir=cache_dir)
    assert second.n_from_cache == second.n_images_checked == first.n_images_checked == 13
    pd.testing.assert_frame_equal(first_catalog, second_catalog)
    pd.testing.assert_frame_equal(first.excluded, second.excluded)
    pd.testing.assert_frame_equal(first.image_info, second.image_info)


def test_changed_file_invalidates_its_cache_entry(quirky_kaggle_dir, make_image, tmp_path):
    cache_dir = tmp_path / "cache"
    data.load_catalog(quirky_kaggle_dir, cache_dir=cache_dir)
    images = quirky_kaggle_dir / "images"
    (images / "1010.jpg").write_text("now broken")  # a good image goes bad
    make_image(images / "1008.jpg", seed=99)  # the truncated one is fixed
    os.utime(images / "1008.jpg", ns=(1, 1))  # a new mtime even on coarse clocks
    catalog, report = data.load_catalog(quirky_kaggle_dir, cache_dir=cache_dir)
    assert report.n_from_cache == report.n_images_checked - 2
    assert "1008" in set(catalog["id"]) and "1010" not in set(catalog["id"])
    assert report.excluded.set_index("id").loc["1010", "reason"].startswith("not an image")


def test_unreadable_cache_is_rebuilt(quirky_kaggle_dir, tmp_path):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    (cache_dir / image_files.CHECK_CACHE_NAME).write_text("garbage\n1,2\n")
    catalog, report = data.load_catalog(quirky_kaggle_dir, cache_dir=cache_dir)
    assert catalog["id"].tolist() == KEPT and report.n_from_cache == 0
    assert any("unreadable" in note for note in report.notes)
    assert data.load_catalog(quirky_kaggle_dir, cache_dir=cache_dir)[1].n_from_cache == 13


# --------------------------------------------------------------------------- CSV and folder layouts


def test_load_csv_catalog(tmp_path, make_image):
    make_image(tmp_path / "pics" / "a.jpg")
    make_image(tmp_path / "pics" / "b.png", mode="P")
    absolute = make_image(tmp_path / "elsewhere" / "c.jpg")
    csv_path = tmp_path / "list.csv"
    csv_path.write_text(
        "sku,path,colour,kind\n"
        "s1,pics/a.jpg, red ,shirt\n"
        f"s2,{absolute},blue,shoe\n"
        "s3,pics/b.png,green,bag\n"
        "s4,pics/missing.jpg,grey,bag\n"
    )
    catalog, report = data.load_csv_catalog(csv_path, image_column="path", label_columns=["kind", "colour"],
                                            id_column="sku")
    assert list(catalog.columns) == ["id", "image_path", "kind", "colour"]
    assert catalog["id"].tolist() == ["s1", "s2", "s3"]
    assert catalog["colour"].tolist() == ["red", "blue", "green"]
    assert catalog["image_path"].tolist() == [str(tmp_path / "pics" / "a.jpg"), str(absolute),
                                              str(tmp_path / "pics" / "b.png")]
    assert report.layout == "csv"
    assert report.excluded[["id", "reason"]].values.tolist() == [["s4", "missing image file"]]
    by_path, _ = data.load_csv_catalog(csv_path, image_column="path", label_columns="kind")
    assert by_path["id"].tolist()[0] == "pics/a" and list(by_path.columns) == ["id", "image_path", "kind"]


def test_load_csv_catalog_rejects_unknown_columns(tmp_path):
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("path,kind\na.jpg,shirt\n")
    with pytest.raises(ValueError, match=r"label_columns=\['colour'\]"):
        data.load_csv_catalog(csv_path, image_column="path", label_columns=["colour"])
    with pytest.raises(ValueError, match="image_column='file'"):
        data.load_csv_catalog(csv_path, image_column="file", label_columns=["kind"])
    with pytest.raises(FileNotFoundError, match="csv_path="):
        data.load_csv_catalog(tmp_path / "none.csv", image_column="path", label_columns=["kind"])


def test_load_folder_catalog(tmp_path, make_image):
    root = tmp_path / "classes"
    make_image(root / "shirts" / "s1.jpg")
    make_image(root / "shirts" / "more" / "s2.png", mode="RGBA")
    make_image(root / "shoes" / "x.jpg", mode="L")
    (root / "shoes" / "notes.txt").write_text("not an image")
    (root / "shoes" / "broken.jpg").write_bytes(b"")
    (root / "shoes" / ".DS_Store").write_bytes(b"\x00")
    (root / "README.md").write_text("loose file")
    catalog, report = data.load_folder_catalog(root, label_column="articleType")
    assert catalog["id"].tolist() == ["shirts/s1", "shirts/more/s2", "shoes/x"]  # a folder's files first
    assert catalog["articleType"].tolist() == ["shirts", "shirts", "shoes"]
    reasons = dict(zip(report.excluded["id"], report.excluded["reason"]))
    assert reasons == {"README": "not in a class folder", "shoes/broken": "empty file",
                       "shoes/notes": "not an image: file extension '.txt'"}
    assert report.n_rows_read == 6 == report.n_kept + report.n_excluded
    assert data.load_catalog(root)[1].layout == "folder"


# --------------------------------------------------------------------------- Fashion-MNIST


@pytest.fixture
def no_fashion_mnist_env(monkeypatch):
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)


def test_fashion_mnist_mapping_is_complete():
    assert list(fashion_mnist.FASHION_MNIST_ATTRIBUTES) == list(fashion_mnist.FASHION_MNIST_LABELS)
    for attributes in fashion_mnist.FASHION_MNIST_ATTRIBUTES.values():
        assert "/" not in attributes["articleType"]
        assert attributes["masterCategory"] in {"Apparel", "Footwear", "Accessories"}
    assert len({a["articleType"] for a in fashion_mnist.FASHION_MNIST_ATTRIBUTES.values()}) == 10


def test_prepare_fashion_mnist_writes_the_kaggle_layout(fashion_mnist_idx, tmp_path, no_fashion_mnist_env):
    out = fashion_mnist.prepare_fashion_mnist(tmp_path / "fmnist", source_dir=fashion_mnist_idx.path)
    assert out == (tmp_path / "fmnist").resolve()
    styles = pd.read_csv(out / "styles.csv", dtype=str)
    assert list(styles.columns) == ["id", "label", "articleType", "subCategory", "masterCategory", "split"]
    assert styles["id"].tolist() == [str(i) for i in range(16)]
    assert styles["split"].tolist() == ["train"] * 12 + ["test"] * 4
    labels = np.concatenate([fashion_mnist_idx.train_labels, fashion_mnist_idx.test_labels])
    assert styles["label"].tolist() == [fashion_mnist.FASHION_MNIST_LABELS[i] for i in labels]
    first = styles.iloc[0]  # label 0
    assert first[["label", "articleType", "subCategory", "masterCategory"]].tolist() == \
        ["T-shirt/top", "Tshirt", "Topwear", "Apparel"]
    for _, row in styles.iterrows():
        expected = fashion_mnist.FASHION_MNIST_ATTRIBUTES[row["label"]]
        assert row[["articleType", "subCategory", "masterCategory"]].to_dict() == expected
    pictures = np.concatenate([fashion_mnist_idx.train_images, fashion_mnist_idx.test_images])
    for i in range(16):
        with Image.open(out / "images" / f"{i}.png") as img:
            assert img.mode == "L"
            np.testing.assert_array_equal(np.asarray(img), pictures[i])
    assert not list(tmp_path.glob(".fmnist.tmp-*"))
    catalog, report = data.load_catalog(out)
    assert len(catalog) == 16 and report.n_excluded == 0
    assert list(catalog.columns) == ["id", "image_path", *fashion_mnist.FASHION_MNIST_COLUMNS[1:]]


def test_prepare_fashion_mnist_is_idempotent(fashion_mnist_idx, tmp_path, monkeypatch, no_fashion_mnist_env):
    out = fashion_mnist.prepare_fashion_mnist(tmp_path / "fmnist", source_dir=fashion_mnist_idx.path)
    stamp = (out / "styles.csv").stat().st_mtime_ns

    def fail(*args, **kwargs):
        raise AssertionError("the source was read again")

    monkeypatch.setattr(fashion_mnist, "read_idx", fail)
    assert fashion_mnist.prepare_fashion_mnist(out, source_dir=fashion_mnist_idx.path) == out
    assert (out / "styles.csv").stat().st_mtime_ns == stamp


def test_incomplete_folders_are_not_taken_as_complete(fashion_mnist_idx, tmp_path, no_fashion_mnist_env):
    out = fashion_mnist.prepare_fashion_mnist(tmp_path / "fmnist", source_dir=fashion_mnist_idx.path)
    (out / fashion_mnist.COMPLETION_MARKER).unlink()  # an interrupted write: no marker
    (out / "images" / "3.png").unlink()
    stale = tmp_path / ".fmnist.tmp-999999999"  # left by a crashed run (no such process)
    (stale / "images").mkdir(parents=True)
    (stale / "styles.csv").write_text("id,label\n")
    assert fashion_mnist.prepare_fashion_mnist(out, source_dir=fashion_mnist_idx.path) == out
    assert (out / fashion_mnist.COMPLETION_MARKER).is_file() and (out / "images" / "3.png").is_file()
    assert not stale.exists()
    with open(out / "styles.csv", "a") as fh:  # marker present but row count wrong
        fh.write("16,Bag,Bag,Bags,Accessories,test\n")
    fashion_mnist.prepare_fashion_mnist(out, source_dir=fashion_mnist_idx.path)
    assert len(pd.read_csv(out / "styles.csv")) == 16


def test_prepare_fashion_mnist_sources(fashion_mnist_idx, tmp_path, monkeypatch):
    plain = tmp_path / "plain"
    plain.mkdir()
    for path in fashion_mnist_idx.path.iterdir():  # uncompressed names work too
        (plain / path.name[:-3]).write_bytes(gzip.decompress(path.read_bytes()))
    monkeypatch.setenv("FASHION_MNIST_DIR", str(plain))
    out = fashion_mnist.prepare_fashion_mnist(tmp_path / "from_env")
    assert json.loads((out / fashion_mnist.COMPLETION_MARKER).read_text())["source"] == str(plain.resolve())
    with pytest.raises(FileNotFoundError, match="source_dir="):
        fashion_mnist.prepare_fashion_mnist(tmp_path / "other", source_dir=tmp_path / "empty")


def test_prepare_fashion_mnist_refuses_a_foreign_folder(fashion_mnist_idx, tmp_path, no_fashion_mnist_env):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match="not a \\(partial\\) Fashion-MNIST folder"):
        fashion_mnist.prepare_fashion_mnist(tmp_path / "mine", source_dir=fashion_mnist_idx.path)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_prepare_fashion_mnist_never_replaces_another_catalog(fashion_mnist_idx, tiny_kaggle_dir, no_fashion_mnist_env):
    before = sorted(p.name for p in (tiny_kaggle_dir / "images").iterdir())
    with pytest.raises(ValueError, match="out_dir="):  # styles.csv + images/, but not ours
        fashion_mnist.prepare_fashion_mnist(tiny_kaggle_dir, source_dir=fashion_mnist_idx.path)
    assert sorted(p.name for p in (tiny_kaggle_dir / "images").iterdir()) == before


def test_read_idx_rejects_bad_files(fashion_mnist_idx, tmp_path):
    images = fashion_mnist.read_idx(fashion_mnist_idx.path / "train-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(images, fashion_mnist_idx.train_images)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="bad magic number"):
        fashion_mnist.read_idx(tmp_path / "bad")
    raw = gzip.decompress((fashion_mnist_idx.path / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (tmp_path / "short").write_bytes(raw[:-1])
    with pytest.raises(ValueError, match="needs 4"):
        fashion_mnist.read_idx(tmp_path / "short")


def test_cli_prepares_and_reports(fashion_mnist_idx, tmp_path, output_root, capsys, no_fashion_mnist_env):
    assert data.main(["prepare-fashion-mnist", "--out", str(tmp_path / "cli"),
                      "--source", str(fashion_mnist_idx.path)]) == 0
    printed = capsys.readouterr().out
    assert str((tmp_path / "cli").resolve()) in printed and "kept" in printed and "16" in printed
    assert (output_root / "data" / "interim" / "cli" / image_files.CHECK_CACHE_NAME).is_file()
    assert data.main(["check", str(tmp_path / "cli")]) == 0
    assert "16 from cache" in capsys.readouterr().out


def test_cli_leaves_another_data_dir_alone(tiny_kaggle_dir, output_root, capsys, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tiny_kaggle_dir))  # `make data` with the Kaggle catalog
    assert data.main(["prepare-fashion-mnist"]) == 0
    printed = capsys.readouterr().out
    assert "Fashion-MNIST not prepared" in printed and "24" in printed
    assert not (tiny_kaggle_dir / fashion_mnist.COMPLETION_MARKER).exists()
