"""A small CNN trained from scratch within a time budget: the challenger to fine-tuning.

On 2 CPU cores a pretrained backbone is slow to fine-tune at a useful size (Lite0 at 64 px:
~4 minutes an epoch on Fashion-MNIST), while a ~300k-parameter CNN at the images' own 28 px
sees every training image in under 2 minutes. The recipe borrows from the CIFAR-10 speed
runs ("airbench"): conv-BN-GELU blocks, global max-pooling, label smoothing, Nesterov SGD
with weight decay, a one-cycle learning rate (linear warm-up, linear decay to 0), flip +
translate augmentation (Keras ``Random*`` layers, active only in training) and flip
test-time augmentation built into the saved model.

- :func:`build_scratch_models` returns the training model and the saved end-to-end model; they
  share their layers. The saved model takes raw RGB images of any size (float 0–255),
  resizes them, averages the pooled features of the image and its mirror image (layer
  ``embedding``: notebook 05's embedding) and returns class probabilities, with its class
  names (``models.ClassNames``), so ``models.predict_images`` reads it like any other.
- :class:`BudgetedOneCycle` fits the schedule to a wall-clock budget: after the warm-up it
  measures an epoch and plans how many more fit, so the learning rate reaches 0 at the last
  epoch that fits instead of being cut off mid-schedule.
- :func:`train_scratch_cnn` loads the images into memory once and trains; it returns
  ``finetune.FineTuneResult``, so notebook 04 treats both recipes alike.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import keras

from fashion_utils import config
from fashion_utils.checks import positive_float, positive_int, positive_ints, rate
from fashion_utils.vision.features import image_dataset
from fashion_utils.training.finetune import FineTuneResult
from fashion_utils.progress import keras_callback
from fashion_utils.vision.models import (ClassNames, HorizontalFlip, load_end_to_end_model,
                                         save_end_to_end_model)

__all__ = ["BudgetedOneCycle", "DEFAULT_WIDTHS", "build_scratch_features", "build_scratch_models",
           "load_image_array", "native_image_size", "train_scratch_cnn"]

#: Channels of the three conv blocks (each block halves the resolution).
DEFAULT_WIDTHS: tuple[int, ...] = (32, 64, 128)


def _conv_bn_gelu(x: Any, width: int, name: str) -> Any:
    x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=name)(x)
    x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return keras.layers.Activation("gelu", name=f"{name}_gelu")(x)


def build_scratch_features(*, image_size: int, widths: Sequence[int] = DEFAULT_WIDTHS,
                           convs_per_block: int = 2, name: str = "scratch_features") -> keras.Model:
    """The convolutional body: RGB 0–255 → pooled features (``widths[-1]`` values).

    A stem conv at ``widths[0]``, then one block per width: ``convs_per_block`` × (3×3 conv,
    BatchNorm, GELU) and a 2×2 max-pool; then global max-pooling.

    Args:
        image_size: the square input side.
        widths: channels of each block.
        convs_per_block: convolutions per block.
        name: the model's name.
    """
    image_size = positive_int("image_size", image_size, minimum=8)
    widths = positive_ints("widths", widths)
    convs_per_block = positive_int("convs_per_block", convs_per_block)
    if not widths:
        raise ValueError(f"widths needs at least one block. Received: widths={widths!r}")
    if image_size < 2 ** len(widths):
        raise ValueError(f"image_size {image_size} is too small for {len(widths)} pooling "
                         f"blocks. Received: image_size={image_size!r}, widths={widths!r}")
    inputs = keras.Input(shape=(image_size, image_size, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(inputs)
    x = _conv_bn_gelu(x, widths[0], "stem")
    for b, width in enumerate(widths, start=1):
        for c in range(1, convs_per_block + 1):
            x = _conv_bn_gelu(x, width, f"block{b}_conv{c}")
        x = keras.layers.MaxPooling2D(name=f"block{b}_pool")(x)
    x = keras.layers.GlobalMaxPooling2D(name="global_pool")(x)
    return keras.Model(inputs, x, name=name)


def build_scratch_models(num_classes: int, *, class_names: Sequence[str], image_size: int,
                         widths: Sequence[int] = DEFAULT_WIDTHS, convs_per_block: int = 2,
                         dropout: float = 0.1, translate_px: int = 2, tta: bool = True,
                         seed: int = config.SEED) -> tuple[keras.Model, keras.Model]:
    """The training model and the saved end-to-end model of the scratch CNN (shared layers).

    Args:
        num_classes: outputs (must equal ``len(class_names)``).
        class_names: stored in the end-to-end model.
        image_size: the side the network works at.
        widths, convs_per_block: see :func:`build_scratch_features`.
        dropout: dropout on the pooled features, in training.
        translate_px: random shifts of up to this many pixels in training (0: none); random
            horizontal flips always.
        tta: the end-to-end model averages the image's and its mirror image's features.
        seed: the augmentation layers' seed.

    Returns:
        ``(training_model, end_to_end_model)``: the first takes ``(S, S, 3)`` images and
        augments them; the second takes any size (resized to S) and returns probabilities.
    """
    num_classes = positive_int("num_classes", num_classes, minimum=2)
    if len(class_names) != num_classes:
        raise ValueError(f"{num_classes} classes but {len(class_names)} class names. "
                         f"Received: class_names={list(class_names)!r}")
    dropout = rate("dropout", dropout)
    translate_px = positive_int("translate_px", translate_px, minimum=0)
    body = build_scratch_features(image_size=image_size, widths=widths,
                                  convs_per_block=convs_per_block)
    classifier = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")

    images = keras.Input(shape=(image_size, image_size, 3), name="image")
    x = keras.layers.RandomFlip("horizontal", seed=seed, name="random_flip")(images)
    if translate_px:
        shift = translate_px / image_size
        x = keras.layers.RandomTranslation(shift, shift, fill_mode="nearest", seed=seed + 1,
                                           name="random_translation")(x)
    x = keras.layers.Dropout(dropout, seed=seed + 2, name="dropout")(body(x))
    training = keras.Model(images, classifier(x), name="scratch_cnn_training")

    raw = keras.Input(shape=(None, None, 3), name="image")
    x = keras.layers.Resizing(image_size, image_size, interpolation="bilinear", antialias=True,
                              name="resize")(raw)
    if tta:
        embedding = keras.layers.Average(name="embedding")(
            [body(x), body(HorizontalFlip(name="mirror")(x))])
    else:
        embedding = keras.layers.Identity(name="embedding")(body(x))
    outputs = ClassNames(class_names, name="class_names")(classifier(embedding))
    return training, keras.Model(raw, outputs, name="scratch_cnn")


class BudgetedOneCycle(keras.callbacks.Callback):
    """One-cycle learning rate per step, its length fitted to a wall-clock budget.

    The rate rises linearly towards ``peak`` over ``warmup_epochs``, then falls linearly to 0 at
    the end of the last planned epoch. Without ``max_seconds`` the plan is ``max_epochs``. With
    it, the plan is remade after every epoch: until the decay begins, the epochs done plus as
    many as the time left allows at the slowest epoch's pace so far (with a 3% margin), at most
    ``max_epochs`` (a plan shorter than the warm-up starts the decay after the first epoch).
    Once the decay has begun the plan can only shrink: should the machine slow down so that
    the planned epochs no longer fit, the plan is cut to those that do and the decay is
    re-anchored — from the rate reached, linearly to 0 at the new last epoch — so training
    still ends within the budget with its rate at 0 (``shortened``). The first epoch always
    runs.

    Attributes:
        planned_epochs: the current plan.
        epoch_seconds: wall time of each epoch (validation included).
        learning_rates: the rate at each epoch's last step.
        shortened: how many times a slower machine cut the plan after the decay began.
    """

    def __init__(self, *, peak: float, steps_per_epoch: int, max_epochs: int,
                 warmup_epochs: int = 2, max_seconds: float | None = None) -> None:
        super().__init__()
        self.peak = positive_float("peak", peak)
        self.steps_per_epoch = positive_int("steps_per_epoch", steps_per_epoch)
        self.max_epochs = positive_int("max_epochs", max_epochs)
        self.warmup_epochs = positive_int("warmup_epochs", warmup_epochs, minimum=0)
        self.max_seconds = (None if max_seconds is None
                            else positive_float("max_seconds", max_seconds))
        self.planned_epochs = self.max_epochs
        self.epoch_seconds: list[float] = []
        self.learning_rates: list[float] = []
        self.shortened = 0
        self._anchor: tuple[int, float] | None = None  # (step, rate) of a re-anchored decay
        self._epoch = 0
        self._rate = 0.0

    def _decay_start(self) -> int:
        """The step at which the decay begins under the current plan."""
        s = self.steps_per_epoch
        return min(self.warmup_epochs * s, max(s, (self.planned_epochs - 1) * s))

    def rate_at(self, step: int) -> float:
        """The learning rate at a global step (0-based), under the current plan."""
        total = self.planned_epochs * self.steps_per_epoch
        if self._anchor is not None and step >= self._anchor[0]:
            at, rate = self._anchor
            return rate * max(0.0, (total - step) / max(1, total - at))
        warm, start = self.warmup_epochs * self.steps_per_epoch, self._decay_start()
        if step < start:
            return self.peak * (step + 1) / warm
        top = self.peak * min(1.0, start / warm) if warm else self.peak
        return top * max(0.0, (total - step) / max(1, total - start))

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._epoch_start = epoch, time.perf_counter()

    def on_train_batch_begin(self, batch, logs=None):
        self._rate = self.rate_at(self._epoch * self.steps_per_epoch + batch)
        self.model.optimizer.learning_rate.assign(self._rate)

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        self.epoch_seconds.append(now - self._epoch_start)
        self.learning_rates.append(float(self._rate))
        done, elapsed, pace = epoch + 1, now - self._start, max(self.epoch_seconds)
        if self.max_seconds is not None:
            fits = done + int(max(0.0, self.max_seconds - elapsed) // (pace * 1.03))
            step = done * self.steps_per_epoch
            if step <= self._decay_start():  # warming up: the plan follows the pace
                self.planned_epochs = max(done, min(self.max_epochs, fits))
            elif fits < self.planned_epochs:  # decaying, and the rest no longer fits
                self._anchor = (step, self.rate_at(step))
                self.planned_epochs = max(done, fits)
                self.shortened += 1
        if done >= self.planned_epochs:
            self.model.stop_training = True


def native_image_size(path: str | os.PathLike, *, at_most: int = config.SCRATCH_MAX_SIDE) -> int:
    """The side the scratch CNN works at for a catalog: its images' longer side (one image,
    ``path``), at most ``at_most`` (Fashion-MNIST: its own 28 px; photos: 64)."""
    from PIL import Image

    at_most = positive_int("at_most", at_most, minimum=8)
    with Image.open(path) as img:
        return max(8, min(at_most, max(img.size)))


def load_image_array(paths: Sequence[str | os.PathLike], *, image_size: int,
                     batch_size: int = 512) -> np.ndarray:
    """Image files decoded as everywhere else (``features.image_dataset``), as one uint8 array
    ``(n, S, S, 3)``: the scratch CNN trains from memory."""
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ValueError("load_image_array needs at least one image. Received: 0 paths")
    out = np.empty((len(paths), image_size, image_size, 3), dtype=np.uint8)
    i = 0
    for batch in image_dataset(paths, image_size=image_size, batch_size=batch_size):
        arr = np.clip(np.round(np.asarray(batch)), 0, 255).astype(np.uint8)
        out[i:i + len(arr)] = arr
        i += len(arr)
    return out


def _dataset(images: np.ndarray, labels: np.ndarray, *, num_classes: int, batch_size: int,
             shuffle: bool, seed: int):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle:
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(
        lambda x, y: (tf.cast(x, tf.float32), tf.one_hot(y, num_classes)),
        num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def train_scratch_cnn(*, train_paths: Sequence[str], train_labels: Sequence[int],
                      val_paths: Sequence[str], val_labels: Sequence[int],
                      class_names: Sequence[str], image_size: int,
                      model_path: str | os.PathLike, widths: Sequence[int] = DEFAULT_WIDTHS,
                      convs_per_block: int = 2, dropout: float = 0.1, translate_px: int = 2,
                      tta: bool = True, epochs: int = 40, max_seconds: float | None = None,
                      batch_size: int = 128, learning_rate: float = 0.05, warmup_epochs: int = 2,
                      momentum: float = 0.9, weight_decay: float = 5e-4,
                      label_smoothing: float = 0.1, seed: int = config.SEED,
                      verbose: int | str = 2) -> FineTuneResult:
    """Train the scratch CNN within a time budget and save its end-to-end model.

    Args:
        train_paths, train_labels: training images and integer labels.
        val_paths, val_labels: validation images and labels (scored after every epoch, and
            the saved model once more, with its test-time augmentation).
        class_names: one per class; stored in the saved model.
        image_size: the side the network works at (Fashion-MNIST: its own 28 px).
        model_path: the ``.keras`` file to write (atomically).
        widths, convs_per_block, dropout, translate_px, tta: see :func:`build_scratch_models`.
        epochs: most epochs (the plan when there is no ``max_seconds``).
        max_seconds: the training budget (see :class:`BudgetedOneCycle`).
        batch_size: images per step (128 and a 0.05 peak matched 256 and 0.08 on
            Fashion-MNIST's validation side in a 12-minute budget, 0.931 against 0.929, in 10%
            less time: more steps per epoch suit short schedules).
        learning_rate: the one-cycle peak (Nesterov SGD).
        warmup_epochs: epochs of linear warm-up.
        momentum, weight_decay: SGD's (decoupled weight decay).
        label_smoothing: of the cross-entropy.
        seed: weights, shuffling and augmentation.
        verbose: Keras verbosity.

    Returns:
        A ``finetune.FineTuneResult`` (the end-to-end model; ``best_val_accuracy`` is the
        saved model's validation accuracy, test-time augmentation included).
    """
    train_labels = np.asarray(train_labels, dtype=np.int64)
    val_labels = np.asarray(val_labels, dtype=np.int64)
    if len(train_paths) != len(train_labels) or len(val_paths) != len(val_labels):
        raise ValueError(f"paths and labels must be of equal length. Received: "
                         f"{len(train_paths)}/{len(train_labels)} training and "
                         f"{len(val_paths)}/{len(val_labels)} validation")
    epochs = positive_int("epochs", epochs)
    batch_size = positive_int("batch_size", batch_size)
    learning_rate = positive_float("learning_rate", learning_rate)
    label_smoothing = rate("label_smoothing", label_smoothing)
    model_path = Path(model_path)
    if model_path.suffix != ".keras":
        raise ValueError(f"model_path must end with .keras. Received: model_path={str(model_path)!r}")

    start = time.perf_counter()
    x_train = load_image_array(train_paths, image_size=image_size)
    x_val = load_image_array(val_paths, image_size=image_size)
    load_seconds = time.perf_counter() - start
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    n_classes = len(class_names)
    training, model = build_scratch_models(
        n_classes, class_names=class_names, image_size=image_size, widths=widths,
        convs_per_block=convs_per_block, dropout=dropout, translate_px=translate_px, tta=tta,
        seed=seed)
    training.compile(
        optimizer=keras.optimizers.SGD(learning_rate, momentum=momentum, nesterov=True,
                                       weight_decay=weight_decay or None),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    steps = math.ceil(len(train_labels) / batch_size)
    schedule = BudgetedOneCycle(peak=learning_rate, steps_per_epoch=steps, max_epochs=epochs,
                                warmup_epochs=warmup_epochs, max_seconds=max_seconds)
    train = _dataset(x_train, train_labels, num_classes=n_classes, batch_size=batch_size,
                     shuffle=True, seed=seed)
    val = _dataset(x_val, val_labels, num_classes=n_classes, batch_size=1024, shuffle=False,
                   seed=seed)
    fit_start = time.perf_counter()
    history = training.fit(train, validation_data=val, epochs=epochs,
                           callbacks=[schedule, keras_callback("CNN from scratch")],
                           shuffle=False, verbose=verbose)  # the dataset reshuffles itself
    seconds = time.perf_counter() - fit_start
    save_end_to_end_model(model, model_path)
    model = load_end_to_end_model(model_path)  # what a user gets; its layers are its own
    val_pred = model.predict(x_val.astype(np.float32), batch_size=1024, verbose=0).argmax(1)
    hist = {k: [float(v) for v in values] for k, values in history.history.items()}
    settings = {"recipe": "scratch CNN", "backbone": "scratch_cnn", "image_size": int(image_size),
                "widths": list(widths), "convs_per_block": convs_per_block, "dropout": dropout,
                "translate_px": translate_px, "tta": bool(tta), "epochs": epochs,
                "planned_epochs": schedule.planned_epochs, "batch_size": batch_size,
                "learning_rate": learning_rate, "schedule": "one-cycle (linear)",
                "warmup_epochs": warmup_epochs, "momentum": momentum,
                "weight_decay": weight_decay, "label_smoothing": label_smoothing,
                "max_seconds": max_seconds, "plan_shortened": schedule.shortened,
                "load_seconds": round(load_seconds, 1), "train_images": len(train_labels),
                "val_images": len(val_labels), "seed": seed}
    params = int(sum(np.prod(w.shape) for w in training.trainable_weights))
    return FineTuneResult(model=model, model_path=model_path, history=hist,
                          epoch_seconds=[round(s, 2) for s in schedule.epoch_seconds],
                          seconds=seconds, best_val_accuracy=float(np.mean(val_pred == val_labels)),
                          settings=settings, trainable={"trainable_params": params})
