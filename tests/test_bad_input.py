"""Bad input, one test per row of the table "Bad input: what happens" in docs/DATA.md (issue 15).

Each row of that table names its test here; ``test_the_data_page_table_names_these_tests`` holds
the two together. Every case goes through the entry point a user meets (``data.load_catalog``,
the feature extraction, ``models.predict_images``' decoder, ``sampling.drop_rare_classes``, the
runner): a clear error naming the input, or an explicit, counted entry in a report.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashion_utils import config
from fashion_utils.catalog import data, sampling
from fashion_utils.vision import features
from fashion_utils.tools import runner

from conftest import KAGGLE_COLUMNS, build_kaggle_dir, write_image

DATA_PAGE = config.PROJ_ROOT / "docs" / "DATA.md"
TABLE_START, TABLE_END = "<!-- bad-input:start -->", "<!-- bad-input:end -->"


def _catalog(tmp_path: Path) -> Path:
    """A clean Kaggle-layout catalog: 24 products of 6 article types (ids 1000-1023)."""
    return build_kaggle_dir(tmp_path / "catalog", n_per_type=4)


def _append_rows(root: Path, *lines: str, encoding: str = "utf-8") -> None:
    with open(root / "styles.csv", "a", encoding=encoding, newline="") as fh:
        fh.write("".join(line + "\n" for line in lines))


def _excluded(report: data.LoadReport) -> dict[str, str]:
    return dict(zip(report.excluded["id"], report.excluded["reason"]))


def _decoded(path: Path, size: int = 16) -> np.ndarray:
    """What every model is fed: the package's decoder (``features.image_dataset``)."""
    [batch] = list(features.image_dataset([str(path)], image_size=size, batch_size=1))
    return batch.numpy()[0]


# --------------------------------------------------------------------------- the catalog file


def test_non_utf8_catalog(tmp_path):
    root = _catalog(tmp_path)
    write_image(root / "images" / "2000.jpg")
    _append_rows(root, "2000,Women,Apparel,Topwear,Tshirts,Beige,Summer,2012,Casual,Café crème top",
                 encoding="cp1252")
    catalog, report = data.load_catalog(root)
    assert catalog.set_index("id").loc["2000", "productDisplayName"] == "Café crème top"
    assert any("styles.csv is not UTF-8" in n and "Windows-1252" in n and "1 line(s)" in n
               for n in report.notes)


def test_comma_in_the_last_column(tmp_path):
    root = _catalog(tmp_path)
    write_image(root / "images" / "2001.jpg")
    _append_rows(root, "2001,Men,Apparel,Topwear,Tshirts,Mixed,Summer,2012,Casual,Red, Blue Tee")
    catalog, report = data.load_catalog(root)
    row = catalog.set_index("id").loc["2001"]
    assert row["productDisplayName"] == "Red, Blue Tee" and row["usage"] == "Casual"
    assert report.repaired_ids == ["2001"] and report.n_excluded == 0


def test_comma_in_another_column(tmp_path):
    root = _catalog(tmp_path)
    write_image(root / "images" / "2002.jpg")
    # "Navy, Blue" in baseColour: joined into the name, season would read "Blue", year "Summer"
    _append_rows(root, "2002,Men,Apparel,Topwear,Tshirts,Navy, Blue,Summer,2012,Casual,A tee")
    catalog, report = data.load_catalog(root)
    assert "2002" not in set(catalog["id"])
    reason = _excluded(report)["2002"]
    assert reason.startswith("malformed row: 11 fields, expected 10") and "shifted" in reason
    assert report.n_rows_read == report.n_kept + report.n_excluded == 25


def test_too_few_fields(tmp_path):
    root = _catalog(tmp_path)
    _append_rows(root, "2003,Men,Apparel")
    _, report = data.load_catalog(root)
    assert _excluded(report)["2003"].startswith("malformed row: 3 fields, expected 10")


def test_id_repeated_with_another_image(tmp_path):
    root = _catalog(tmp_path)
    _append_rows(root, "1000,Women,Footwear,Shoes,Casual Shoes,Black,Winter,2016,Sports,Other")
    catalog, report = data.load_catalog(root)
    assert catalog.set_index("id").loc["1000", "articleType"] == "Tshirts"  # the first row
    assert report.duplicate_ids == ["1000"]
    assert _excluded(report)["1000"] == "duplicate id (first row kept)"


def test_empty_catalog(tmp_path):
    root = tmp_path / "empty"
    (root / "images").mkdir(parents=True)
    (root / "styles.csv").write_text(",".join(KAGGLE_COLUMNS) + "\n")
    with pytest.raises(ValueError, match=r"no usable product: 0 row\(s\) read, 0 excluded"):
        data.load_catalog(root)


def test_every_row_excluded(tmp_path):
    root = _catalog(tmp_path)
    for image in (root / "images").iterdir():
        image.unlink()
    with pytest.raises(ValueError, match=r"24 row\(s\) read, 24 excluded \(missing image file: 24\)"):
        data.load_catalog(root)


# --------------------------------------------------------------------------- DATA_DIR


def test_missing_data_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such catalog folder.*nowhere"):
        data.load_catalog(tmp_path / "nowhere")
    with pytest.raises(runner.ParameterError, match="DATA_DIR is not a folder"):
        runner.check_data_dir({"DATA_DIR": str(tmp_path / "nowhere")})


def test_empty_data_dir_value():
    with pytest.raises(ValueError, match="DATA_DIR is empty"):
        config.get_paths("")
    with pytest.raises(ValueError, match="DATA_DIR is empty"):
        data.load_catalog("")
    with pytest.raises(runner.ParameterError, match="DATA_DIR is empty"):
        runner.check_data_dir({"DATA_DIR": " "})


def test_empty_folder_as_data_dir(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No catalog found.*empty"):
        data.load_catalog(tmp_path / "empty")


def test_misspelt_parameter(tmp_path):
    with pytest.raises(runner.ParameterError, match=r"Unknown parameter\(s\) \['TARGT'\]"):
        runner.check_parameters(runner.notebook_paths(), ["TARGT"])


# --------------------------------------------------------------------------- labels


def test_target_with_one_class(tmp_path):
    catalog, _ = data.load_catalog(_catalog(tmp_path))
    catalog["gender"] = "Men"
    with pytest.raises(ValueError, match=r"'gender' has 1 class\(es\) left \{'Men': 24\}"):
        sampling.drop_rare_classes(catalog, target="gender", min_per_class=10)


def test_class_with_a_single_item(tmp_path):
    catalog, _ = data.load_catalog(_catalog(tmp_path))
    catalog.loc[0, "articleType"] = "Sarees"
    kept, dropped = sampling.drop_rare_classes(catalog, target="articleType", min_per_class=2)
    assert "Sarees" not in set(kept["articleType"]) and len(kept) == 23
    assert dropped.to_dict("records") == [{"class": "Sarees", "items": 1,
                                           "reason": "fewer than 2 items"}]


# --------------------------------------------------------------------------- image files


@pytest.mark.parametrize("mode, suffix", [("I;16", ".png"), ("CMYK", ".jpg"), ("P", ".png"),
                                          ("RGBA", ".png"), ("LA", ".png"), ("L", ".png")])
def test_unusual_image_modes(tmp_path, mode, suffix):
    root = _catalog(tmp_path)
    image = root / "images" / "1000.jpg"
    image.unlink()
    odd = write_image(root / "images" / f"1000{suffix}", mode=mode, size=(40, 30), seed=3)
    catalog, report = data.load_catalog(root)
    assert report.n_excluded == 0 and "1000" in set(catalog["id"])
    info = report.image_info.set_index("id").loc["1000"]
    assert info["mode"] == Image.open(odd).mode
    decoded = _decoded(odd)
    with Image.open(odd) as img:  # PIL's own conversion (alpha dropped), resized alike
        expected = np.asarray(img.convert("RGB") if mode != "I;16"
                              else Image.fromarray((np.asarray(img) >> 8).astype(np.uint8))
                              .convert("RGB"), dtype=np.float32)
    assert decoded.shape == (16, 16, 3) and 0 <= decoded.min() and decoded.max() <= 255
    small = np.asarray(Image.fromarray(expected.astype(np.uint8)).resize((16, 16)), np.float32)
    assert abs(decoded.mean() - small.mean()) < 4  # the 8-bit scale, not 16-bit or CMY-inverted


def test_empty_truncated_or_not_an_image(tmp_path):
    root = _catalog(tmp_path)
    images = root / "images"
    (images / "1000.jpg").write_bytes(b"")
    full = (images / "1001.jpg").read_bytes()
    (images / "1001.jpg").write_bytes(full[: len(full) // 2])
    (images / "1002.jpg").write_text("this is not a picture\n")
    (images / "1003.jpg").unlink()
    Image.new("RGB", (8, 8)).save(images / "1003.webp")
    catalog, report = data.load_catalog(root)
    reasons = _excluded(report)
    assert reasons["1000"] == "empty file" and reasons["1001"] == "truncated image"
    assert reasons["1002"].startswith("not an image")
    assert reasons["1003"] == "unsupported image format: WEBP"
    assert len(catalog) == 20 and report.excluded_counts().sum() == 4


def test_one_pixel_image(tmp_path):
    root = _catalog(tmp_path)
    Image.new("RGB", (1, 1), (200, 10, 10)).save(root / "images" / "1000.jpg")
    catalog, report = data.load_catalog(root)
    assert report.n_excluded == 0
    decoded = _decoded(root / "images" / "1000.jpg")
    assert decoded.shape == (16, 16, 3) and np.allclose(decoded.mean(axis=(0, 1)),
                                                        [200, 10, 10], atol=8)


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` (an image bomb's header, tiny file)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))
    return path


def test_decompression_bomb(tmp_path):
    root = _catalog(tmp_path)
    (root / "images" / "1000.jpg").unlink()
    _png_header_only(root / "images" / "1000.png", 20_000, 20_000)  # 400 million pixels
    catalog, report = data.load_catalog(root)
    assert "1000" not in set(catalog["id"])
    assert _excluded(report)["1000"].startswith("image too large")


def test_symlinked_image(tmp_path):
    root = _catalog(tmp_path)
    elsewhere = write_image(tmp_path / "elsewhere" / "photo.jpg", color=(10, 200, 10))
    (root / "images" / "1000.jpg").unlink()
    os.symlink(elsewhere, root / "images" / "1000.jpg")
    catalog, report = data.load_catalog(root)
    assert report.n_excluded == 0
    np.testing.assert_array_equal(_decoded(root / "images" / "1000.jpg"), _decoded(elsewhere))


def test_broken_symlink(tmp_path):
    root = _catalog(tmp_path)
    (root / "images" / "1000.jpg").unlink()
    os.symlink(tmp_path / "gone.jpg", root / "images" / "1000.jpg")
    _, report = data.load_catalog(root)
    assert _excluded(report)["1000"] == "missing image file"


def test_undecodable_image_at_extraction(tmp_path):
    """A PNG whose header and tail pass the cheap check but whose pixel data is garbage."""
    root = _catalog(tmp_path)
    good = (root / "images" / "1005.jpg")
    good.unlink()
    png = write_image(root / "images" / "1005.png", size=(64, 64), seed=5).read_bytes()
    start = png.index(b"IDAT") + 8
    (root / "images" / "1005.png").write_bytes(png[:start] + b"\x00" * 200 + png[start + 200:])
    catalog, report = data.load_catalog(root)
    assert "1005" in set(catalog["id"])  # the cheap check reads the header and tail only
    factory = _MeanColour()
    with pytest.raises(ValueError, match=r"Cannot decode 1 image file\(s\) of 24 not yet in the store.*1005.png"):
        features.extract_embeddings(catalog["id"], catalog["image_path"], model_factory=factory,
                                    model_key="mean", image_size=16, cache_dir=tmp_path / "f",
                                    batch_size=8, chunk_size=32, progress=False)


class _MeanColour:
    def __call__(self):
        import keras

        inputs = keras.Input((None, None, 3))
        return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))


# --------------------------------------------------------------------------- the table


def _table_rows() -> list[list[str]]:
    text = DATA_PAGE.read_text(encoding="utf-8")
    body = text[text.index(TABLE_START) + len(TABLE_START):text.index(TABLE_END)]
    lines = [line for line in body.strip().splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def test_the_data_page_table_names_these_tests():
    """Each row names its test: a test of this file, or ``tests/<file>.py::<test>`` for a case
    another module's tests already cover; every test here is in the table."""
    rows = _table_rows()
    named = [re.search(r"`((?:tests/\w+\.py::)?test_\w+)`", row[-1]).group(1) for row in rows]
    here = {name for name in globals() if name.startswith("test_") and name != (
        "test_the_data_page_table_names_these_tests")}
    local = [n for n in named if "::" not in n]
    assert sorted(local) == sorted(here)  # every local row tested, every local test listed
    for ref in (n for n in named if "::" in n):
        path, test = ref.split("::")
        assert f"def {test}(" in (config.PROJ_ROOT / path).read_text(), ref
    assert all(row[0] and row[1] for row in rows)
