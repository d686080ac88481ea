"""Ids as file names (one safe, unique, reversible mapping) and thumbnails."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fashion_utils.catalog import image_files
from fashion_utils.catalog.image_files import id_to_stem, stem_to_id

from conftest import upright_picture, write_image, write_phone_jpeg

AWKWARD_IDS = [
    "15970", "label/eight/482", "forty two/more/5", "a b", "..", ".", ".hidden", "x/../y",
    "größe 7", "ω", "日本/靴", "100%", "a%2Fb", "~tilde", "back\\slash", "tab\there", "new\nline",
    "colon:star*?", 'quote"<>|', "trailing.", "-dash", "CON", "a" * 300, "ü" * 200,
]


@pytest.mark.parametrize("item_id", AWKWARD_IDS)
def test_a_stem_is_one_safe_file_name_that_reads_back(item_id, tmp_path):
    stem = id_to_stem(item_id)
    assert set(stem) <= image_files.STEM_SAFE | {"%", "~"}
    assert not stem.startswith(".") and len(stem) <= image_files.MAX_STEM_LENGTH
    path = tmp_path / f"{stem}_aug1.png"
    path.write_bytes(b"x")  # a file directly in the folder, never a sub-folder or a hidden file
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    if len(item_id) <= 30:  # written out in full and read back
        assert stem_to_id(stem) == item_id
    else:  # cut, with a hash of the whole id: still unique, not read back
        assert "~" in stem and stem_to_id(stem) is None


def test_safe_ids_keep_their_names():
    assert id_to_stem("15970") == "15970" and id_to_stem("Men_Tshirts-1.v2") == "Men_Tshirts-1.v2"
    assert id_to_stem("label/eight/482") == "label%2Feight%2F482"


def test_ids_that_differ_only_in_unsafe_characters_never_collide():
    ids = ["a/b", "a b", "a%2Fb", "a%b", "a_b", "a.b", "a\\b", "a:b", "a?b", "aüb", "a~b",
           "a" * 200 + "/", "a" * 200 + " ", "a" * 200, ".ab", "%2Eab", "..", "%2E."]
    stems = [id_to_stem(i) for i in ids]
    assert len(set(stems)) == len(ids)


def test_stems_that_id_to_stem_does_not_write_read_back_as_none():
    for stem in ["a%2fb", "a%zz", "%C3", "", "abc~0123456789abcdef", "a/b", ".x"]:
        assert stem_to_id(stem) is None, stem


@pytest.mark.parametrize("bad", ["", None, 15970])
def test_id_to_stem_rejects_what_is_not_an_id(bad):
    with pytest.raises(ValueError, match=f"Received: item_id={bad!r}"):
        id_to_stem(bad)


@pytest.mark.parametrize("suffix, size", [(".jpg", (900, 1200)), (".png", (30, 40)),
                                          (".png", (600, 100))])
def test_read_thumbnail_shrinks_keeps_aspect_and_never_enlarges(tmp_path, suffix, size):
    path = write_image(tmp_path / f"photo{suffix}", size=size, mode="L")
    thumb = image_files.read_thumbnail(path, max_side=160)
    assert thumb.dtype == np.uint8 and thumb.shape[2] == 3
    assert max(thumb.shape[:2]) == min(160, max(size))
    width, height = size
    assert abs(thumb.shape[0] * width - thumb.shape[1] * height) <= max(size)  # aspect, to 1 px


def test_read_thumbnail_rejects_bad_sizes_and_files(tmp_path):
    path = tmp_path / "x.png"
    Image.new("RGB", (20, 20)).save(path)
    with pytest.raises(ValueError, match="max_side=4"):
        image_files.read_thumbnail(path, max_side=4)
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ValueError, match="cannot decode"):
        image_files.read_thumbnail(tmp_path / "text.png", max_side=64)


# --------------------------------------------------------------------------- uploaded photos


def _encoded(array, fmt):
    import io

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


def test_an_uploaded_photo_is_stored_once_as_a_bounded_rgb_png(tmp_path):
    big = np.zeros((1500, 2000, 4), np.uint8)  # RGBA, larger than UPLOAD_MAX_SIDE
    big[..., 0], big[..., 3] = 180, 255
    content = _encoded(big, "PNG")
    path = image_files.save_uploaded_image(content, name="a.png", folder=tmp_path / "up")
    again = image_files.save_uploaded_image(content, name="b.png", folder=tmp_path / "up")
    assert path == again and sorted(p.name for p in (tmp_path / "up").iterdir()) == [path.name]
    with Image.open(path) as img:
        assert img.format == "PNG" and img.mode == "RGB"
        assert max(img.size) == image_files.UPLOAD_MAX_SIDE and img.size == (1024, 768)
    jpeg = image_files.save_uploaded_image(_encoded(big[..., :3], "JPEG"), name="c.jpg",
                                           folder=tmp_path / "up")
    assert jpeg != path and image_files.read_image_rgb(jpeg).shape == (768, 1024, 3)


@pytest.mark.parametrize("content, name, match", [
    (b"", "empty.png", "'empty.png' is empty"),
    (b"plain text, not a photo", "notes.txt", "'notes.txt' is not an image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "cut.png", "'cut.png' is not an image"),
])
def test_a_bad_upload_is_named_and_nothing_is_stored(tmp_path, content, name, match):
    with pytest.raises(ValueError, match=match):
        image_files.save_uploaded_image(content, name=name, folder=tmp_path / "up")
    assert not (tmp_path / "up").exists() or not list((tmp_path / "up").iterdir())


def test_an_upload_over_the_limit_is_refused_before_decoding(tmp_path):
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    content = _encoded(noise, "PNG")  # about 12 KiB
    with pytest.raises(ValueError, match=r"'x.png' is 1\d.\d KiB; photos up to 0.1 KiB"):
        image_files.save_uploaded_image(content, name="x.png", folder=tmp_path, max_bytes=100)
    with pytest.raises(ValueError, match="max_bytes"):
        image_files.save_uploaded_image(content, name="x.png", folder=tmp_path, max_bytes=0)


# --------------------------------------------------------------------------- EXIF orientation


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_a_phone_photo_is_read_the_right_way_up(tmp_path, orientation):
    upright = upright_picture()
    path = write_phone_jpeg(tmp_path / "phone.jpg", upright, orientation=orientation)
    with Image.open(path) as raw:  # what the file holds is turned (a portrait for 6 and 8)
        assert raw.size != (48, 24) or orientation == 3
        assert image_files.exif_orientation(raw) == orientation
    read = image_files.read_image_rgb(path)
    assert read.shape == upright.shape
    assert np.abs(read.astype(int) - upright).mean() < 6
    assert np.abs(image_files.read_image_rgb(path, size=24).astype(int)
                  - np.asarray(Image.fromarray(upright).resize((24, 24)))).mean() < 10
    thumb = image_files.read_thumbnail(path, max_side=16)
    assert thumb.shape == (8, 16, 3)  # landscape, as taken


def test_an_uploaded_phone_photo_is_stored_the_right_way_up(tmp_path):
    upright = upright_picture()
    content = write_phone_jpeg(tmp_path / "phone.jpg", upright).read_bytes()
    stored = image_files.save_uploaded_image(content, name="phone.jpg", folder=tmp_path / "up")
    with Image.open(stored) as png:
        assert png.size == (48, 24)
        assert image_files.exif_orientation(png) == 1
        assert np.abs(np.asarray(png.convert("RGB")).astype(int) - upright).mean() < 6


def test_files_without_a_rotation_are_upright():
    assert image_files.file_exif_orientation("/no/such/file.jpg") == 1
    assert image_files.exif_orientation(Image.new("RGB", (4, 4))) == 1
