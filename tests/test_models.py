"""The classifier head, the end-to-end model's save/load round trip, and predict_images."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fashion_utils.vision import models

CLASSES = ["Apparel", "Footwear", "Accessories"]


@pytest.mark.parametrize("input_dim, num_classes, units", [(8, 2, (50, 20)), (1280, 10, (50, 20)),
                                                           (5, 3, ()), (5, 4, (7,))])
def test_head_shapes_and_softmax_rows(input_dim, num_classes, units):
    head = models.build_classifier_head(input_dim, num_classes, units=units)
    assert head.input_shape == (None, input_dim) and head.output_shape == (None, num_classes)
    assert [layer.units for layer in head.layers if isinstance(layer, keras.layers.Dense)] == [*units, num_classes]
    probs = head.predict(np.random.default_rng(0).normal(size=(6, input_dim)), verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs >= 0).all()


def test_head_has_the_original_topology_by_default():
    head = models.build_classifier_head(1280, 3)
    dense = [layer for layer in head.layers if isinstance(layer, keras.layers.Dense)]
    assert [(d.units, d.get_config()["activation"]) for d in dense] == [(50, "relu"), (20, "relu"), (3, "softmax")]
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in head.layers)
    assert any(isinstance(layer, keras.layers.Dropout)
               for layer in models.build_classifier_head(8, 3, dropout=0.2).layers)


@pytest.mark.parametrize("kwargs, match", [
    ({"input_dim": 0}, "input_dim=0"), ({"num_classes": 1}, "num_classes=1"),
    ({"units": (50, -1)}, "units=-1"), ({"dropout": 1.0}, "dropout=1.0"),
])
def test_head_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        models.build_classifier_head(**{"input_dim": 8, "num_classes": 3, **kwargs})


def test_head_learns_a_separable_problem():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = np.eye(3)[y] * 3 + rng.normal(scale=0.3, size=(300, 3))
    head = models.compile_classifier(models.build_classifier_head(3, 3), learning_rate=1e-2)
    head.fit(x, y, epochs=10, batch_size=100, verbose=0)
    assert (head.predict(x, verbose=0).argmax(axis=1) == y).mean() > 0.95


def test_encode_labels():
    assert models.encode_labels(["Footwear", "Apparel"], class_names=CLASSES).tolist() == [1, 0]
    with pytest.raises(ValueError, match="Home"):
        models.encode_labels(["Home"], class_names=CLASSES)


def _stand_in_backbone(image_size):
    """A tiny feature extractor with the backbones' contract: (S, S, 3) floats 0–255 in."""
    inputs = keras.Input((image_size, image_size, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(6, 3, strides=2, activation="relu")(x)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name="stand_in")


@pytest.fixture(scope="module")
def end_to_end():
    keras.utils.set_random_seed(1)
    head = models.build_classifier_head(6, len(CLASSES), units=(5,))
    return models.build_end_to_end_model(_stand_in_backbone(24), head, class_names=CLASSES, image_size=24)


@pytest.fixture()
def image_files(tmp_path):
    rng = np.random.default_rng(3)
    png = tmp_path / "grey.png"
    jpg = tmp_path / "colour.jpg"
    Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8), "L").save(png)
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8), "RGB").save(jpg, quality=90)
    return [png, jpg]


def _in_memory(model, path, *, decoder="tensorflow"):
    """The model called on the decoded, full-size image (grey → RGB).

    TensorFlow's decoder is the one the features were extracted with; PIL's JPEG decoder
    differs from it by a few grey levels, so it is only compared loosely.
    """
    import tensorflow as tf

    if decoder == "tensorflow":
        img = tf.io.decode_image(tf.io.read_file(str(path)), channels=3).numpy().astype(np.float32)
    else:
        img = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    return model.predict(img[None], verbose=0)[0]


def test_end_to_end_model_takes_any_size_and_keeps_class_names(end_to_end):
    assert end_to_end.input_shape == (None, None, None, 3)
    assert models.class_names_of(end_to_end) == CLASSES and models.model_image_size(end_to_end) == 24
    for shape in [(1, 24, 24, 3), (2, 60, 80, 3)]:
        probs = end_to_end.predict(np.full(shape, 128.0, np.float32), verbose=0)
        assert probs.shape == (shape[0], 3)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert not any(layer.trainable_weights for layer in end_to_end.layers if layer.name == "stand_in")


def test_save_load_predict_images_round_trip(end_to_end, image_files, tmp_path):
    path = models.save_end_to_end_model(end_to_end, tmp_path / "models" / "baseline.keras")
    assert path.is_file() and [p.name for p in path.parent.iterdir()] == ["baseline.keras"]
    loaded = models.load_end_to_end_model(path)
    assert models.class_names_of(loaded) == CLASSES
    table = models.predict_images(path, image_files)
    assert list(table.columns) == ["image_path", "label", "confidence", *CLASSES]
    for row, image in zip(table.itertuples(index=False), image_files):
        expected = _in_memory(end_to_end, image)
        np.testing.assert_allclose([getattr(row, c) for c in CLASSES], expected, atol=1e-5)
        np.testing.assert_allclose(_in_memory(loaded, image), expected, atol=1e-6)
        assert row.label == CLASSES[int(expected.argmax())]
        assert row.confidence == pytest.approx(expected.max(), abs=1e-5)
        np.testing.assert_allclose(_in_memory(end_to_end, image, decoder="pil"), expected, atol=1e-2)
    same = models.predict_images(end_to_end, image_files, batch_size=1)
    np.testing.assert_allclose(same[CLASSES].to_numpy(), table[CLASSES].to_numpy(), atol=1e-6)


@pytest.mark.slow  # builds the real Lite0 architecture (random weights): ~5-10 s
def test_round_trip_with_a_real_backbone_architecture(image_files, tmp_path):
    from fashion_utils.vision.backbones import feature_dim, load_backbone

    backbone = load_backbone("efficientnet_lite0", image_size=32, weights=None)
    head = models.build_classifier_head(feature_dim("efficientnet_lite0"), 3)
    model = models.build_end_to_end_model(backbone, head, class_names=CLASSES, image_size=32)
    model.save(tmp_path / "lite0.keras")
    table = models.predict_images(tmp_path / "lite0.keras", image_files)
    np.testing.assert_allclose(table.loc[1, CLASSES].to_numpy(dtype=float),
                               _in_memory(model, image_files[1]), atol=1e-5)


def test_bad_models_and_inputs_are_rejected(end_to_end, tmp_path):
    head = models.build_classifier_head(6, 3)
    with pytest.raises(ValueError, match="3 outputs but 2 class names"):
        models.build_end_to_end_model(_stand_in_backbone(24), head, class_names=CLASSES[:2], image_size=24)
    with pytest.raises(ValueError, match="image_size=32"):
        models.build_end_to_end_model(_stand_in_backbone(24), head, class_names=CLASSES, image_size=32)
    with pytest.raises(ValueError, match="gives 6 features but the head takes 9"):
        models.build_end_to_end_model(_stand_in_backbone(24), models.build_classifier_head(9, 3),
                                      class_names=CLASSES, image_size=24)
    with pytest.raises(ValueError, match="no ClassNames layer"):
        models.class_names_of(head)
    with pytest.raises(ValueError, match="0 paths"):
        models.predict_images(end_to_end, [])
    with pytest.raises(FileNotFoundError):
        models.predict_images(tmp_path / "missing.keras", ["x.png"])
    with pytest.raises(ValueError, match="must end in '.keras'"):
        models.save_end_to_end_model(end_to_end, tmp_path / "model.h5")
    with pytest.raises(ValueError, match="distinct"):
        models.ClassNames(["a", "a"])


def test_predict_images_falls_back_to_pil_for_other_formats(end_to_end, tmp_path):
    """TensorFlow cannot decode WebP; PIL can (lossless here, so the pixels are exact)."""
    pixels = np.random.default_rng(5).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.webp", lossless=True)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    table = models.predict_images(end_to_end, [tmp_path / "a.webp", tmp_path / "a.png"])
    np.testing.assert_allclose(table.loc[0, CLASSES].to_numpy(dtype=float),
                               table.loc[1, CLASSES].to_numpy(dtype=float), atol=1e-6)


def test_labelled_features_pairs_each_row_with_its_features_and_label():
    ids = np.array(["a", "b", "c"])
    feats = np.arange(6, dtype=np.float32).reshape(3, 2)
    rows = pd.DataFrame({"id": ["c", "a"], "kind": ["Bag", "Shoe"]})
    x, y = models.labelled_features(rows, ids, feats, target="kind", class_names=["Bag", "Shoe"])
    np.testing.assert_array_equal(x, feats[[2, 0]])
    assert y.tolist() == [0, 1]
    with pytest.raises(ValueError, match="no cached features"):
        models.labelled_features(rows.assign(id=["z", "a"]), ids, feats, target="kind",
                                 class_names=["Bag", "Shoe"])
