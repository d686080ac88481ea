"""Classifier heads, the end-to-end model, and predictions for new image files.

The original study's transfer-learning CNN is a frozen backbone followed by a small head:
``Dense(50, relu) → Dense(20, relu) → Dense(N, softmax)``. The head is trained on cached
backbone features (:func:`build_classifier_head`), then joined to the backbone into one model
(:func:`build_end_to_end_model`) that takes a raw RGB image of any size (float 0–255), resizes
it, and returns class probabilities. The class names travel inside the saved ``.keras`` file,
in the config of an identity layer (:class:`ClassNames`), so a model file is self-describing:
:func:`predict_images` needs nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np
import pandas as pd

__all__ = [
    "ClassNames",
    "build_classifier_head",
    "build_end_to_end_model",
    "class_names_of",
    "compile_classifier",
    "encode_labels",
    "load_end_to_end_model",
    "model_image_size",
    "predict_images",
    "save_end_to_end_model",
]


@keras.saving.register_keras_serializable(package="fashion_utils")
class ClassNames(keras.layers.Layer):
    """Identity layer whose config holds the class names (they survive ``save``/``load_model``).

    Args:
        class_names: one name per output unit, in order.
    """

    def __init__(self, class_names: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        names = [str(c) for c in class_names]
        if len(names) < 2 or len(set(names)) != len(names):
            raise ValueError(f"class_names must hold at least 2 distinct names. Received: "
                             f"class_names={list(class_names)!r}")
        self.class_names = names

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "class_names": list(self.class_names)}


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}. Received: {name}={value!r}")
    return int(value)


def build_classifier_head(input_dim: int, num_classes: int, *, units: Sequence[int] = (50, 20),
                          dropout: float = 0.0, activation: str = "relu",
                          name: str = "classifier_head") -> keras.Model:
    """The original study's head: Dense layers (``units``) then a softmax over the classes.

    Args:
        input_dim: length of a feature vector (e.g. ``backbones.feature_dim(name)``).
        num_classes: number of classes (>= 2).
        units: sizes of the hidden Dense layers (the original study: ``(50, 20)``); ``()``
            gives a multinomial logistic regression.
        dropout: dropout rate after each hidden layer (0: none, as in the original).
        activation: activation of the hidden layers.
        name: the model's name.

    Returns:
        An uncompiled functional ``keras.Model``: ``(None, input_dim)`` → ``(None, num_classes)``.
    """
    input_dim = _positive_int("input_dim", input_dim)
    num_classes = _positive_int("num_classes", num_classes, minimum=2)
    units = tuple(units)
    for u in units:
        _positive_int("units", u)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a rate with 0 <= x < 1. Received: dropout={dropout!r}")
    inputs = keras.Input(shape=(input_dim,), name="features")
    x = inputs
    for i, width in enumerate(units, start=1):
        x = keras.layers.Dense(width, activation=activation, name=f"dense_{i}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def compile_classifier(model: keras.Model, *, learning_rate: float = 1e-3) -> keras.Model:
    """Compile for integer labels: Adam(``learning_rate``), sparse cross-entropy, accuracy."""
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or learning_rate <= 0:
        raise ValueError(f"learning_rate must be > 0. Received: learning_rate={learning_rate!r}")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def encode_labels(labels: Sequence[Any], *, class_names: Sequence[str]) -> np.ndarray:
    """Class names → integer indices (positions in ``class_names``).

    Raises:
        ValueError: naming labels that are not in ``class_names``.
    """
    index = {str(c): i for i, c in enumerate(class_names)}
    labels = pd.Series(labels).astype(str)
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise ValueError(f"Labels not in class_names: {unknown[:10]}. Received: class_names={list(class_names)!r}")
    return labels.map(index).to_numpy(dtype=np.int64)


def check_backbone_fits_head(backbone, head, *, image_size: int) -> None:
    """Raise ``ValueError`` unless ``backbone`` takes ``image_size`` RGB images and gives the
    feature width that ``head`` takes."""
    expected = (int(image_size), int(image_size), 3)
    if tuple(backbone.input_shape[1:]) != expected:
        raise ValueError(f"The backbone takes {backbone.input_shape[1:]}, not {expected}. "
                         f"Received: image_size={image_size!r}")
    if backbone.output_shape[-1] != head.input_shape[-1]:
        raise ValueError(f"The backbone gives {backbone.output_shape[-1]} features but the head takes "
                         f"{head.input_shape[-1]}.")


def build_end_to_end_model(backbone: keras.Model, head: keras.Model, *, class_names: Sequence[str],
                           image_size: int, name: str = "end_to_end_classifier") -> keras.Model:
    """One model from raw image to probabilities: Resizing → frozen backbone → head → names.

    Args:
        backbone: a feature extractor taking ``(None, S, S, 3)`` float RGB 0–255
            (``backbones.load_backbone(..., include_top=False)``); it is frozen.
        head: the trained head taking the backbone's features.
        class_names: one name per output of the head, in order.
        image_size: S, the backbone's input side.
        name: the model's name.

    Returns:
        A functional ``keras.Model`` taking ``(None, None, None, 3)`` float RGB 0–255 images of
        any size (one size per batch) and returning ``(None, len(class_names))`` probabilities.
    """
    image_size = _positive_int("image_size", image_size, minimum=8)
    check_backbone_fits_head(backbone, head, image_size=image_size)
    if head.output_shape[-1] != len(class_names):
        raise ValueError(f"The head has {head.output_shape[-1]} outputs but {len(class_names)} class names "
                         f"were given. Received: class_names={list(class_names)!r}")
    backbone.trainable = False
    inputs = keras.Input(shape=(None, None, 3), name="image")
    x = keras.layers.Resizing(image_size, image_size, interpolation="bilinear", antialias=True,
                              name="resize")(inputs)
    x = backbone(x)
    x = head(x)
    outputs = ClassNames(class_names, name="class_names")(x)
    return keras.Model(inputs, outputs, name=name)


def class_names_of(model: keras.Model) -> list[str]:
    """The class names stored in a model built by :func:`build_end_to_end_model`."""
    for layer in model.layers:
        if isinstance(layer, ClassNames):
            return list(layer.class_names)
    raise ValueError(f"Model {model.name!r} has no ClassNames layer: build it with build_end_to_end_model.")


def model_image_size(model: keras.Model) -> int:
    """The side the model resizes its input to (its ``resize`` layer)."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.Resizing):
            return int(layer.get_config()["height"])
    raise ValueError(f"Model {model.name!r} has no Resizing layer: build it with build_end_to_end_model.")


def save_end_to_end_model(model: keras.Model, path: str | os.PathLike) -> Path:
    """Save a model as ``.keras`` atomically (temporary name, then rename); returns the path."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"The model file must end in '.keras'. Received: path={os.fspath(path)!r}")
    class_names_of(model)  # refuse a model that would not be self-describing
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.keras")
    model.save(tmp)
    os.replace(tmp, path)
    return path


def load_end_to_end_model(path: str | os.PathLike) -> keras.Model:
    """Load a saved end-to-end ``.keras`` model (its class names included)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {path}")
    return keras.saving.load_model(path, custom_objects={"ClassNames": ClassNames})


def _load_for_model(path: str, *, image_size: int):
    """Decode and resize one image exactly as the feature extraction did (``features``):
    any JPEG/PNG/GIF/BMP to RGB, large JPEGs decoded at a reduced DCT scale. Other formats
    (WebP, TIFF) go through PIL (``image_files.read_image_rgb``)."""
    import tensorflow as tf

    from fashion_utils.features import decode_image_tensor

    if not Path(path).is_file():
        raise FileNotFoundError(f"No image file at {path}")
    try:
        return decode_image_tensor(tf.io.read_file(path), image_size=image_size)
    except tf.errors.InvalidArgumentError:
        from fashion_utils.image_files import read_image_rgb

        img = tf.constant(read_image_rgb(path), dtype=tf.float32)
        return tf.image.resize(img, [image_size, image_size], antialias=True)


def predict_images(model_path: str | os.PathLike | keras.Model, image_paths: Sequence[str | os.PathLike],
                   *, batch_size: int = 64) -> pd.DataFrame:
    """Class probabilities for image files (JPEG, PNG, ...; RGB, grayscale, any size).

    Each image is decoded to RGB and resized to the model's input side exactly as the
    cached features were (``features.decode_image_tensor``), so the probabilities match the
    head on the cached features; the model's own ``Resizing`` is then the identity. Calling
    the model on the full-size decoded image gives the same result (bilinear resizing either
    way), up to JPEG decoding: large JPEGs are decoded at a reduced DCT scale here.

    Args:
        model_path: a ``.keras`` file from :func:`build_end_to_end_model` (or the model itself).
        image_paths: the images.
        batch_size: images per forward pass.

    Returns:
        One row per image: ``image_path``, ``label`` (the most probable class), ``confidence``
        (its probability), then one probability column per class name.
    """
    import tensorflow as tf

    batch_size = _positive_int("batch_size", batch_size)
    model = model_path if isinstance(model_path, keras.Model) else load_end_to_end_model(model_path)
    names = class_names_of(model)
    size = model_image_size(model)
    paths = [os.fspath(p) for p in image_paths]
    if not paths:
        raise ValueError("predict_images needs at least one image. Received: 0 paths")
    chunks = []
    for lo in range(0, len(paths), batch_size):
        batch = tf.stack([_load_for_model(p, image_size=size) for p in paths[lo:lo + batch_size]])
        chunks.append(np.asarray(model.predict_on_batch(batch)))
    probs = np.concatenate(chunks)
    table = pd.DataFrame({"image_path": paths, "label": [names[i] for i in probs.argmax(axis=1)],
                          "confidence": probs.max(axis=1)})
    return pd.concat([table, pd.DataFrame(probs, columns=names)], axis=1)
