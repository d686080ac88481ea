"""Streamed, cached feature extraction (with a tiny stand-in model: no weights needed)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fashion_utils.vision import features


def _write_images(folder, n, *, mode="L", size=(28, 28), ext="png"):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        arr = rng.integers(0, 256, size=size[::-1] + ((3,) if mode != "L" else ()), dtype=np.uint8)
        img = Image.fromarray(arr, "RGB" if mode != "L" else "L")
        if mode not in ("L", "RGB"):
            img = img.convert(mode)
        path = folder / f"{i}.{ext}"
        img.save(path)
        paths.append(str(path))
    return paths


class CountingFactory:
    """A tiny Keras model (mean colour per channel, times 2) that counts how often it is built."""

    def __init__(self):
        self.calls = 0

    def __call__(self):
        import keras

        self.calls += 1
        inputs = keras.Input((None, None, 3))
        outputs = keras.layers.GlobalAveragePooling2D()(inputs) * 2.0
        return keras.Model(inputs, outputs)


@pytest.fixture()
def images(tmp_path):
    folder = tmp_path / "img"
    folder.mkdir()
    return _write_images(folder, 23)


def _reference(paths, size):
    out = []
    for p in paths:
        img = Image.open(p).convert("RGB").resize((size, size), Image.BILINEAR)
        out.append(np.asarray(img, np.float32).mean(axis=(0, 1)) * 2)
    return np.stack(out)


def test_image_dataset_decodes_every_mode_to_rgb(tmp_path):
    paths = []
    for mode, ext in [("L", "png"), ("RGB", "jpg"), ("CMYK", "jpg"), ("RGBA", "png"), ("P", "png")]:
        sub = tmp_path / mode
        sub.mkdir()
        paths += _write_images(sub, 1, mode=mode, size=(30, 40), ext=ext)
    batches = list(features.image_dataset(paths, image_size=16, batch_size=4))
    assert [b.shape[0] for b in batches] == [4, 1]
    stacked = np.concatenate([b.numpy() for b in batches])
    assert stacked.shape == (5, 16, 16, 3) and stacked.dtype == np.float32
    assert stacked.min() >= 0 and stacked.max() <= 255


def test_extract_matches_reference_and_keeps_order(images, tmp_path):
    ids = [f"item{i}" for i in range(len(images))]
    factory = CountingFactory()
    out_ids, feats = features.extract_embeddings(
        ids, images, model_factory=factory, model_key="mean", image_size=28,
        cache_dir=tmp_path / "cache", batch_size=8, chunk_size=8, progress=False)
    assert out_ids.tolist() == ids
    assert feats.shape == (23, 3) and feats.dtype == np.float32
    np.testing.assert_allclose(feats, _reference(images, 28), atol=1e-3)


def _passes(cache_dir) -> dict[str, tuple[int, int]]:
    """Forward passes and distinct images per store."""
    table = features.store_summary(cache_dir)
    return {row.store: (row.forward_passes, row.distinct_images) for row in table.itertuples()}


def test_each_image_goes_through_the_model_once_whatever_the_id_list(images, tmp_path):
    ids = [str(i) for i in range(len(images))]
    kw = dict(image_size=28, cache_dir=tmp_path / "cache", batch_size=8, chunk_size=8,
              progress=False)
    factory = CountingFactory()
    _, first = features.extract_embeddings(ids, images, model_factory=factory, model_key="m", **kw)
    _, again = features.extract_embeddings(ids, images, model_factory=factory, model_key="m", **kw)
    # another order, other ids, a subset: the same files, so the same vectors, no model built
    _, backwards = features.extract_embeddings([f"x{i}" for i in ids[::-1]], images[::-1],
                                               model_factory=factory, model_key="m", **kw)
    _, some = features.extract_embeddings(ids[5:9], images[5:9], model_factory=factory,
                                          model_key="m", **kw)
    assert factory.calls == 1
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(backwards, first[::-1])
    np.testing.assert_array_equal(some, first[5:9])
    features.extract_embeddings(ids, images, model_factory=factory, model_key="other", **kw)
    features.extract_embeddings(ids, images, model_factory=factory, model_key="m",
                                **{**kw, "image_size": 16})
    assert factory.calls == 3
    assert _passes(tmp_path / "cache") == {"m_16px": (23, 23), "m_28px": (23, 23),
                                           "other_28px": (23, 23)}


def test_one_file_under_two_ids_is_computed_once(images, tmp_path):
    kw = dict(model_key="m", image_size=28, cache_dir=tmp_path / "cache", batch_size=8,
              chunk_size=8, progress=False)
    _, feats = features.extract_embeddings(["a", "b", "c"], [images[0], images[1], images[0]],
                                           model_factory=CountingFactory(), **kw)
    np.testing.assert_array_equal(feats[0], feats[2])
    assert _passes(tmp_path / "cache") == {"m_28px": (2, 2)}


def test_a_changed_file_is_computed_again(images, tmp_path):
    """The store names a file by path, size, inode and time: new pixels, new vector."""
    ids = [str(i) for i in range(len(images))]
    kw = dict(model_key="m", image_size=28, cache_dir=tmp_path / "cache", batch_size=8,
              chunk_size=8, progress=False)
    features.extract_embeddings(ids, images, model_factory=CountingFactory(), **kw)
    tmp = images[0] + ".new.png"
    Image.fromarray(np.full((28, 28), 7, np.uint8), "L").save(tmp)
    os.replace(tmp, images[0])
    _, feats = features.extract_embeddings(ids, images, model_factory=CountingFactory(), **kw)
    np.testing.assert_allclose(feats, _reference(images, 28), atol=1e-3)
    np.testing.assert_allclose(feats[0], [14.0, 14.0, 14.0], atol=1e-3)
    assert _passes(tmp_path / "cache") == {"m_28px": (24, 24)}


def _interrupt_after(monkeypatch, n_saves: int) -> list[int]:
    """Make the extraction's shard write raise KeyboardInterrupt after ``n_saves`` writes;
    returns the rows of each shard written (the list keeps growing once the patch is replaced)."""
    real_write, saved = features._write_shard, []

    def failing_write(folder, keys, rows, seconds):
        if len(saved) == n_saves:
            raise KeyboardInterrupt("simulated interruption")
        saved.append(len(keys))
        return real_write(folder, keys, rows, seconds)

    monkeypatch.setattr(features, "_write_shard", failing_write)
    return saved


def test_interrupted_run_resumes_from_finished_shards(images, tmp_path, monkeypatch):
    ids = [str(i) for i in range(len(images))]
    kw = dict(model_key="m", image_size=28, cache_dir=tmp_path / "cache", batch_size=8,
              chunk_size=8, progress=False)
    real_write = features._write_shard
    saved = _interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        features.extract_embeddings(ids, images, model_factory=CountingFactory(), **kw)
    folder = features.store_folder(tmp_path / "cache", model_key="m", image_size=28)
    assert len(list(folder.glob(features.SHARD_GLOB))) == 2 and saved == [8, 8]
    assert not list(folder.glob(".*tmp*"))  # nothing half-written

    monkeypatch.setattr(features, "_write_shard",
                        lambda *a: (saved.append(len(a[1])), real_write(*a))[1])
    saved.clear()
    _, feats = features.extract_embeddings(ids, images, model_factory=CountingFactory(), **kw)
    assert saved == [7]  # only the images not yet stored were computed
    np.testing.assert_allclose(feats, _reference(images, 28), atol=1e-3)
    assert _passes(tmp_path / "cache") == {"m_28px": (23, 23)}


@pytest.mark.parametrize("first, second", [(8, 4), (4, 8), (8, 16)])
def test_a_resume_with_another_chunk_size_gives_the_same_features(
        images, tmp_path, monkeypatch, first, second):
    """Issue 15: chunk files of 8 rows were reused as chunks of 4 (rows shifted, zeros)."""
    ids = [str(i) for i in range(len(images))]
    kw = dict(model_key="m", image_size=28, cache_dir=tmp_path / "cache", batch_size=4,
              progress=False)
    real_write = features._write_shard
    _interrupt_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        features.extract_embeddings(ids, images, model_factory=CountingFactory(),
                                    chunk_size=first, **kw)
    monkeypatch.setattr(features, "_write_shard", real_write)
    _, feats = features.extract_embeddings(ids, images, model_factory=CountingFactory(),
                                           chunk_size=second, **kw)
    np.testing.assert_allclose(feats, _reference(images, 28), atol=1e-3)
    assert _passes(tmp_path / "cache") == {"m_28px": (23, 23)}


@pytest.mark.parametrize("damage", ["garbage", "rows"])
def test_a_damaged_shard_is_deleted_named_and_its_images_computed_again(images, tmp_path,
                                                                         damage):
    ids = [str(i) for i in range(len(images))]
    kw = dict(model_key="m", image_size=28, cache_dir=tmp_path / "cache", batch_size=8,
              chunk_size=8, progress=False)
    features.extract_embeddings(ids, images, model_factory=CountingFactory(), **kw)
    folder = features.store_folder(tmp_path / "cache", model_key="m", image_size=28)
    shard = sorted(folder.glob(features.SHARD_GLOB))[1]
    if damage == "garbage":
        shard.write_bytes(b"not a shard")
    else:  # 5 rows for 8 keys
        with np.load(shard) as z:
            keys = z["keys"]
        np.savez(shard, keys=keys, features=np.zeros((5, 3), np.float32), seconds=1.0)
    with pytest.warns(UserWarning, match=rf"{shard.name} could not be used.*deleted"):
        _, feats = features.extract_embeddings(ids, images, model_factory=CountingFactory(),
                                               **kw)
    assert not shard.exists()
    np.testing.assert_allclose(feats, _reference(images, 28), atol=1e-3)


def test_an_undecodable_image_is_named_and_finished_shards_are_kept(images, tmp_path):
    ids = [str(i) for i in range(len(images))]
    broken = tmp_path / "img" / "broken.png"
    broken.write_bytes(b"not an image at all")
    paths = images[:-1] + [str(broken)]
    kw = dict(model_key="m", image_size=28, cache_dir=tmp_path / "cache", batch_size=8,
              chunk_size=8, progress=False)
    with pytest.raises(ValueError, match=r"Cannot decode 1 image file\(s\).*broken.png"):
        features.extract_embeddings(ids, paths, model_factory=CountingFactory(), **kw)
    assert _passes(tmp_path / "cache") == {"m_28px": (16, 16)}


@pytest.mark.parametrize("kwargs, match", [
    (dict(image_size=4), "image_size"),
    (dict(image_size=28, batch_size=16, chunk_size=8), "chunk_size"),
])
def test_bad_arguments_are_rejected(images, tmp_path, kwargs, match):
    ids = [str(i) for i in range(len(images))]
    with pytest.raises(ValueError, match=match):
        features.extract_embeddings(ids, images, model_factory=CountingFactory(), model_key="m",
                                    cache_dir=tmp_path, progress=False, **kwargs)


def test_duplicate_ids_and_length_mismatch_are_rejected(images, tmp_path):
    with pytest.raises(ValueError, match="unique"):
        features.extract_embeddings(["a"] * len(images), images, model_factory=CountingFactory(),
                                    model_key="m", image_size=28, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="differ in length"):
        features.extract_embeddings(["a"], images, model_factory=CountingFactory(),
                                    model_key="m", image_size=28, cache_dir=tmp_path)


def test_align_features_orders_rows_and_names_missing_ids():
    feats = np.arange(12, dtype=np.float32).reshape(4, 3)
    ids = np.array(["a", "b", "c", "d"])
    np.testing.assert_array_equal(features.align_features(["c", "a"], ids, feats), feats[[2, 0]])
    with pytest.raises(ValueError, match="zz"):
        features.align_features(["a", "zz"], ids, feats)


def _photo(path, size=(1200, 1600)):
    """A smooth, photo-like JPEG (gradients and a few shapes) at a realistic size."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    arr = np.stack([255 * x / w, 255 * y / h, 128 + 100 * np.sin(x / 90) * np.cos(y / 70)], -1)
    arr[h // 4: h // 2, w // 3: 2 * w // 3] = [240, 30, 60]
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, quality=90)
    return str(path)


@pytest.mark.parametrize("height, width, size, expected", [
    (2400, 1800, 96, 8), (2400, 1800, 224, 8), (2400, 1800, 300, 4), (80, 60, 96, 1),
    (800, 600, 96, 4), (28, 28, 28, 1)])
def test_jpeg_scale_covers_the_target(height, width, size, expected):
    index = int(features.jpeg_scale_index(height, width, image_size=size))
    ratio = features.JPEG_SCALES[index]
    assert ratio == expected
    assert height // ratio >= size or ratio == 1


def test_dct_scaled_decode_matches_full_decode(tmp_path):
    import tensorflow as tf

    path = _photo(tmp_path / "big.jpg")
    data = tf.io.read_file(path)
    fast = features.decode_image_tensor(data, image_size=96).numpy()
    full = tf.image.resize(tf.io.decode_jpeg(data, channels=3), [96, 96], antialias=True).numpy()
    assert fast.shape == full.shape == (96, 96, 3)
    assert np.abs(fast - full).mean() < 2.0  # of 255
    assert np.abs(fast - full).max() < 40
    from fashion_utils.catalog.image_files import read_image_rgb

    pil_fast = read_image_rgb(path, size=96).astype(np.float32)
    assert np.abs(pil_fast - full).mean() < 3.0


def test_the_stored_features_and_their_seconds_are_read_without_extracting(tmp_path,
                                                                          make_image):
    catalog = pd.DataFrame({"id": [1, 2, 3], "image_path": [
        str(make_image(tmp_path / f"{i}.png", seed=i)) for i in range(3)]})
    options = dict(image_size=32, cache_dir=tmp_path / "cache", weights=None)
    with pytest.raises(FileNotFoundError, match="No finished feature cache"):
        features.extraction_seconds(catalog, "efficientnet_lite0", **options)
    with pytest.raises(FileNotFoundError, match="No finished feature cache"):
        features.finished_feature_cache(catalog, "efficientnet_lite0", **options)
    ids, feats = features.extract_features(catalog, "efficientnet_lite0", progress=False,
                                           **options)
    # read back without extracting: the same rows, in the catalog's order, any subset too
    read = features.finished_feature_cache(catalog, "efficientnet_lite0", **options)
    assert list(read.ids) == ["1", "2", "3"] == list(ids)
    np.testing.assert_array_equal(read.features, feats)
    part = features.finished_feature_cache(catalog.iloc[[2, 0]], "efficientnet_lite0", **options)
    np.testing.assert_array_equal(part.features, feats[[2, 0]])
    with pytest.raises(FileNotFoundError, match="for 1 of 4"):  # one image never extracted
        features.finished_feature_cache(pd.concat([catalog, pd.DataFrame(
            {"id": [9], "image_path": [str(make_image(tmp_path / "9.png", seed=9))]})]),
            "efficientnet_lite0", **options)
    with pytest.raises(FileNotFoundError):  # the ImageNet weights' store: never extracted
        features.finished_feature_cache(catalog, "efficientnet_lite0",
                                        **{**options, "weights": "imagenet"})
    (store,) = features.find_feature_stores(tmp_path / "cache")
    seconds = features.extraction_seconds(catalog, "efficientnet_lite0", **options)
    assert seconds == pytest.approx(features.open_feature_store(store).seconds) and seconds > 0
    assert part.seconds == pytest.approx(seconds * 2 / 3)  # a shard's time shared by its rows
    with pytest.raises(FileNotFoundError):  # another size, another store: none
        features.extraction_seconds(catalog, "efficientnet_lite0", **{**options, "image_size": 64})


def test_a_phone_photo_is_predicted_as_the_same_photo_taken_upright(tmp_path):
    """predict_image_files (query photos, uploads, multi-output predictions) applies the EXIF
    orientation: the model sees the turned JPEG exactly as it sees the upright one."""
    from conftest import upright_picture, write_phone_jpeg

    upright = upright_picture(64, 32)
    straight = tmp_path / "straight.jpg"
    Image.fromarray(upright).save(straight, format="JPEG", quality=95)
    turned = write_phone_jpeg(tmp_path / "turned.jpg", upright, orientation=6)

    def identity(batch, training=False):  # the model sees the decoded pixels
        return batch

    seen = features.predict_image_files(identity, [straight, turned], image_size=16)
    seen = seen.reshape(2, 16, 16, 3)
    assert np.abs(seen[0] - seen[1]).mean() < 6
    left, right = seen[1][:, :8].mean(axis=(0, 1)), seen[1][:, 8:].mean(axis=(0, 1))
    assert left[0] > left[2] and right[2] > right[0]  # red left, blue right: not sideways


def test_a_phone_photo_in_the_catalog_is_extracted_the_right_way_up(tmp_path):
    """The catalog's feature extraction sees a turned phone JPEG as the upright photo."""
    from conftest import upright_picture, write_phone_jpeg

    class Quadrants:  # features that change when the picture turns: the mean of each quadrant
        def __call__(self):
            import keras

            inputs = keras.Input((16, 16, 3))
            pooled = keras.layers.AveragePooling2D(8)(inputs)
            return keras.Model(inputs, keras.layers.Flatten()(pooled))

    upright = upright_picture(64, 32)
    straight = tmp_path / "straight.jpg"
    Image.fromarray(upright).save(straight, format="JPEG", quality=95)
    turned = write_phone_jpeg(tmp_path / "turned.jpg", upright, orientation=6)
    _, got = features.extract_embeddings(["a", "b", "c"], [straight, turned, straight],
                                         model_factory=Quadrants(), model_key="quadrants",
                                         image_size=16, cache_dir=tmp_path / "cache",
                                         batch_size=2, chunk_size=2)
    assert got.shape == (3, 12)
    assert np.abs(got[1] - got[0]).max() < 12  # JPEG noise only
    sideways = features.predict_image_files(
        lambda b, training=False: Quadrants()()(b), [turned], image_size=16)  # stays upright too
    assert np.abs(sideways[0] - got[0]).max() < 12
