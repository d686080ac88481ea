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

from fashion_utils import config
from fashion_utils.atomic import atomic_path
from fashion_utils.vision.backbones import BACKBONE_NAMES
from fashion_utils.checks import one_of, positive_float, positive_int, positive_ints, rate
from fashion_utils.vision import features
from fashion_utils.vision.features import predict_image_files

__all__ = [
    "ClassNames",
    "HorizontalFlip",
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


@keras.saving.register_keras_serializable(package="fashion_utils")
class HorizontalFlip(keras.layers.Layer):
    """Mirror images left to right, always: the test-time twin of ``RandomFlip`` (a saved
    model that averages an image with its mirror image, ``scratch.build_scratch_models``)."""

    def call(self, inputs):
        return keras.ops.flip(inputs, axis=-2)

    def compute_output_shape(self, input_shape):
        return input_shape


OPTIMIZERS: tuple[str, ...] = ("adam", "sgd", "rmsprop")


def build_classifier_head(input_dim: int, num_classes: int, *,
                          units: Sequence[int] = config.ORIGINAL_UNITS, dropout: float = 0.0,
                          l2: float = 0.0, activation: str = "relu",
                          name: str = "classifier_head") -> keras.Model:
    """The original study's head: Dense layers (``units``) then a softmax over the classes.

    The one head of the study: notebook 03 trains it with the original values, and the
    tuner's hypermodel (notebook 04) builds every trial with it.

    Args:
        input_dim: length of a feature vector (e.g. ``backbones.feature_dim(name)``).
        num_classes: number of classes (>= 2).
        units: sizes of the hidden Dense layers (the original study: ``(50, 20)``); ``()``
            gives a multinomial logistic regression.
        dropout: dropout rate after each hidden layer (0: none, as in the original).
        l2: L2 weight penalty on the hidden layers' kernels (0: none, as in the original).
        activation: activation of the hidden layers.
        name: the model's name.

    Returns:
        An uncompiled functional ``keras.Model``: ``(None, input_dim)`` → ``(None, num_classes)``.
    """
    input_dim = positive_int("input_dim", input_dim)
    num_classes = positive_int("num_classes", num_classes, minimum=2)
    units = positive_ints("units", units)
    dropout = rate("dropout", dropout)
    l2 = positive_float("l2", l2, allow_zero=True)
    inputs = keras.Input(shape=(input_dim,), name="features")
    x = dense_stack(inputs, units, activation=activation, dropout=dropout, l2=l2)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def dense_stack(x: Any, units: Sequence[int], *, activation: str = "relu", dropout: float = 0.0,
                l2: float = 0.0, prefix: str = "") -> Any:
    """Hidden layers of a head: ``Dense(u)`` (then ``Dropout``) for each u in ``units``, named
    ``<prefix>dense_1``, ``<prefix>dropout_1``, ...; returns the last tensor."""
    regularizer = keras.regularizers.L2(l2) if l2 > 0 else None
    for i, width in enumerate(units, start=1):
        x = keras.layers.Dense(width, activation=activation, kernel_regularizer=regularizer,
                               name=f"{prefix}dense_{i}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"{prefix}dropout_{i}")(x)
    return x


def compile_classifier(model: keras.Model, *, learning_rate: float = config.ORIGINAL_LEARNING_RATE,
                       optimizer: str = "adam") -> keras.Model:
    """Compile for integer labels: ``optimizer`` at ``learning_rate`` (Adam, as in the original;
    SGD with momentum 0.9; RMSprop), sparse cross-entropy, accuracy."""
    learning_rate = positive_float("learning_rate", learning_rate)
    one_of("optimizer", optimizer, OPTIMIZERS)
    make = {"adam": lambda: keras.optimizers.Adam(learning_rate),
            "sgd": lambda: keras.optimizers.SGD(learning_rate, momentum=0.9),
            "rmsprop": lambda: keras.optimizers.RMSprop(learning_rate)}[optimizer]
    model.compile(optimizer=make(), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
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


def labelled_features(rows: pd.DataFrame, ids: Sequence[str], feats: np.ndarray, *, target: str,
                      class_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """What a head trains on: the cached features of ``rows`` (by ``id``) and their integer
    labels (``target`` encoded by ``class_names``).

    Raises:
        ValueError: an id without cached features, or a label not in ``class_names``.
    """
    return (features.align_features(rows["id"], ids, feats),
            encode_labels(rows[target], class_names=class_names))


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
    image_size = positive_int("image_size", image_size, minimum=8)
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


#: Suffix of an end-to-end model's name whose backbone was never trained on images
#: (``finetune.frozen_backbone_candidate``): its backbone's output is the feature cache.
FROZEN_SUFFIX = "_frozen"


def frozen_backbone_name(model: keras.Model) -> str | None:
    """The backbone of an end-to-end model built on the frozen, untrained backbone (named
    ``<backbone>_frozen``), or ``None`` for any other model."""
    name = model.name.removesuffix(FROZEN_SUFFIX)
    return name if model.name.endswith(FROZEN_SUFFIX) and name in BACKBONE_NAMES else None


def class_names_of(model: keras.Model) -> list[str]:
    """The class names stored in a model built by :func:`build_end_to_end_model`."""
    for layer in model.layers:
        if isinstance(layer, ClassNames):
            return list(layer.class_names)
    raise ValueError(f"Model {model.name!r} has no ClassNames layer: build it with build_end_to_end_model.")


def model_image_size(model: keras.Model, *, default: int | None = None) -> int:
    """The square side a model works at: its fixed input size, else the size of its first
    ``Resizing`` layer (end-to-end models resize any input), else ``default``.

    Raises:
        ValueError: neither a fixed square input nor a ``Resizing`` layer, and no ``default``.
    """
    shape = tuple(model.input_shape)
    if len(shape) == 4 and shape[1] is not None and shape[1] == shape[2]:
        return int(shape[1])
    for layer in model.layers:
        if isinstance(layer, keras.layers.Resizing):
            return int(layer.get_config()["height"])
    if default is None:
        raise ValueError(f"Model {model.name!r} has no fixed input size {shape} and no Resizing "
                         f"layer: build it with build_end_to_end_model, or pass image_size=")
    return int(default)


def save_end_to_end_model(model: keras.Model, path: str | os.PathLike) -> Path:
    """Save a model as ``.keras`` atomically (temporary name, then rename); returns the path."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"The model file must end in '.keras'. Received: path={os.fspath(path)!r}")
    class_names_of(model)  # refuse a model that would not be self-describing
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)
    return path


def load_end_to_end_model(path: str | os.PathLike, *, compile: bool = False) -> keras.Model:
    """Load a saved end-to-end ``.keras`` model (its class names included), for prediction.

    ``compile=False`` (the default) leaves the optimizer out: its variables were never built
    in the saved model, and restoring it only warns ("Skipping variable loading for
    optimizer"). Pass ``compile=True`` to train the loaded model further.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {path}")
    return keras.saving.load_model(path, custom_objects={"ClassNames": ClassNames},
                                   compile=bool(compile))


def predict_images(model_path: str | os.PathLike | keras.Model, image_paths: Sequence[str | os.PathLike],
                   *, batch_size: int = 64) -> pd.DataFrame:
    """Class probabilities for image files (JPEG, PNG, ...; RGB, grayscale, any size).

    Each image is decoded to RGB and resized to the model's input side exactly as the
    cached features were (``features.predict_image_files``), so the probabilities match the
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
    batch_size = positive_int("batch_size", batch_size)
    model = model_path if isinstance(model_path, keras.Model) else load_end_to_end_model(model_path)
    names = class_names_of(model)
    paths = [os.fspath(p) for p in image_paths]
    if not paths:
        raise ValueError("predict_images needs at least one image. Received: 0 paths")
    probs = predict_image_files(model, paths, image_size=model_image_size(model),
                                batch_size=batch_size)
    table = pd.DataFrame({"image_path": paths, "label": [names[i] for i in probs.argmax(axis=1)],
                          "confidence": probs.max(axis=1)})
    return pd.concat([table, pd.DataFrame(probs, columns=names)], axis=1)
