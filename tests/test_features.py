"""Streamed, cached feature extraction (with a tiny stand-in model: no weights needed)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fashion_utils import features


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


def test_cache_is_reused_and_keyed_by_ids_model_and_size(images, tmp_path):
    ids = [str(i) for i in range(len(images))]
    kw = dict(image_size=28, cache_dir=tmp_path / "cache", batch_size=8, chunk_size=8, progress=False)
    factory = CountingFactory()
    _, first = features.extract_embeddings(ids, images, model_factory=factory, model_key="m", **kw)
    _, again = features.extract_embeddings(ids, images, model_factory=factory, model_key="m", **kw)
    assert factory.calls == 1  # served from cache
    np.testing.assert_array_equal(first, again)
    features.extract_embeddings(ids[::-1], images[::-1], model_factory=factory, model_key="m", **kw)
    features.extract_embeddings(ids, images, model_factory=factory, model_key="other", **kw)
    features.extract_embeddings(ids, images, model_factory=factory, model_key="m",
                                **{**kw, "image_size": 16})
    assert factory.calls == 4
    folders = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(folders) == 4


def _interrupt_after(monkeypatch, n_saves: int) -> list[str]:
    """Make the extraction's chunk save raise KeyboardInterrupt after ``n_saves`` saves;
    returns the names saved (the list keeps growing once the patch is replaced)."""
    real_save, saved = features.save_npy_atomic, []

    def failing_save(path, array):
        if len(saved) == n_saves:
            raise KeyboardInterrupt("simulated interruption")
        saved.append(path.name)
        real_save(path, array)

    monkeypatch.setattr(features, "save_npy_atomic", failing_save)
    return saved


def test_interrupted_run_resumes_from_finished_chunks(images, tmp_path, monkeypatch):
    ids = [str(i) for i in range(len(images))]
    kw = dict(model_key="m", image_size=28, cache_dir=tmp_path / "cache", batch_size=8,
              chunk_size=8, progress=False)
    real_save = features.save_npy_atomic
    saved = _interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        features.extract_embeddings(ids, images, model_factory=CountingFactory(), **kw)
    folder = next((tmp_path / "cache").iterdir())
    assert sorted(p.name for p in folder.glob("chunk_*.npy")) == ["chunk_00000.npy", "chunk_00001.npy"]
    assert not (folder / "features.npy").exists()  # no half-written result

    monkeypatch.setattr(features, "save_npy_atomic", lambda p, a: (saved.append(p.name), real_save(p, a)))
    saved.clear()
    _, feats = features.extract_embeddings(ids, images, model_factory=CountingFactory(), **kw)
    assert saved == ["chunk_00002.npy"]  # only the missing chunk was computed
    np.testing.assert_allclose(feats, _reference(images, 28), atol=1e-3)
    assert not list(folder.glob("chunk_*.npy")) and not list(folder.glob(".*tmp*"))


@pytest.mark.parametrize("first, second", [(8, 4), (4, 8), (8, 16)])
def test_a_resume_with_another_chunk_size_never_reuses_misaligned_chunks(
        images, tmp_path, monkeypatch, first, second):
    """Issue 15: chunk files of 8 rows were reused as chunks of 4 (rows shifted, zeros)."""
    ids = [str(i) for i in range(len(images))]
    kw = dict(model_key="m", image_size=28, cache_dir=tmp_path / "cache", batch_size=4,
              progress=False)
    real_save = features.save_npy_atomic
    _interrupt_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        features.extract_embeddings(ids, images, model_factory=CountingFactory(),
                                    chunk_size=first, **kw)
    monkeypatch.setattr(features, "save_npy_atomic", real_save)
    with pytest.warns(UserWarning, match=r"discarded 1 unfinished chunk\(s\)"):
        _, feats = features.extract_embeddings(ids, images, model_factory=CountingFactory(),
                                               chunk_size=second, **kw)
    np.testing.assert_allclose(feats, _reference(images, 28), atol=1e-3)
    folder = next((tmp_path / "cache").iterdir())
    assert sorted(p.name for p in folder.iterdir()) == ["features.npy", "ids.txt", "meta.json"]


def test_a_chunk_of_the_wrong_shape_is_deleted_and_named(images, tmp_path):
    ids = [str(i) for i in range(len(images))]
    kw = dict(model_key="m", image_size=28, cache_dir=tmp_path / "cache", batch_size=8,
              chunk_size=8, progress=False)
    folder = tmp_path / "cache" / features.cache_key("m", 28, ids)
    folder.mkdir(parents=True)
    (folder / "chunks.json").write_text('{"n": 23, "chunk_size": 8}')
    np.save(folder / "chunk_00001.npy", np.zeros((5, 3), np.float32))  # 5 rows, not 8
    with pytest.raises(ValueError, match=r"chunk_00001.npy has shape \(5, 3\).*8 rows"):
        features.extract_embeddings(ids, images, model_factory=CountingFactory(), **kw)
    assert not (folder / "chunk_00001.npy").exists() and not (folder / "features.npy").exists()
    _, feats = features.extract_embeddings(ids, images, model_factory=CountingFactory(), **kw)
    np.testing.assert_allclose(feats, _reference(images, 28), atol=1e-3)


def test_an_undecodable_image_is_named_and_finished_chunks_are_kept(images, tmp_path):
    ids = [str(i) for i in range(len(images))]
    broken = tmp_path / "img" / "broken.png"
    broken.write_bytes(b"not an image at all")
    paths = images[:-1] + [str(broken)]
    kw = dict(model_key="m", image_size=28, cache_dir=tmp_path / "cache", batch_size=8,
              chunk_size=8, progress=False)
    with pytest.raises(ValueError, match=r"Cannot decode 1 image file\(s\) of ids 16-22.*"
                                         r"broken.png"):
        features.extract_embeddings(ids, paths, model_factory=CountingFactory(), **kw)
    folder = next((tmp_path / "cache").iterdir())
    assert sorted(p.name for p in folder.glob("chunk_*.npy")) == ["chunk_00000.npy",
                                                                   "chunk_00001.npy"]
    assert not (folder / "features.npy").exists()


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
    from fashion_utils.image_files import read_image_rgb

    pil_fast = read_image_rgb(path, size=96).astype(np.float32)
    assert np.abs(pil_fast - full).mean() < 3.0


def test_the_finished_cache_and_its_seconds_are_read_without_extracting(tmp_path, make_image):
    catalog = pd.DataFrame({"id": [1, 2, 3], "image_path": [
        str(make_image(tmp_path / f"{i}.png", seed=i)) for i in range(3)]})
    options = dict(image_size=32, cache_dir=tmp_path / "cache", weights=None)
    with pytest.raises(FileNotFoundError, match="No finished feature cache"):
        features.extraction_seconds(catalog, "efficientnet_lite0", **options)
    with pytest.raises(FileNotFoundError, match="No finished feature cache"):
        features.finished_feature_cache(catalog, "efficientnet_lite0", **options)
    ids, feats = features.extract_features(catalog, "efficientnet_lite0", progress=False,
                                           **options)
    (cache,) = features.find_feature_caches(tmp_path / "cache")
    # read back without extracting: the same rows, in the catalog's order
    read = features.finished_feature_cache(catalog, "efficientnet_lite0", **options)
    assert read.folder == cache.folder and list(read.ids) == ["1", "2", "3"] == list(ids)
    np.testing.assert_array_equal(read.features, feats)
    with pytest.raises(FileNotFoundError):  # the ImageNet weights' cache: never extracted
        features.finished_feature_cache(catalog, "efficientnet_lite0",
                                        **{**options, "weights": "imagenet"})
    seconds = features.extraction_seconds(catalog, "efficientnet_lite0", **options)
    assert seconds == cache.meta["seconds"] > 0
    with pytest.raises(FileNotFoundError):  # another size, another cache: none
        features.extraction_seconds(catalog, "efficientnet_lite0", **{**options, "image_size": 64})
    meta = cache.folder / features.META_FILE
    meta.write_text(json.dumps({k: v for k, v in cache.meta.items() if k != "seconds"}))
    with pytest.raises(ValueError, match="recorded no extraction time"):
        features.extraction_seconds(catalog, "efficientnet_lite0", **options)


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
